-- Generated from tams_analytics.views.unreferenced_objects by `python -m tams_analytics.views --write sql/trino/views`;
-- do not edit: change the ibis expression and regenerate.
CREATE OR REPLACE VIEW "unreferenced_objects" AS
SELECT
  *
FROM (
  SELECT
    "t5"."id" AS "object_id",
    "t5"."first_referenced_by_flow" AS "flow_id"
  FROM (
    SELECT
      *
    FROM "objects" AS "t0"
    WHERE
      COALESCE("t0"."registered", FALSE) AND "t0"."unreferenced_since" IS NULL
  ) AS "t5"
  WHERE
    NOT EXISTS(
      SELECT
        1
      FROM (
        SELECT
          *
        FROM (
          SELECT
            "t1"."flow_id",
            CAST("t1"."object_id" AS VARCHAR) AS "object_id"
          FROM "segments" AS "t1"
        ) AS "t4"
        UNION ALL
        SELECT
          *
        FROM (
          SELECT
            "t1"."flow_id",
            "t1"."init_object_id" AS "object_id"
          FROM "segments" AS "t1"
          WHERE
            "t1"."init_object_id" IS NOT NULL
        ) AS "t3"
      ) AS "t7"
      WHERE
        "t5"."id" = "t7"."object_id"
    )
) AS "t8"
ORDER BY
  "t8"."object_id" ASC
;
