-- Generated from tams_analytics.views.orphans by `python -m tams_analytics.views --write sql/trino/views`;
-- do not edit: change the ibis expression and regenerate.
CREATE OR REPLACE VIEW "orphans" AS
SELECT
  *
FROM (
  SELECT
    'object_without_segment' AS "kind",
    "t18"."allocated_flow_id" AS "flow_id",
    CAST(NULL AS VARCHAR) AS "source_id",
    "t18"."id" AS "object_id",
    "t18"."timerange"
  FROM (
    SELECT
      "t4"."id",
      "t4"."allocated_flow_id",
      "t4"."registered",
      "t4"."size_bytes",
      "t4"."timerange",
      "t4"."created",
      "t4"."unreferenced_since"
    FROM "objects" AS "t4"
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
          ) AS "t10"
          UNION ALL
          SELECT
            *
          FROM (
            SELECT
              "t1"."init_object_id" AS "ref"
            FROM "segments" AS "t1"
            WHERE
              "t1"."init_object_id" IS NOT NULL
          ) AS "t9"
        ) AS "t12"
        WHERE
          "t4"."id" = "t12"."ref"
      )
  ) AS "t18"
) AS "t19"
UNION ALL
SELECT
  *
FROM (
  SELECT
    *
  FROM (
    SELECT
      'segment_without_flow' AS "kind",
      "t13"."flow_id",
      CAST(NULL AS VARCHAR) AS "source_id",
      "t13"."object_id",
      "t13"."timerange"
    FROM (
      SELECT
        "t5"."flow_id",
        "t5"."object_id",
        "t5"."timerange",
        "t5"."start_ns",
        "t5"."end_ns",
        "t5"."created"
      FROM "segments" AS "t5"
      WHERE
        NOT EXISTS(
          SELECT
            1
          FROM "flows" AS "t7"
          WHERE
            "t5"."flow_id" = "t7"."id"
        )
    ) AS "t13"
  ) AS "t15"
  UNION ALL
  SELECT
    *
  FROM (
    SELECT
      'flow_without_source' AS "kind",
      "t14"."id" AS "flow_id",
      "t14"."source_id",
      CAST(NULL AS VARCHAR) AS "object_id",
      CAST(NULL AS VARCHAR) AS "timerange"
    FROM (
      SELECT
        "t6"."id",
        "t6"."source_id",
        "t6"."format",
        "t6"."label",
        "t6"."created"
      FROM "flows" AS "t6"
      WHERE
        NOT EXISTS(
          SELECT
            1
          FROM "sources" AS "t8"
          WHERE
            "t6"."source_id" = "t8"."id"
        )
    ) AS "t14"
  ) AS "t16"
) AS "t17"
;
