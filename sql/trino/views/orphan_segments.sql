-- Generated from tams_analytics.views.orphan_segments by `python -m tams_analytics.views --write sql/trino/views`;
-- do not edit: change the ibis expression and regenerate.
CREATE OR REPLACE VIEW "orphan_segments" AS
SELECT
  *
FROM (
  SELECT
    "t6"."flow_id",
    COUNT(*) AS "count",
    MIN("t6"."start_ns") AS "start_ns",
    MAX("t6"."end_ns") AS "end_ns"
  FROM (
    SELECT
      "t4"."flow_id",
      "t4"."object_id",
      "t4"."timerange",
      "t4"."start_ns",
      "t4"."end_ns",
      "t4"."ts_offset",
      "t4"."last_duration",
      "t4"."object_timerange",
      "t4"."sample_offset",
      "t4"."sample_count",
      "t4"."key_frame_count",
      "t4"."init_object_id",
      "t4"."created"
    FROM (
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
    ) AS "t4"
    WHERE
      NOT EXISTS(
        SELECT
          1
        FROM (
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
        ) AS "t5"
        WHERE
          "t4"."flow_id" = "t5"."id"
      )
  ) AS "t6"
  GROUP BY
    1
) AS "t7"
ORDER BY
  "t7"."flow_id" ASC
;
