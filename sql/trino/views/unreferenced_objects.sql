-- Generated from tams_analytics.views.unreferenced_objects by `python -m tams_analytics.views --write sql/trino/views`;
-- do not edit: change the ibis expression and regenerate.
CREATE OR REPLACE VIEW "unreferenced_objects" AS
SELECT
  *
FROM (
  SELECT
    "t8"."id" AS "object_id",
    "t8"."first_referenced_by_flow" AS "flow_id"
  FROM (
    SELECT
      *
    FROM (
      SELECT
        "t0"."id",
        "t0"."allocated_flow_id",
        "t0"."first_referenced_by_flow",
        "t0"."registered",
        "t0"."is_init",
        "t0"."timerange",
        "t0"."start_ns",
        "t0"."end_ns",
        "t0"."key_frame_count",
        "t0"."init_object_id",
        "t0"."content_type",
        "t0"."size_bytes",
        WITH_TIMEZONE(CAST("t0"."created" AS TIMESTAMP(6)), 'UTC') AS "created",
        WITH_TIMEZONE(CAST("t0"."unreferenced_since" AS TIMESTAMP(6)), 'UTC') AS "unreferenced_since"
      FROM "objects" AS "t0"
    ) AS "t4"
    WHERE
      COALESCE("t4"."registered", FALSE) AND "t4"."unreferenced_since" IS NULL
  ) AS "t8"
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
        ) AS "t3"
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
        ) AS "t2"
      ) AS "t6"
      WHERE
        "t8"."id" = "t6"."object_id"
    )
) AS "t9"
ORDER BY
  "t9"."object_id" ASC
;
