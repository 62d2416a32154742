-- Generated from tams_analytics.views.orphan_segments by `python -m tams_analytics.views --write sql/trino/views`;
-- do not edit: change the ibis expression and regenerate.
CREATE OR REPLACE VIEW "orphan_segments" AS
SELECT
  *
FROM (
  SELECT
    "t4"."flow_id",
    COUNT(*) AS "count",
    MIN("t4"."start_ns") AS "start_ns",
    MAX("t4"."end_ns") AS "end_ns"
  FROM (
    SELECT
      "t2"."flow_id",
      "t2"."object_id",
      "t2"."timerange",
      "t2"."start_ns",
      "t2"."end_ns",
      "t2"."ts_offset",
      "t2"."last_duration",
      "t2"."object_timerange",
      "t2"."sample_offset",
      "t2"."sample_count",
      "t2"."key_frame_count",
      "t2"."init_object_id",
      "t2"."created"
    FROM "segments" AS "t2"
    WHERE
      NOT EXISTS(
        SELECT
          1
        FROM "flows" AS "t3"
        WHERE
          "t2"."flow_id" = "t3"."id"
      )
  ) AS "t4"
  GROUP BY
    1
) AS "t5"
ORDER BY
  "t5"."flow_id" ASC
;
