-- Generated from tams_analytics.views.orphans by `python -m tams_analytics.views --write sql/trino/views`;
-- do not edit: change the ibis expression and regenerate.
CREATE OR REPLACE VIEW "orphans" AS
SELECT
  *
FROM (
  SELECT
    *
  FROM (
    SELECT
      'object_without_segment' AS "kind",
      "t18"."flow_id",
      CAST(NULL AS VARCHAR) AS "source_id",
      "t18"."object_id",
      CAST(NULL AS VARCHAR) AS "timerange"
    FROM (
      SELECT
        "t11"."id" AS "object_id",
        "t11"."first_referenced_by_flow" AS "flow_id"
      FROM (
        SELECT
          *
        FROM "objects" AS "t0"
        WHERE
          COALESCE("t0"."registered", FALSE) AND "t0"."unreferenced_since" IS NULL
      ) AS "t11"
      WHERE
        NOT EXISTS(
          SELECT
            1
          FROM (
            SELECT
              *
            FROM (
              SELECT
                "t2"."flow_id",
                CAST("t2"."object_id" AS VARCHAR) AS "object_id"
              FROM "segments" AS "t2"
            ) AS "t10"
            UNION ALL
            SELECT
              *
            FROM (
              SELECT
                "t2"."flow_id",
                "t2"."init_object_id" AS "object_id"
              FROM "segments" AS "t2"
              WHERE
                "t2"."init_object_id" IS NOT NULL
            ) AS "t9"
          ) AS "t14"
          WHERE
            "t11"."id" = "t14"."object_id"
        )
    ) AS "t18"
    ORDER BY
      "t18"."object_id" ASC
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
        "t16"."flow_id",
        CAST(NULL AS VARCHAR) AS "source_id",
        CAST(NULL AS VARCHAR) AS "object_id",
        CONCAT(
          '[',
          CONCAT(
            IF("t16"."start_ns" < 0, '-', ''),
            IF(
              LENGTH(CAST(ABS("t16"."start_ns") AS VARCHAR)) > 9,
              SUBSTRING(
                CAST(ABS("t16"."start_ns") AS VARCHAR),
                IF((
                  0 + 1
                ) >= 1, 0 + 1, 0 + 1 + LENGTH(CAST(ABS("t16"."start_ns") AS VARCHAR))),
                LENGTH(CAST(ABS("t16"."start_ns") AS VARCHAR)) - 9
              ),
              '0'
            ),
            ':',
            CAST(ABS("t16"."start_ns") % 1000000000 AS VARCHAR)
          ),
          '_',
          CONCAT(
            IF("t16"."end_ns" < 0, '-', ''),
            IF(
              LENGTH(CAST(ABS("t16"."end_ns") AS VARCHAR)) > 9,
              SUBSTRING(
                CAST(ABS("t16"."end_ns") AS VARCHAR),
                IF((
                  0 + 1
                ) >= 1, 0 + 1, 0 + 1 + LENGTH(CAST(ABS("t16"."end_ns") AS VARCHAR))),
                LENGTH(CAST(ABS("t16"."end_ns") AS VARCHAR)) - 9
              ),
              '0'
            ),
            ':',
            CAST(ABS("t16"."end_ns") % 1000000000 AS VARCHAR)
          ),
          ')'
        ) AS "timerange"
      FROM (
        SELECT
          "t13"."flow_id",
          COUNT(*) AS "count",
          MIN("t13"."start_ns") AS "start_ns",
          MAX("t13"."end_ns") AS "end_ns"
        FROM (
          SELECT
            "t6"."flow_id",
            "t6"."object_id",
            "t6"."timerange",
            "t6"."start_ns",
            "t6"."end_ns",
            "t6"."ts_offset",
            "t6"."last_duration",
            "t6"."object_timerange",
            "t6"."sample_offset",
            "t6"."sample_count",
            "t6"."key_frame_count",
            "t6"."init_object_id",
            "t6"."created"
          FROM "segments" AS "t6"
          WHERE
            NOT EXISTS(
              SELECT
                1
              FROM "flows" AS "t5"
              WHERE
                "t6"."flow_id" = "t5"."id"
            )
        ) AS "t13"
        GROUP BY
          1
      ) AS "t16"
      ORDER BY
        "t16"."flow_id" ASC
    ) AS "t20"
    UNION ALL
    SELECT
      *
    FROM (
      SELECT
        'flow_without_source' AS "kind",
        "t15"."flow_id",
        "t15"."source_id",
        CAST(NULL AS VARCHAR) AS "object_id",
        CAST(NULL AS VARCHAR) AS "timerange"
      FROM (
        SELECT
          "t4"."id" AS "flow_id",
          "t4"."source_id"
        FROM "flows" AS "t4"
        WHERE
          NOT EXISTS(
            SELECT
              1
            FROM "sources" AS "t7"
            WHERE
              "t4"."source_id" = "t7"."id"
          )
      ) AS "t15"
      ORDER BY
        "t15"."flow_id" ASC
    ) AS "t17"
  ) AS "t21"
) AS "t22"
ORDER BY
  "t22"."kind" ASC,
  "t22"."flow_id" ASC,
  "t22"."object_id" ASC
;
