-- Generated from tams_analytics.views.flow_coverage by `python -m tams_analytics.views --write sql/trino/views`;
-- do not edit: change the ibis expression and regenerate.
CREATE OR REPLACE VIEW "flow_coverage" AS
SELECT
  "t2"."id" AS "flow_id",
  "t2"."source_id",
  "t2"."format",
  "t2"."label",
  COALESCE("t5"."segments", 0) AS "segments",
  "t5"."first_start_ns",
  "t5"."last_end_ns",
  COALESCE("t5"."covered_ns", 0) AS "covered_ns",
  COALESCE("t8"."gaps", 0) AS "gaps",
  COALESCE("t8"."gap_ns", 0) AS "gap_ns",
  IF(COALESCE("t5"."segments", 0) > 0, COALESCE("t8"."gaps", 0) + 1, 0) AS "runs",
  IF(
    COALESCE("t5"."segments", 0) > 0,
    CONCAT(
      '[',
      CONCAT(
        IF("t5"."first_start_ns" < 0, '-', ''),
        IF(
          LENGTH(CAST(ABS("t5"."first_start_ns") AS VARCHAR)) > 9,
          SUBSTR(
            CAST(ABS("t5"."first_start_ns") AS VARCHAR),
            IF((
              0 + 1
            ) >= 1, 0 + 1, 0 + 1 + LENGTH(CAST(ABS("t5"."first_start_ns") AS VARCHAR))),
            LENGTH(CAST(ABS("t5"."first_start_ns") AS VARCHAR)) - 9
          ),
          '0'
        ),
        ':',
        CAST(ABS("t5"."first_start_ns") % 1000000000 AS VARCHAR)
      ),
      '_',
      CONCAT(
        IF("t5"."last_end_ns" < 0, '-', ''),
        IF(
          LENGTH(CAST(ABS("t5"."last_end_ns") AS VARCHAR)) > 9,
          SUBSTR(
            CAST(ABS("t5"."last_end_ns") AS VARCHAR),
            IF((
              0 + 1
            ) >= 1, 0 + 1, 0 + 1 + LENGTH(CAST(ABS("t5"."last_end_ns") AS VARCHAR))),
            LENGTH(CAST(ABS("t5"."last_end_ns") AS VARCHAR)) - 9
          ),
          '0'
        ),
        ':',
        CAST(ABS("t5"."last_end_ns") % 1000000000 AS VARCHAR)
      ),
      ')'
    ),
    '()'
  ) AS "timerange"
FROM "flows" AS "t2"
LEFT OUTER JOIN (
  SELECT
    "t1"."flow_id",
    COUNT(*) AS "segments",
    MIN("t1"."start_ns") AS "first_start_ns",
    MAX("t1"."end_ns") AS "last_end_ns",
    SUM("t1"."end_ns" - "t1"."start_ns") AS "covered_ns"
  FROM "segments" AS "t1"
  GROUP BY
    1
) AS "t5"
  ON "t2"."id" = "t5"."flow_id"
LEFT OUTER JOIN (
  SELECT
    "t6"."flow_id",
    COUNT(*) AS "gaps",
    SUM("t6"."gap_ns") AS "gap_ns"
  FROM (
    SELECT
      "t4"."flow_id",
      "t4"."prev_end_ns" AS "gap_start_ns",
      "t4"."start_ns" AS "gap_end_ns",
      "t4"."start_ns" - "t4"."prev_end_ns" AS "gap_ns",
      CONCAT(
        '[',
        CONCAT(
          IF("t4"."prev_end_ns" < 0, '-', ''),
          IF(
            LENGTH(CAST(ABS("t4"."prev_end_ns") AS VARCHAR)) > 9,
            SUBSTR(
              CAST(ABS("t4"."prev_end_ns") AS VARCHAR),
              IF((
                0 + 1
              ) >= 1, 0 + 1, 0 + 1 + LENGTH(CAST(ABS("t4"."prev_end_ns") AS VARCHAR))),
              LENGTH(CAST(ABS("t4"."prev_end_ns") AS VARCHAR)) - 9
            ),
            '0'
          ),
          ':',
          CAST(ABS("t4"."prev_end_ns") % 1000000000 AS VARCHAR)
        ),
        '_',
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
        ')'
      ) AS "timerange"
    FROM (
      SELECT
        "t1"."flow_id",
        "t1"."start_ns",
        "t1"."end_ns",
        LAG("t1"."end_ns") OVER (PARTITION BY "t1"."flow_id" ORDER BY "t1"."start_ns" ASC) AS "prev_end_ns"
      FROM "segments" AS "t1"
    ) AS "t4"
    WHERE
      "t4"."start_ns" > "t4"."prev_end_ns"
  ) AS "t6"
  GROUP BY
    1
) AS "t8"
  ON "t2"."id" = "t8"."flow_id"
;
