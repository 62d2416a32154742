-- Generated from tams_analytics.views.storage_per_source by `python -m tams_analytics.views --write sql/trino/views`;
-- do not edit: change the ibis expression and regenerate.
CREATE OR REPLACE VIEW "storage_per_source" AS
WITH "t10" AS (
  SELECT
    "t5"."source_id",
    "t6"."object_id"
  FROM "segments" AS "t6"
  INNER JOIN "flows" AS "t5"
    ON "t6"."flow_id" = "t5"."id"
)
SELECT
  "t4"."id" AS "source_id",
  "t4"."format",
  "t4"."label",
  COALESCE("t9"."flows", 0) AS "flows",
  COALESCE("t14"."segments", 0) AS "segments",
  COALESCE("t18"."objects", 0) AS "objects",
  COALESCE("t18"."bytes", 0) AS "bytes",
  COALESCE("t18"."objects_without_size", 0) AS "objects_without_size"
FROM "sources" AS "t4"
LEFT OUTER JOIN (
  SELECT
    "t1"."source_id",
    COUNT(*) AS "flows"
  FROM "flows" AS "t1"
  GROUP BY
    1
) AS "t9"
  ON "t4"."id" = "t9"."source_id"
LEFT OUTER JOIN (
  SELECT
    "t11"."source_id",
    COUNT(*) AS "segments"
  FROM "t10" AS "t11"
  GROUP BY
    1
) AS "t14"
  ON "t4"."id" = "t14"."source_id"
LEFT OUTER JOIN (
  SELECT
    "t16"."source_id",
    COUNT(*) AS "objects",
    SUM("t16"."size_bytes") AS "bytes",
    SUM(IF("t16"."size_bytes" IS NULL, 1, 0)) AS "objects_without_size"
  FROM (
    SELECT
      "t15"."source_id",
      "t15"."object_id",
      "t7"."size_bytes"
    FROM (
      SELECT DISTINCT
        *
      FROM "t10" AS "t11"
    ) AS "t15"
    LEFT OUTER JOIN "objects" AS "t7"
      ON "t15"."object_id" = "t7"."id"
  ) AS "t16"
  GROUP BY
    1
) AS "t18"
  ON "t4"."id" = "t18"."source_id"
;
