-- Generated from tams_analytics.views.orphans by `python -m tams_analytics.views --write sql/trino/views`;
-- do not edit: change the ibis expression and regenerate.
CREATE OR REPLACE VIEW "orphans" AS
WITH "t5" AS (
  SELECT
    "t1"."id",
    "t1"."source_id",
    "t1"."format",
    "t1"."codec",
    "t1"."container",
    "t1"."label",
    "t1"."description",
    "t1"."created_by",
    "t1"."updated_by",
    WITH_TIMEZONE(CAST("t1"."created" AS TIMESTAMP(6)), 'UTC') AS "created",
    WITH_TIMEZONE(CAST("t1"."metadata_updated" AS TIMESTAMP(6)), 'UTC') AS "metadata_updated",
    WITH_TIMEZONE(CAST("t1"."segments_updated" AS TIMESTAMP(6)), 'UTC') AS "segments_updated",
    "t1"."metadata_version",
    "t1"."generation",
    "t1"."read_only",
    "t1"."status",
    "t1"."max_bit_rate",
    "t1"."avg_bit_rate",
    "t1"."profile_id",
    "t1"."frame_width",
    "t1"."frame_height",
    "t1"."sample_rate",
    "t1"."init_segments",
    "t1"."doc"
  FROM "flows" AS "t1"
), "t7" AS (
  SELECT
    "t3"."flow_id",
    "t3"."object_id",
    "t3"."timerange",
    "t3"."start_ns",
    "t3"."end_ns",
    "t3"."ts_offset",
    "t3"."last_duration",
    "t3"."object_timerange",
    "t3"."sample_offset",
    "t3"."sample_count",
    "t3"."key_frame_count",
    "t3"."init_object_id",
    WITH_TIMEZONE(CAST("t3"."created" AS TIMESTAMP(6)), 'UTC') AS "created"
  FROM "segments" AS "t3"
)
SELECT
  *
FROM (
  SELECT
    *
  FROM (
    SELECT
      'object_without_segment' AS "kind",
      "t24"."flow_id",
      CAST(NULL AS VARCHAR) AS "source_id",
      "t24"."object_id",
      CAST(NULL AS VARCHAR) AS "timerange"
    FROM (
      SELECT
        "t15"."id" AS "object_id",
        "t15"."first_referenced_by_flow" AS "flow_id"
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
      ) AS "t15"
      WHERE
        NOT EXISTS(
          SELECT
            1
          FROM (
            SELECT
              *
            FROM (
              SELECT
                "t10"."flow_id",
                CAST("t10"."object_id" AS VARCHAR) AS "object_id"
              FROM "t7" AS "t10"
            ) AS "t17"
            UNION ALL
            SELECT
              *
            FROM (
              SELECT
                "t10"."flow_id",
                "t10"."init_object_id" AS "object_id"
              FROM "t7" AS "t10"
              WHERE
                "t10"."init_object_id" IS NOT NULL
            ) AS "t16"
          ) AS "t21"
          WHERE
            "t15"."id" = "t21"."object_id"
        )
    ) AS "t24"
    ORDER BY
      "t24"."object_id" ASC
  ) AS "t25"
  UNION ALL
  SELECT
    *
  FROM (
    SELECT
      *
    FROM (
      SELECT
        'segment_without_flow' AS "kind",
        "t23"."flow_id",
        CAST(NULL AS VARCHAR) AS "source_id",
        CAST(NULL AS VARCHAR) AS "object_id",
        CONCAT(
          '[',
          CONCAT(
            IF("t23"."start_ns" < 0, '-', ''),
            IF(
              LENGTH(CAST(ABS("t23"."start_ns") AS VARCHAR)) > 9,
              SUBSTR(
                CAST(ABS("t23"."start_ns") AS VARCHAR),
                IF((
                  0 + 1
                ) >= 1, 0 + 1, 0 + 1 + LENGTH(CAST(ABS("t23"."start_ns") AS VARCHAR))),
                LENGTH(CAST(ABS("t23"."start_ns") AS VARCHAR)) - 9
              ),
              '0'
            ),
            ':',
            CAST(ABS("t23"."start_ns") % 1000000000 AS VARCHAR)
          ),
          '_',
          CONCAT(
            IF("t23"."end_ns" < 0, '-', ''),
            IF(
              LENGTH(CAST(ABS("t23"."end_ns") AS VARCHAR)) > 9,
              SUBSTR(
                CAST(ABS("t23"."end_ns") AS VARCHAR),
                IF((
                  0 + 1
                ) >= 1, 0 + 1, 0 + 1 + LENGTH(CAST(ABS("t23"."end_ns") AS VARCHAR))),
                LENGTH(CAST(ABS("t23"."end_ns") AS VARCHAR)) - 9
              ),
              '0'
            ),
            ':',
            CAST(ABS("t23"."end_ns") % 1000000000 AS VARCHAR)
          ),
          ')'
        ) AS "timerange"
      FROM (
        SELECT
          "t20"."flow_id",
          COUNT(*) AS "count",
          MIN("t20"."start_ns") AS "start_ns",
          MAX("t20"."end_ns") AS "end_ns"
        FROM (
          SELECT
            "t13"."flow_id",
            "t13"."object_id",
            "t13"."timerange",
            "t13"."start_ns",
            "t13"."end_ns",
            "t13"."ts_offset",
            "t13"."last_duration",
            "t13"."object_timerange",
            "t13"."sample_offset",
            "t13"."sample_count",
            "t13"."key_frame_count",
            "t13"."init_object_id",
            "t13"."created"
          FROM "t7" AS "t13"
          WHERE
            NOT EXISTS(
              SELECT
                1
              FROM "t5" AS "t12"
              WHERE
                "t13"."flow_id" = "t12"."id"
            )
        ) AS "t20"
        GROUP BY
          1
      ) AS "t23"
      ORDER BY
        "t23"."flow_id" ASC
    ) AS "t26"
    UNION ALL
    SELECT
      *
    FROM (
      SELECT
        'flow_without_source' AS "kind",
        "t19"."flow_id",
        "t19"."source_id",
        CAST(NULL AS VARCHAR) AS "object_id",
        CAST(NULL AS VARCHAR) AS "timerange"
      FROM (
        SELECT
          "t11"."id" AS "flow_id",
          "t11"."source_id"
        FROM "t5" AS "t11"
        WHERE
          NOT EXISTS(
            SELECT
              1
            FROM (
              SELECT
                "t2"."id",
                "t2"."format",
                "t2"."label",
                "t2"."description",
                "t2"."created_by",
                "t2"."updated_by",
                WITH_TIMEZONE(CAST("t2"."created" AS TIMESTAMP(6)), 'UTC') AS "created",
                WITH_TIMEZONE(CAST("t2"."updated" AS TIMESTAMP(6)), 'UTC') AS "updated"
              FROM "sources" AS "t2"
            ) AS "t9"
            WHERE
              "t11"."source_id" = "t9"."id"
          )
      ) AS "t19"
      ORDER BY
        "t19"."flow_id" ASC
    ) AS "t22"
  ) AS "t27"
) AS "t28"
ORDER BY
  "t28"."kind" ASC,
  "t28"."flow_id" ASC,
  "t28"."object_id" ASC
;
