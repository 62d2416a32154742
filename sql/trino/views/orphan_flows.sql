-- Generated from tams_analytics.views.orphan_flows by `python -m tams_analytics.views --write sql/trino/views`;
-- do not edit: change the ibis expression and regenerate.
CREATE OR REPLACE VIEW "orphan_flows" AS
SELECT
  "t2"."id",
  "t2"."source_id",
  "t2"."format",
  "t2"."label",
  "t2"."created"
FROM "flows" AS "t2"
WHERE
  NOT EXISTS(
    SELECT
      1
    FROM "sources" AS "t3"
    WHERE
      "t2"."source_id" = "t3"."id"
  )
;
