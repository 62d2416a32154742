-- Generated from tams_analytics.views.orphan_segments by `python -m tams_analytics.views --write sql/trino/views`;
-- do not edit: change the ibis expression and regenerate.
CREATE OR REPLACE VIEW "orphan_segments" AS
SELECT
  "t2"."flow_id",
  "t2"."object_id",
  "t2"."timerange",
  "t2"."start_ns",
  "t2"."end_ns",
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
;
