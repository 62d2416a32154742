-- Generated from tams_analytics.views.orphan_flows by `python -m tams_analytics.views --write sql/trino/views`;
-- do not edit: change the ibis expression and regenerate.
CREATE OR REPLACE VIEW "orphan_flows" AS
SELECT
  *
FROM (
  SELECT
    "t2"."id" AS "flow_id",
    "t2"."source_id"
  FROM "flows" AS "t2"
  WHERE
    NOT EXISTS(
      SELECT
        1
      FROM "sources" AS "t3"
      WHERE
        "t2"."source_id" = "t3"."id"
    )
) AS "t4"
ORDER BY
  "t4"."flow_id" ASC
;
