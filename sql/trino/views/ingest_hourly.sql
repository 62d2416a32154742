-- Generated from tams_analytics.views.ingest_hourly by `python -m tams_analytics.views --write sql/trino/views`;
-- do not edit: change the ibis expression and regenerate.
CREATE OR REPLACE VIEW "ingest_hourly" AS
SELECT
  "t7"."bucket_start_s",
  "t7"."segments",
  "t7"."flows",
  "t10"."objects",
  COALESCE("t10"."bytes", 0) AS "bytes"
FROM (
  SELECT
    "t3"."bucket_start_s",
    COUNT(*) AS "segments",
    COUNT(DISTINCT "t3"."flow_id") AS "flows"
  FROM (
    SELECT
      "t0"."flow_id",
      "t0"."object_id",
      DATE_DIFF(
        'SECOND',
        DATE_TRUNC(
          'SECOND',
          CAST(FROM_ISO8601_TIMESTAMP('1970-01-01T00:00:00+00:00') AS TIMESTAMP WITH TIME ZONE)
        ),
        DATE_TRUNC('SECOND', "t0"."created")
      ) - (
        DATE_DIFF(
          'SECOND',
          DATE_TRUNC(
            'SECOND',
            CAST(FROM_ISO8601_TIMESTAMP('1970-01-01T00:00:00+00:00') AS TIMESTAMP WITH TIME ZONE)
          ),
          DATE_TRUNC('SECOND', "t0"."created")
        ) % 3600
      ) AS "bucket_start_s"
    FROM "segments" AS "t0"
    WHERE
      "t0"."created" IS NOT NULL
  ) AS "t3"
  GROUP BY
    1
) AS "t7"
INNER JOIN (
  SELECT
    "t8"."bucket_start_s",
    COUNT(*) AS "objects",
    SUM("t8"."size_bytes") AS "bytes"
  FROM (
    SELECT
      "t5"."bucket_start_s",
      "t2"."size_bytes"
    FROM (
      SELECT DISTINCT
        DATE_DIFF(
          'SECOND',
          DATE_TRUNC(
            'SECOND',
            CAST(FROM_ISO8601_TIMESTAMP('1970-01-01T00:00:00+00:00') AS TIMESTAMP WITH TIME ZONE)
          ),
          DATE_TRUNC('SECOND', "t0"."created")
        ) - (
          DATE_DIFF(
            'SECOND',
            DATE_TRUNC(
              'SECOND',
              CAST(FROM_ISO8601_TIMESTAMP('1970-01-01T00:00:00+00:00') AS TIMESTAMP WITH TIME ZONE)
            ),
            DATE_TRUNC('SECOND', "t0"."created")
          ) % 3600
        ) AS "bucket_start_s",
        "t0"."object_id"
      FROM "segments" AS "t0"
      WHERE
        "t0"."created" IS NOT NULL
    ) AS "t5"
    LEFT OUTER JOIN "objects" AS "t2"
      ON "t5"."object_id" = "t2"."id"
  ) AS "t8"
  GROUP BY
    1
) AS "t10"
  ON "t7"."bucket_start_s" = "t10"."bucket_start_s"
;
