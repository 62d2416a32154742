-- Generated from tams_analytics.views.unreferenced_objects by `python -m tams_analytics.views --write sql/trino/views`;
-- do not edit: change the ibis expression and regenerate.
CREATE OR REPLACE VIEW "unreferenced_objects" AS
SELECT
  "t2"."id",
  "t2"."allocated_flow_id",
  "t2"."registered",
  "t2"."size_bytes",
  "t2"."timerange",
  "t2"."created",
  "t2"."unreferenced_since"
FROM "objects" AS "t2"
WHERE
  NOT EXISTS(
    SELECT
      1
    FROM (
      SELECT
        *
      FROM (
        SELECT
          CAST("t1"."object_id" AS VARCHAR) AS "ref"
        FROM "segments" AS "t1"
      ) AS "t4"
      UNION ALL
      SELECT
        *
      FROM (
        SELECT
          "t1"."init_object_id" AS "ref"
        FROM "segments" AS "t1"
        WHERE
          "t1"."init_object_id" IS NOT NULL
      ) AS "t3"
    ) AS "t6"
    WHERE
      "t2"."id" = "t6"."ref"
  )
;
