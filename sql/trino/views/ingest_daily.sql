-- Generated from tams_analytics.views.ingest_daily by `python -m tams_analytics.views --write sql/trino/views`;
-- do not edit: change the ibis expression and regenerate.
CREATE OR REPLACE VIEW "ingest_daily" AS
WITH "t2" AS (
  SELECT
    "t0"."flow_id",
    "t0"."object_id",
    "t0"."timerange",
    "t0"."start_ns",
    "t0"."end_ns",
    "t0"."ts_offset",
    "t0"."last_duration",
    "t0"."object_timerange",
    "t0"."sample_offset",
    "t0"."sample_count",
    "t0"."key_frame_count",
    "t0"."init_object_id",
    WITH_TIMEZONE(CAST("t0"."created" AS TIMESTAMP(6)), 'UTC') AS "created"
  FROM "segments" AS "t0"
)
SELECT
  "t10"."bucket_start_s",
  "t10"."segments",
  "t10"."flows",
  "t13"."objects",
  COALESCE("t13"."bytes", 0) AS "bytes"
FROM (
  SELECT
    "t6"."bucket_start_s",
    COUNT(*) AS "segments",
    COUNT(DISTINCT "t6"."flow_id") AS "flows"
  FROM (
    SELECT
      "t4"."flow_id",
      "t4"."object_id",
      DATE_DIFF(
        'SECOND',
        DATE_TRUNC(
          'SECOND',
          CAST(FROM_ISO8601_TIMESTAMP('1970-01-01T00:00:00+00:00') AS TIMESTAMP WITH TIME ZONE)
        ),
        DATE_TRUNC('SECOND', "t4"."created")
      ) - (
        DATE_DIFF(
          'SECOND',
          DATE_TRUNC(
            'SECOND',
            CAST(FROM_ISO8601_TIMESTAMP('1970-01-01T00:00:00+00:00') AS TIMESTAMP WITH TIME ZONE)
          ),
          DATE_TRUNC('SECOND', "t4"."created")
        ) % 86400
      ) AS "bucket_start_s"
    FROM "t2" AS "t4"
    WHERE
      "t4"."created" IS NOT NULL
  ) AS "t6"
  GROUP BY
    1
) AS "t10"
INNER JOIN (
  SELECT
    "t11"."bucket_start_s",
    COUNT(*) AS "objects",
    SUM("t11"."size_bytes") AS "bytes"
  FROM (
    SELECT
      "t8"."bucket_start_s",
      "t5"."size_bytes"
    FROM (
      SELECT DISTINCT
        DATE_DIFF(
          'SECOND',
          DATE_TRUNC(
            'SECOND',
            CAST(FROM_ISO8601_TIMESTAMP('1970-01-01T00:00:00+00:00') AS TIMESTAMP WITH TIME ZONE)
          ),
          DATE_TRUNC('SECOND', "t4"."created")
        ) - (
          DATE_DIFF(
            'SECOND',
            DATE_TRUNC(
              'SECOND',
              CAST(FROM_ISO8601_TIMESTAMP('1970-01-01T00:00:00+00:00') AS TIMESTAMP WITH TIME ZONE)
            ),
            DATE_TRUNC('SECOND', "t4"."created")
          ) % 86400
        ) AS "bucket_start_s",
        "t4"."object_id"
      FROM "t2" AS "t4"
      WHERE
        "t4"."created" IS NOT NULL
    ) AS "t8"
    LEFT OUTER JOIN (
      SELECT
        "t1"."id",
        "t1"."allocated_flow_id",
        "t1"."first_referenced_by_flow",
        "t1"."registered",
        "t1"."is_init",
        "t1"."timerange",
        "t1"."start_ns",
        "t1"."end_ns",
        "t1"."key_frame_count",
        "t1"."init_object_id",
        "t1"."content_type",
        "t1"."size_bytes",
        WITH_TIMEZONE(CAST("t1"."created" AS TIMESTAMP(6)), 'UTC') AS "created",
        WITH_TIMEZONE(CAST("t1"."unreferenced_since" AS TIMESTAMP(6)), 'UTC') AS "unreferenced_since"
      FROM "objects" AS "t1"
    ) AS "t5"
      ON "t8"."object_id" = "t5"."id"
  ) AS "t11"
  GROUP BY
    1
) AS "t13"
  ON "t10"."bucket_start_s" = "t13"."bucket_start_s"
;
