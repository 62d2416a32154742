-- Generated from tams_analytics.views.segment_gaps by `python -m tams_analytics.views --write sql/trino/views`;
-- do not edit: change the ibis expression and regenerate.
CREATE OR REPLACE VIEW "segment_gaps" AS
SELECT
  "t1"."flow_id",
  "t1"."prev_end_ns" AS "gap_start_ns",
  "t1"."start_ns" AS "gap_end_ns",
  "t1"."start_ns" - "t1"."prev_end_ns" AS "gap_ns",
  CONCAT(
    '[',
    CONCAT(
      IF("t1"."prev_end_ns" < 0, '-', ''),
      IF(
        LENGTH(CAST(ABS("t1"."prev_end_ns") AS VARCHAR)) > 9,
        SUBSTR(
          CAST(ABS("t1"."prev_end_ns") AS VARCHAR),
          IF((
            0 + 1
          ) >= 1, 0 + 1, 0 + 1 + LENGTH(CAST(ABS("t1"."prev_end_ns") AS VARCHAR))),
          LENGTH(CAST(ABS("t1"."prev_end_ns") AS VARCHAR)) - 9
        ),
        '0'
      ),
      ':',
      CAST(ABS("t1"."prev_end_ns") % 1000000000 AS VARCHAR)
    ),
    '_',
    CONCAT(
      IF("t1"."start_ns" < 0, '-', ''),
      IF(
        LENGTH(CAST(ABS("t1"."start_ns") AS VARCHAR)) > 9,
        SUBSTR(
          CAST(ABS("t1"."start_ns") AS VARCHAR),
          IF((
            0 + 1
          ) >= 1, 0 + 1, 0 + 1 + LENGTH(CAST(ABS("t1"."start_ns") AS VARCHAR))),
          LENGTH(CAST(ABS("t1"."start_ns") AS VARCHAR)) - 9
        ),
        '0'
      ),
      ':',
      CAST(ABS("t1"."start_ns") % 1000000000 AS VARCHAR)
    ),
    ')'
  ) AS "timerange"
FROM (
  SELECT
    "t0"."flow_id",
    "t0"."start_ns",
    "t0"."end_ns",
    LAG("t0"."end_ns") OVER (PARTITION BY "t0"."flow_id" ORDER BY "t0"."start_ns" ASC) AS "prev_end_ns"
  FROM "segments" AS "t0"
) AS "t1"
WHERE
  "t1"."start_ns" > "t1"."prev_end_ns"
;
