-- Generated from tams_analytics.views.segment_runs by `python -m tams_analytics.views --write sql/trino/views`;
-- do not edit: change the ibis expression and regenerate.
CREATE OR REPLACE VIEW "segment_runs" AS
SELECT
  "t4"."flow_id",
  "t4"."run",
  "t4"."start_ns",
  "t4"."end_ns",
  "t4"."segments",
  CONCAT(
    '[',
    CONCAT(
      IF("t4"."start_ns" < 0, '-', ''),
      IF(
        LENGTH(CAST(ABS("t4"."start_ns") AS VARCHAR)) > 9,
        SUBSTR(
          CAST(ABS("t4"."start_ns") AS VARCHAR),
          IF((
            0 + 1
          ) >= 1, 0 + 1, 0 + 1 + LENGTH(CAST(ABS("t4"."start_ns") AS VARCHAR))),
          LENGTH(CAST(ABS("t4"."start_ns") AS VARCHAR)) - 9
        ),
        '0'
      ),
      ':',
      CAST(ABS("t4"."start_ns") % 1000000000 AS VARCHAR)
    ),
    '_',
    CONCAT(
      IF("t4"."end_ns" < 0, '-', ''),
      IF(
        LENGTH(CAST(ABS("t4"."end_ns") AS VARCHAR)) > 9,
        SUBSTR(
          CAST(ABS("t4"."end_ns") AS VARCHAR),
          IF((
            0 + 1
          ) >= 1, 0 + 1, 0 + 1 + LENGTH(CAST(ABS("t4"."end_ns") AS VARCHAR))),
          LENGTH(CAST(ABS("t4"."end_ns") AS VARCHAR)) - 9
        ),
        '0'
      ),
      ':',
      CAST(ABS("t4"."end_ns") % 1000000000 AS VARCHAR)
    ),
    ')'
  ) AS "timerange"
FROM (
  SELECT
    "t3"."flow_id",
    "t3"."run",
    MIN("t3"."start_ns") AS "start_ns",
    MAX("t3"."end_ns") AS "end_ns",
    COUNT(*) AS "segments"
  FROM (
    SELECT
      "t2"."flow_id",
      "t2"."start_ns",
      "t2"."end_ns",
      "t2"."prev_end_ns",
      "t2"."starts_run",
      SUM("t2"."starts_run") OVER (
        PARTITION BY "t2"."flow_id"
        ORDER BY "t2"."start_ns" ASC
        ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW
      ) AS "run"
    FROM (
      SELECT
        "t1"."flow_id",
        "t1"."start_ns",
        "t1"."end_ns",
        "t1"."prev_end_ns",
        IF((
          "t1"."prev_end_ns" IS NULL
        ) OR (
          "t1"."start_ns" > "t1"."prev_end_ns"
        ), 1, 0) AS "starts_run"
      FROM (
        SELECT
          "t0"."flow_id",
          "t0"."start_ns",
          "t0"."end_ns",
          LAG("t0"."end_ns") OVER (PARTITION BY "t0"."flow_id" ORDER BY "t0"."start_ns" ASC) AS "prev_end_ns"
        FROM "segments" AS "t0"
      ) AS "t1"
    ) AS "t2"
  ) AS "t3"
  GROUP BY
    1,
    2
) AS "t4"
;
