-- name: performance_raw
-- The reference implementation of SPEC §5 for one vehicle, straight from raw history: the
-- rollup reads must give the same figures (tests and `kilowatch bench` compare them).
-- $1 vehicle id, $2 window start, $3 window end (both floored to the UTC minute by the caller).
-- One set-based statement. Every history row is reached through an index range, in this order:
--   1. the vehicle's primary-key range for the window (its minutes, DC, heartbeat meterIds);
--   2. per attached meter, its primary-key range over the span of the vehicle's minutes on it;
--   3. per matched meter, vehicle_readings_meter_idx for the other vehicles whose heartbeat
--      carried it, plus the other vehicles assigned to it (assignments table);
--   4. per candidate sharer, its primary-key range, to decide whether it really was attached to
--      that meter in that minute (its latest meter-carrying heartbeat, else its assignment).
-- Each history read also repeats the window bounds, so the planner prunes to the window's
-- partitions even where the range itself comes from a LATERAL parameter.
-- Rows are paired per (meter, minute) and (vehicle, minute) by GROUP BY over UNION ALL rather
-- than by joins: the planner cannot estimate LATERAL range results, and a nested-loop join on a
-- bad estimate turns a day's 1,440 minutes into millions of comparisons; grouping stays linear.
WITH
vr AS (
    SELECT date_trunc('minute', recorded_at, 'UTC') AS minute, recorded_at,
           kwh_delivered_dc AS dc, battery_temp, meter_id
    FROM vehicle_readings
    WHERE vehicle_id = $1::text AND recorded_at >= $2::timestamptz AND recorded_at < $3::timestamptz
),
vmin AS (
    SELECT minute, sum(dc) AS dc,
           (array_agg(meter_id ORDER BY recorded_at DESC)
               FILTER (WHERE meter_id IS NOT NULL))[1] AS hb_meter
    FROM vr
    GROUP BY minute
),
-- An open assignment ends where the vehicle's next one (by from) begins.
asg AS MATERIALIZED (
    SELECT meter_id, valid_from,
           least(coalesce(valid_to, 'infinity'),
                 coalesce(lead(valid_from) OVER (ORDER BY valid_from, id), 'infinity')) AS valid_to
    FROM assignments
    WHERE vehicle_id = $1::text
),
-- A plain join, not a LATERAL per minute: a vehicle's effective assignments never overlap
-- (closed ones may not, an open one ends where the next begins), so at most one matches.
vatt AS (
    SELECT v.minute, v.dc, coalesce(v.hb_meter, a.meter_id) AS meter_id
    FROM vmin v
    LEFT JOIN asg a ON a.valid_from <= v.minute AND v.minute < a.valid_to
),
span AS (
    SELECT meter_id, min(minute) AS lo, max(minute) + interval '1 minute' AS hi
    FROM vatt WHERE meter_id IS NOT NULL GROUP BY meter_id
),
mmin AS (
    SELECT s.meter_id, r.minute, r.ac, r.n
    FROM span s
    CROSS JOIN LATERAL (
        SELECT date_trunc('minute', recorded_at, 'UTC') AS minute,
               sum(kwh_consumed_ac) AS ac, count(*) AS n
        FROM meter_readings
        WHERE meter_id = s.meter_id AND recorded_at >= s.lo AND recorded_at < s.hi
          AND recorded_at >= $2::timestamptz AND recorded_at < $3::timestamptz
        GROUP BY 1
    ) r
),
-- Matched minutes: attached to M, and M has at least one reading in that minute.
matched AS (
    SELECT meter_id, minute, sum(dc) AS dc, sum(ac) AS ac, sum(n) AS n
    FROM (SELECT meter_id, minute, dc, NULL::float8 AS ac, NULL::bigint AS n
          FROM vatt WHERE meter_id IS NOT NULL
          UNION ALL
          SELECT meter_id, minute, NULL, ac, n FROM mmin) u
    GROUP BY meter_id, minute
    HAVING count(dc) > 0 AND count(ac) > 0
),
mspan AS (
    SELECT meter_id, min(minute) AS lo, max(minute) + interval '1 minute' AS hi
    FROM matched GROUP BY meter_id
),
hb_cand AS (
    SELECT h.vehicle_id, date_trunc('minute', h.recorded_at, 'UTC') AS minute
    FROM mspan s
    CROSS JOIN LATERAL (
        SELECT vehicle_id, recorded_at
        FROM vehicle_readings
        WHERE meter_id = s.meter_id AND recorded_at >= s.lo AND recorded_at < s.hi
          AND recorded_at >= $2::timestamptz AND recorded_at < $3::timestamptz
    ) h
    WHERE h.vehicle_id <> $1::text
),
other_asg AS MATERIALIZED (
    SELECT a.vehicle_id, a.meter_id, a.valid_from,
           least(coalesce(a.valid_to, 'infinity'),
                 coalesce(lead(a.valid_from) OVER (PARTITION BY a.vehicle_id
                                                    ORDER BY a.valid_from, a.id),
                          'infinity')) AS valid_to
    FROM assignments a
    WHERE a.vehicle_id <> $1::text
      AND a.vehicle_id IN (SELECT o.vehicle_id FROM assignments o
                           WHERE o.meter_id IN (SELECT meter_id FROM mspan))
),
-- Other vehicles whose assignment puts them on a matched meter in a matched minute.
asg_cand AS MATERIALIZED (
    SELECT a.vehicle_id, m.minute, a.meter_id
    FROM matched m
    JOIN other_asg a ON a.meter_id = m.meter_id
                    AND a.valid_from <= m.minute AND m.minute < a.valid_to
),
cspan AS (
    SELECT vehicle_id, min(minute) AS lo, max(minute) + interval '1 minute' AS hi
    FROM (SELECT vehicle_id, minute FROM hb_cand
          UNION ALL SELECT vehicle_id, minute FROM asg_cand) c
    GROUP BY vehicle_id
),
cmin AS (
    SELECT s.vehicle_id, r.minute, r.dc, r.hb_meter
    FROM cspan s
    CROSS JOIN LATERAL (
        SELECT date_trunc('minute', recorded_at, 'UTC') AS minute, sum(kwh_delivered_dc) AS dc,
               (array_agg(meter_id ORDER BY recorded_at DESC)
                   FILTER (WHERE meter_id IS NOT NULL))[1] AS hb_meter
        FROM vehicle_readings
        WHERE vehicle_id = s.vehicle_id AND recorded_at >= s.lo AND recorded_at < s.hi
          AND recorded_at >= $2::timestamptz AND recorded_at < $3::timestamptz
        GROUP BY 1
    ) r
),
-- Each candidate's meter per minute: its latest meter-carrying heartbeat, else its assignment
-- (effective assignments of a vehicle never overlap, so there is at most one).
sharers AS (
    SELECT vehicle_id, minute, coalesce(max(hb_meter), max(asg_meter)) AS meter_id, sum(dc) AS dc
    FROM (SELECT vehicle_id, minute, hb_meter, NULL::text AS asg_meter, dc FROM cmin
          UNION ALL
          SELECT vehicle_id, minute, NULL, meter_id, NULL FROM asg_cand) c
    GROUP BY vehicle_id, minute
    HAVING count(dc) > 0
),
-- Per matched minute, the vehicle's share of M's AC among everyone attached to M then.
shared AS (
    SELECT meter_id, minute, dc, n,
           ac * CASE WHEN dc + others_dc > 0 THEN dc / (dc + others_dc)
                     ELSE 1.0 / (1 + others_n) END AS ac
    FROM (SELECT meter_id, minute,
                 sum(dc) FILTER (WHERE mine) AS dc, sum(ac) AS ac, sum(n) AS n,
                 coalesce(sum(dc) FILTER (WHERE NOT mine), 0) AS others_dc,
                 count(*) FILTER (WHERE NOT mine) AS others_n
          FROM (SELECT meter_id, minute, dc, ac, n, true AS mine FROM matched
                UNION ALL
                SELECT meter_id, minute, dc, NULL, NULL, false FROM sharers
                WHERE meter_id IS NOT NULL) u
          GROUP BY meter_id, minute
          HAVING bool_or(mine)) g
),
per_meter AS (
    SELECT meter_id, sum(ac) AS ac, count(*) AS minutes
    FROM shared GROUP BY meter_id
),
hours AS (
    SELECT generate_series(date_trunc('hour', $2::timestamptz, 'UTC'),
                           $3::timestamptz - interval '1 microsecond',
                           interval '1 hour') AS hour
),
per_hour AS (
    SELECT h.hour, coalesce(d.dc, 0) AS dc, coalesce(a.ac, 0) AS ac,
           coalesce(a.attached_dc, 0) AS attached_dc
    FROM hours h
    LEFT JOIN (SELECT date_trunc('hour', minute, 'UTC') AS hour, sum(dc) AS dc
               FROM vmin GROUP BY 1) d USING (hour)
    LEFT JOIN (SELECT date_trunc('hour', minute, 'UTC') AS hour, sum(ac) AS ac,
                      sum(dc) AS attached_dc
               FROM shared GROUP BY 1) a USING (hour)
)
SELECT
    EXISTS (SELECT 1 FROM vehicle_status WHERE vehicle_id = $1::text)
        OR EXISTS (SELECT 1 FROM assignments WHERE vehicle_id = $1::text) AS known,
    (SELECT count(*) FROM vr) AS vehicle_readings,
    (SELECT coalesce(sum(dc), 0) FROM vr) AS total_dc,
    (SELECT avg(battery_temp) FROM vr) AS avg_temp,
    (SELECT min(battery_temp) FROM vr) AS min_temp,
    (SELECT max(battery_temp) FROM vr) AS max_temp,
    (SELECT coalesce(sum(dc), 0) FROM shared) AS attached_dc,
    (SELECT coalesce(sum(ac), 0) FROM shared) AS total_ac,
    (SELECT coalesce(sum(n), 0) FROM shared) AS meter_readings,
    (SELECT coalesce(array_agg(meter_id ORDER BY meter_id), '{}') FROM per_meter) AS meter_ids,
    (SELECT coalesce(array_agg(ac ORDER BY meter_id), '{}') FROM per_meter) AS meter_ac,
    (SELECT coalesce(array_agg(minutes ORDER BY meter_id), '{}') FROM per_meter) AS meter_minutes,
    (SELECT array_agg(hour ORDER BY hour) FROM per_hour) AS hours,
    (SELECT array_agg(ac ORDER BY hour) FROM per_hour) AS hour_ac,
    (SELECT array_agg(dc ORDER BY hour) FROM per_hour) AS hour_dc,
    (SELECT array_agg(attached_dc ORDER BY hour) FROM per_hour) AS hour_attached_dc;

-- name: vehicle_floor
-- $1 vehicle id, $2 window start, $3 window end: the bare primary-key range sum that
-- `kilowatch bench` compares the full correlation against.
SELECT coalesce(sum(kwh_delivered_dc), 0) AS total_dc
FROM vehicle_readings
WHERE vehicle_id = $1::text AND recorded_at >= $2::timestamptz AND recorded_at < $3::timestamptz;

-- name: window_state
-- $1 window start, $2 window end, $3 a vehicle id or NULL. In the caller's snapshot: the
-- materialized region, the days holding dirty marks, the closure of the marks of the window's
-- materialized hours (vehicles and meters to read raw per hour), and for $3 the hours in which
-- that closure touches it (its own mark, a rollup row on a dirty meter, or a heartbeat or an
-- assignment naming a dirty meter); the rollups' generation (migration 0006).
WITH s AS (SELECT floor, frontier, generation FROM rollup_state),
m AS MATERIALIZED (
    SELECT d.hour, d.vehicle_id, d.meter_id
    FROM rollup_dirty d, s
    WHERE d.hour >= date_trunc('hour', $1::timestamptz, 'UTC') AND d.hour < $2::timestamptz
      AND d.hour >= s.floor AND d.hour < s.frontier
),
c AS MATERIALIZED (
    SELECT * FROM kilowatch_dirty_closure(
        ARRAY(SELECT hour FROM m ORDER BY hour, vehicle_id, meter_id),
        ARRAY(SELECT vehicle_id FROM m ORDER BY hour, vehicle_id, meter_id),
        ARRAY(SELECT meter_id FROM m ORDER BY hour, vehicle_id, meter_id))
),
x AS (
    SELECT c.hour FROM c WHERE c.vehicle_id = $3::text
    UNION
    SELECT c.hour FROM c
    JOIN rollup_attr_hour a ON a.vehicle_id = $3::text AND a.hour = c.hour AND a.meter_id = c.meter_id
    UNION
    SELECT c.hour FROM c
    WHERE c.meter_id IS NOT NULL AND $3::text IS NOT NULL AND (
        EXISTS (SELECT 1 FROM vehicle_readings r
                WHERE r.vehicle_id = $3::text AND r.recorded_at >= c.hour
                  AND r.recorded_at < c.hour + interval '1 hour' AND r.meter_id = c.meter_id)
        OR EXISTS (SELECT 1 FROM assignments a
                   WHERE a.vehicle_id = $3::text AND a.meter_id = c.meter_id
                     AND a.valid_from < c.hour + interval '1 hour' AND a.effective_to > c.hour))
)
SELECT s.floor, s.frontier, s.generation,
       ARRAY(SELECT DISTINCT date_trunc('day', hour, 'UTC') FROM m) AS dirty_days,
       ARRAY(SELECT hour FROM c WHERE vehicle_id IS NOT NULL ORDER BY hour, vehicle_id) AS dv_hours,
       ARRAY(SELECT vehicle_id FROM c WHERE vehicle_id IS NOT NULL ORDER BY hour, vehicle_id)
           AS dv_ids,
       ARRAY(SELECT hour FROM c WHERE meter_id IS NOT NULL ORDER BY hour, meter_id) AS dm_hours,
       ARRAY(SELECT meter_id FROM c WHERE meter_id IS NOT NULL ORDER BY hour, meter_id) AS dm_ids,
       ARRAY(SELECT hour FROM x ORDER BY hour) AS vehicle_hours
FROM s;

-- name: vehicle_rollup
-- $1 vehicle id, $2 day units, $3 hour units (kilowatch/rollups/plan.py), $4 raw range starts,
-- $5 raw range ends. The vehicle's figures from its rollup rows and, for the raw ranges, from
-- kilowatch_raw over its meters there (every sharer included). Index ranges only.
WITH ranges AS MATERIALIZED (
    SELECT lo, hi FROM unnest($4::timestamptz[], $5::timestamptz[]) AS r(lo, hi)
),
xmeters AS MATERIALIZED (
    SELECT DISTINCT x.meter_id, r.lo, r.hi
    FROM ranges r
    CROSS JOIN LATERAL (
        SELECT v.meter_id FROM vehicle_readings v
        WHERE v.vehicle_id = $1::text AND v.recorded_at >= r.lo AND v.recorded_at < r.hi
          AND v.meter_id IS NOT NULL
    ) x
    UNION
    SELECT a.meter_id, r.lo, r.hi
    FROM ranges r
    JOIN assignments a ON a.vehicle_id = $1::text AND a.valid_from < r.hi AND a.effective_to > r.lo
),
raw AS MATERIALIZED (
    SELECT * FROM kilowatch_raw(
        NULL, NULL,
        ARRAY(SELECT $1::text FROM ranges ORDER BY lo), ARRAY(SELECT lo FROM ranges ORDER BY lo),
        ARRAY(SELECT hi FROM ranges ORDER BY lo),
        ARRAY(SELECT meter_id FROM xmeters ORDER BY meter_id, lo),
        ARRAY(SELECT lo FROM xmeters ORDER BY meter_id, lo),
        ARRAY(SELECT hi FROM xmeters ORDER BY meter_id, lo))
    WHERE EXISTS (SELECT 1 FROM ranges)
),
own AS (
    SELECT NULL::timestamptz AS hour, dc, readings, temp_sum, temp_min, temp_max
    FROM rollup_vehicle_day WHERE vehicle_id = $1::text AND day = ANY($2::timestamptz[])
    UNION ALL
    SELECT hour, dc, readings, temp_sum, temp_min, temp_max
    FROM rollup_vehicle_hour WHERE vehicle_id = $1::text AND hour = ANY($3::timestamptz[])
    UNION ALL
    SELECT hour, dc, readings, temp_sum, temp_min, temp_max
    FROM raw WHERE kind = 'v' AND vehicle_id = $1::text
),
attr AS (
    SELECT NULL::timestamptz AS hour, meter_id, ac, dc, minutes, meter_readings, shared_minutes
    FROM rollup_attr_day WHERE vehicle_id = $1::text AND day = ANY($2::timestamptz[])
    UNION ALL
    SELECT hour, meter_id, ac, dc, minutes, meter_readings, shared_minutes
    FROM rollup_attr_hour WHERE vehicle_id = $1::text AND hour = ANY($3::timestamptz[])
    UNION ALL
    SELECT hour, meter_id, ac, dc, minutes, readings, shared_minutes
    FROM raw WHERE kind = 'a' AND vehicle_id = $1::text
),
per_meter AS (
    SELECT meter_id, sum(ac) AS ac, sum(dc) AS dc, sum(minutes) AS minutes,
           sum(meter_readings) AS meter_readings, sum(shared_minutes) AS shared_minutes
    FROM attr GROUP BY meter_id
),
own_hours AS (SELECT hour, sum(dc) AS dc FROM own WHERE hour IS NOT NULL GROUP BY hour),
attr_hours AS (
    SELECT hour, sum(ac) AS ac, sum(dc) AS dc FROM attr WHERE hour IS NOT NULL GROUP BY hour
)
SELECT
    EXISTS (SELECT 1 FROM vehicle_status WHERE vehicle_id = $1::text)
        OR EXISTS (SELECT 1 FROM assignments WHERE vehicle_id = $1::text) AS known,
    (SELECT coalesce(sum(readings), 0) FROM own) AS vehicle_readings,
    (SELECT coalesce(sum(dc), 0) FROM own) AS total_dc,
    (SELECT sum(temp_sum) FROM own) AS temp_sum,
    (SELECT min(temp_min) FROM own) AS min_temp,
    (SELECT max(temp_max) FROM own) AS max_temp,
    (SELECT coalesce(sum(dc), 0) FROM per_meter) AS attached_dc,
    (SELECT coalesce(sum(ac), 0) FROM per_meter) AS total_ac,
    (SELECT coalesce(sum(meter_readings), 0) FROM per_meter) AS meter_readings,
    ARRAY(SELECT meter_id FROM per_meter ORDER BY meter_id) AS meter_ids,
    ARRAY(SELECT ac FROM per_meter ORDER BY meter_id) AS meter_ac,
    ARRAY(SELECT minutes FROM per_meter ORDER BY meter_id) AS meter_minutes,
    ARRAY(SELECT hour FROM own_hours ORDER BY hour) AS own_hours,
    ARRAY(SELECT dc FROM own_hours ORDER BY hour) AS own_hour_dc,
    ARRAY(SELECT hour FROM attr_hours ORDER BY hour) AS attr_hours,
    ARRAY(SELECT ac FROM attr_hours ORDER BY hour) AS attr_hour_ac,
    ARRAY(SELECT dc FROM attr_hours ORDER BY hour) AS attr_hour_dc;

-- The fleet reads share one set of parameters (kilowatch/rollups/window.py `Window.fleet_args`):
-- $1 day units, $2 clean hour units (no dirty closure in them), $3 every hour of the window's
-- units without a closure (rollup_fleet_hour), $4 presence days, $5 their hour masks, then
-- kilowatch_window's lists for what the rollups cannot answer alone: $6 dirty hour units,
-- $7/$8 raw ranges, $9..$11 dirty vehicles (hour, id, end), $12..$14 dirty meters.

-- name: fleet_vehicles
-- Then $15 threshold, $16 sort (`vehicleId`, `efficiency`, `-lossKwh`), $17 cursor key (NULL:
-- none or a null key), $18 cursor vehicle id (NULL: first page), $19 limit, $20 belowThreshold
-- filter or NULL. Sorting is by one key k, ascending, nulls last, then by id: efficiency, -loss,
-- or none. The sort keys need only attributed AC and attached DC; a vehicle's own figures are
-- read for the page alone.
WITH w AS MATERIALIZED (
    SELECT * FROM kilowatch_window('{}', $6::timestamptz[], $7::timestamptz[],
                                   $8::timestamptz[], $9::timestamptz[], $10::text[],
                                   $11::timestamptz[], $12::timestamptz[], $13::text[],
                                   $14::timestamptz[], '{v,a}')
    WHERE cardinality($3::timestamptz[]) >= 0  -- $3 (fleet hours) is the summary's alone
),
attr AS (
    SELECT vehicle_id, ac, dc, meter_readings FROM rollup_attr_day WHERE day = ANY($1::timestamptz[])
    UNION ALL
    SELECT vehicle_id, ac, dc, meter_readings FROM rollup_attr_hour
    WHERE hour = ANY($2::timestamptz[])
    UNION ALL
    SELECT vehicle_id, ac, dc, readings FROM w WHERE kind = 'a'
),
per_vehicle AS (
    SELECT vehicle_id, sum(ac) AS total_ac, sum(dc) AS attached_dc,
           sum(meter_readings) AS meter_readings
    FROM attr GROUP BY vehicle_id
),
present AS (
    SELECT p.device_id AS vehicle_id FROM rollup_presence p
    JOIN unnest($4::timestamptz[], $5::int[]) AS u(day, mask)
      ON p.day = u.day AND p.kind = 'v' AND p.hours & u.mask <> 0
    UNION
    SELECT vehicle_id FROM w WHERE kind = 'v'
),
rated AS (
    SELECT p.vehicle_id, coalesce(a.total_ac, 0) AS total_ac,
           coalesce(a.attached_dc, 0) AS attached_dc, coalesce(a.meter_readings, 0) AS meter_readings,
           CASE WHEN a.total_ac > 0 THEN a.attached_dc / a.total_ac END AS efficiency,
           coalesce(a.total_ac - a.attached_dc, 0) AS loss
    FROM present p LEFT JOIN per_vehicle a USING (vehicle_id)
),
keyed AS (
    SELECT *, CASE $16::text WHEN 'efficiency' THEN efficiency WHEN '-lossKwh' THEN -loss END AS k
    FROM rated
    WHERE $20::boolean IS NULL OR coalesce(efficiency < $15::float8, false) = $20::boolean
),
page AS MATERIALIZED (
    SELECT * FROM keyed
    WHERE $18::text IS NULL
       OR ($17::float8 IS NULL AND k IS NULL AND vehicle_id > $18::text)
       OR ($17::float8 IS NOT NULL
           AND (k > $17::float8 OR (k = $17::float8 AND vehicle_id > $18::text) OR k IS NULL))
    ORDER BY k ASC NULLS LAST, vehicle_id
    LIMIT $19::int
),
own AS (
    SELECT vehicle_id, dc, readings FROM rollup_vehicle_day
    WHERE day = ANY($1::timestamptz[]) AND vehicle_id = ANY(ARRAY(SELECT vehicle_id FROM page))
    UNION ALL
    SELECT vehicle_id, dc, readings FROM rollup_vehicle_hour
    WHERE hour = ANY($2::timestamptz[]) AND vehicle_id = ANY(ARRAY(SELECT vehicle_id FROM page))
    UNION ALL
    SELECT vehicle_id, dc, readings FROM w
    WHERE kind = 'v' AND vehicle_id = ANY(ARRAY(SELECT vehicle_id FROM page))
),
own_sums AS (
    SELECT vehicle_id, sum(dc) AS total_dc, sum(readings) AS vehicle_readings
    FROM own GROUP BY vehicle_id
),
-- The meters the page's vehicles had a matched minute on: whose sums their estimates read.
page_meters AS (
    SELECT meter_id FROM rollup_attr_day
    WHERE day = ANY($1::timestamptz[]) AND vehicle_id = ANY(ARRAY(SELECT vehicle_id FROM page))
    UNION
    SELECT meter_id FROM rollup_attr_hour
    WHERE hour = ANY($2::timestamptz[]) AND vehicle_id = ANY(ARRAY(SELECT vehicle_id FROM page))
    UNION
    SELECT meter_id FROM w
    WHERE kind = 'a' AND vehicle_id = ANY(ARRAY(SELECT vehicle_id FROM page))
)
SELECT p.vehicle_id, coalesce(o.total_dc, 0) AS total_dc,
       coalesce(o.vehicle_readings, 0) AS vehicle_readings, p.total_ac, p.attached_dc,
       p.meter_readings, p.efficiency, p.loss, p.k,
       ARRAY(SELECT meter_id FROM page_meters ORDER BY meter_id) AS page_meters
FROM page p LEFT JOIN own_sums o USING (vehicle_id)
ORDER BY p.k ASC NULLS LAST, p.vehicle_id;

-- name: fleet_summary
-- Then $15 threshold. Totals from the fleet's hour sums where no mark is open, and from the
-- rows of the dirty hours and the raw ranges; the counts from presence; per-hour sums (whole
-- when the plan has no day units).
WITH w AS MATERIALIZED (
    SELECT * FROM kilowatch_window('{}', $6::timestamptz[], $7::timestamptz[],
                                   $8::timestamptz[], $9::timestamptz[], $10::text[],
                                   $11::timestamptz[], $12::timestamptz[], $13::text[],
                                   $14::timestamptz[], '{v,a,c}')
),
attr AS (
    SELECT vehicle_id, ac, dc FROM rollup_attr_day WHERE day = ANY($1::timestamptz[])
    UNION ALL
    SELECT vehicle_id, ac, dc FROM rollup_attr_hour WHERE hour = ANY($2::timestamptz[])
    UNION ALL
    SELECT vehicle_id, ac, dc FROM w WHERE kind = 'a'
),
per_vehicle AS (
    SELECT vehicle_id, sum(ac) AS total_ac, sum(dc) AS attached_dc FROM attr GROUP BY vehicle_id
),
present AS (
    SELECT p.kind, p.device_id FROM rollup_presence p
    JOIN unnest($4::timestamptz[], $5::int[]) AS u(day, mask)
      ON p.day = u.day AND p.hours & u.mask <> 0
    UNION
    SELECT 'v', vehicle_id FROM w WHERE kind = 'v'
    UNION
    SELECT 'm', meter_id FROM w WHERE kind = 'c'
),
per_hour AS (
    SELECT hour, dc, ac, attached_dc, meter_ac, idle_ac
    FROM rollup_fleet_hour WHERE hour = ANY($3::timestamptz[])
    UNION ALL
    SELECT hour, coalesce(sum(dc) FILTER (WHERE kind = 'v'), 0),
           coalesce(sum(ac) FILTER (WHERE kind = 'a'), 0),
           coalesce(sum(dc) FILTER (WHERE kind = 'a'), 0),
           coalesce(sum(ac) FILTER (WHERE kind = 'c'), 0),
           coalesce(sum(ac) FILTER (WHERE kind = 'c' AND vehicles = '{}'), 0)
    FROM w GROUP BY hour
),
hourly AS (
    SELECT hour, sum(dc) AS dc, sum(ac) AS ac, sum(attached_dc) AS attached_dc,
           sum(meter_ac) AS meter_ac
    FROM per_hour GROUP BY hour
)
SELECT
    (SELECT count(*) FROM present WHERE kind = 'v') AS vehicles,
    (SELECT count(*) FROM present WHERE kind = 'm') AS meters,
    (SELECT coalesce(sum(dc), 0) FROM per_hour) AS total_dc,
    (SELECT coalesce(sum(ac), 0) FROM per_hour) AS total_ac,
    (SELECT coalesce(sum(attached_dc), 0) FROM per_hour) AS attached_dc,
    (SELECT coalesce(sum(meter_ac), 0) FROM per_hour) AS meter_ac,
    (SELECT coalesce(sum(idle_ac), 0) FROM per_hour) AS unattributed_ac,
    (SELECT count(*) FROM per_vehicle
     WHERE total_ac > 0 AND attached_dc / total_ac < $15::float8) AS below_threshold,
    ARRAY(SELECT vehicle_id FROM per_vehicle
          WHERE total_ac > 0 AND attached_dc / total_ac < $15::float8) AS below_ids,
    ARRAY(SELECT hour FROM hourly ORDER BY hour) AS hours,
    ARRAY(SELECT dc FROM hourly ORDER BY hour) AS hour_dc,
    ARRAY(SELECT ac FROM hourly ORDER BY hour) AS hour_ac,
    ARRAY(SELECT attached_dc FROM hourly ORDER BY hour) AS hour_attached_dc,
    ARRAY(SELECT meter_ac FROM hourly ORDER BY hour) AS hour_meter_ac;

-- name: fleet_meters
-- Then $15 sort (`meterId`, `-unattributedAcKwh`), $16 cursor key, $17 cursor meter id (NULL:
-- first page), $18 limit. Keys and paging as fleet_vehicles. By id, the ledger is read for the
-- page alone; by unattributed AC, for every meter (the sort needs it).
WITH w AS MATERIALIZED (
    SELECT * FROM kilowatch_window('{}', $6::timestamptz[], $7::timestamptz[],
                                   $8::timestamptz[], $9::timestamptz[], $10::text[],
                                   $11::timestamptz[], $12::timestamptz[], $13::text[],
                                   $14::timestamptz[], '{a,c}')
    WHERE cardinality($3::timestamptz[]) >= 0  -- $3 (fleet hours) is the summary's alone
),
present AS (
    SELECT p.device_id AS meter_id FROM rollup_presence p
    JOIN unnest($4::timestamptz[], $5::int[]) AS u(day, mask)
      ON p.day = u.day AND p.kind = 'm' AND p.hours & u.mask <> 0
    UNION
    SELECT meter_id FROM w WHERE kind = 'c'
),
-- Every meter's unattributed AC, only when the sort asks for it.
idle_all AS (
    SELECT meter_id, sum(ac) AS idle FROM (
        SELECT meter_id, ac FROM rollup_config_day
        WHERE day = ANY($1::timestamptz[]) AND vehicles = '{}'
        UNION ALL
        SELECT meter_id, ac FROM rollup_config_hour
        WHERE hour = ANY($2::timestamptz[]) AND vehicles = '{}'
        UNION ALL
        SELECT meter_id, ac FROM w WHERE kind = 'c' AND vehicles = '{}'
    ) i
    WHERE $15::text = '-unattributedAcKwh'
    GROUP BY meter_id
),
keyed AS (
    SELECT p.meter_id,
           CASE $15::text WHEN '-unattributedAcKwh' THEN -coalesce(i.idle, 0) END AS k
    FROM present p LEFT JOIN idle_all i USING (meter_id)
),
page AS MATERIALIZED (
    SELECT * FROM keyed
    WHERE $17::text IS NULL
       OR ($16::float8 IS NULL AND k IS NULL AND meter_id > $17::text)
       OR ($16::float8 IS NOT NULL
           AND (k > $16::float8 OR (k = $16::float8 AND meter_id > $17::text) OR k IS NULL))
    ORDER BY k ASC NULLS LAST, meter_id
    LIMIT $18::int
),
configs AS (
    SELECT meter_id, vehicles, minutes, readings, ac FROM rollup_config_day
    WHERE day = ANY($1::timestamptz[]) AND meter_id = ANY(ARRAY(SELECT meter_id FROM page))
    UNION ALL
    SELECT meter_id, vehicles, minutes, readings, ac FROM rollup_config_hour
    WHERE hour = ANY($2::timestamptz[]) AND meter_id = ANY(ARRAY(SELECT meter_id FROM page))
    UNION ALL
    SELECT meter_id, vehicles, minutes, readings, ac FROM w
    WHERE kind = 'c' AND meter_id = ANY(ARRAY(SELECT meter_id FROM page))
),
ledger AS (
    SELECT meter_id, sum(ac) AS ac, coalesce(sum(ac) FILTER (WHERE vehicles = '{}'), 0) AS idle,
           sum(readings) AS meter_readings,
           coalesce(sum(minutes) FILTER (WHERE vehicles <> '{}'), 0) AS matched_minutes
    FROM configs GROUP BY meter_id
),
given AS (
    SELECT meter_id, count(DISTINCT vehicle_id) AS vehicles FROM (
        SELECT meter_id, vehicle_id FROM rollup_attr_day
        WHERE day = ANY($1::timestamptz[]) AND meter_id = ANY(ARRAY(SELECT meter_id FROM page))
        UNION ALL
        SELECT meter_id, vehicle_id FROM rollup_attr_hour
        WHERE hour = ANY($2::timestamptz[]) AND meter_id = ANY(ARRAY(SELECT meter_id FROM page))
        UNION ALL
        SELECT meter_id, vehicle_id FROM w
        WHERE kind = 'a' AND meter_id = ANY(ARRAY(SELECT meter_id FROM page))
    ) g GROUP BY meter_id
)
SELECT p.meter_id, l.ac, l.idle, l.meter_readings, l.matched_minutes,
       coalesce(g.vehicles, 0) AS vehicles, p.k
FROM page p JOIN ledger l USING (meter_id) LEFT JOIN given g USING (meter_id)
ORDER BY p.k ASC NULLS LAST, p.meter_id;

-- name: meter_configs
-- The estimator's sums (SPEC §5.3) of the meters $1 over a window, per (meter, attached
-- vehicles) or, for several vehicles, per unit too: $2 day units, $3 hour units, $4/$5 raw
-- range starts/ends, $6/$7/$8 the (hour, meter, end) of unit hours whose ledger is dirty (read
-- raw). Rollup rows by key range; raw minutes through kilowatch_raw's ledger of these meters.
WITH dirty AS MATERIALIZED (
    SELECT d.hour, d.meter_id, d.hi
    FROM unnest($6::timestamptz[], $7::text[], $8::timestamptz[]) AS d(hour, meter_id, hi)
    WHERE d.meter_id = ANY($1::text[])
),
ranges AS MATERIALIZED (
    SELECT m.meter_id, r.lo, r.hi
    FROM unnest($1::text[]) AS m(meter_id)
    CROSS JOIN unnest($4::timestamptz[], $5::timestamptz[]) AS r(lo, hi)
    UNION ALL
    SELECT meter_id, hour, hi FROM dirty
),
raw AS MATERIALIZED (
    SELECT * FROM kilowatch_raw(
        NULL, NULL, '{}', '{}', '{}',
        ARRAY(SELECT meter_id FROM ranges ORDER BY meter_id, lo),
        ARRAY(SELECT lo FROM ranges ORDER BY meter_id, lo),
        ARRAY(SELECT hi FROM ranges ORDER BY meter_id, lo))
    WHERE EXISTS (SELECT 1 FROM ranges)
),
-- The hours' rows by their meters' primary-key ranges: `+ interval '0'` keeps a generic plan
-- from trading them for the hour index and a filter over every meter's rows of those hours.
c AS (
    SELECT meter_id, vehicles, minutes, ac, ac2, dc, dc_ac, dc_dc FROM rollup_config_day
    WHERE meter_id = ANY($1::text[]) AND day + interval '0' = ANY($2::timestamptz[])
    UNION ALL
    SELECT t.meter_id, t.vehicles, t.minutes, t.ac, t.ac2, t.dc, t.dc_ac, t.dc_dc
    FROM rollup_config_hour t
    WHERE t.meter_id = ANY($1::text[]) AND t.hour + interval '0' = ANY($3::timestamptz[])
      AND NOT EXISTS (SELECT 1 FROM dirty d WHERE d.hour = t.hour AND d.meter_id = t.meter_id)
    UNION ALL
    SELECT meter_id, vehicles, minutes, ac, ac2, dcs, dc_ac, dc_dc FROM raw
    WHERE kind = 'c' AND meter_id = ANY($1::text[])
)
-- Added up here where that is cheap (configurations of none or one vehicle: scalars), by the
-- caller for the rest (estimate.configs: an aggregate over arrays costs PostgreSQL a function
-- call per row and element).
SELECT meter_id, vehicles, sum(minutes)::integer, sum(ac), sum(ac2),
       CASE WHEN cardinality(vehicles) = 0 THEN '{}' ELSE ARRAY[sum(dc[1])] END,
       CASE WHEN cardinality(vehicles) = 0 THEN '{}' ELSE ARRAY[sum(dc_ac[1])] END,
       CASE WHEN cardinality(vehicles) = 0 THEN '{}' ELSE ARRAY[sum(dc_dc[1])] END
FROM c WHERE true AND cardinality(vehicles) <= 1
GROUP BY meter_id, vehicles
UNION ALL
SELECT * FROM c WHERE true AND cardinality(vehicles) > 1;

-- name: fleet_configs
-- The estimator's sums of every meter over a window, as meter_configs: $1 day units, $2 clean
-- hour units, $3 dirty hour units, $4/$5 raw ranges, $6/$7/$8 dirty meters (hour, id, end), as
-- in the fleet reads (kilowatch_window). Meters nobody was attached to come as one idle row
-- each, which no fit uses: finding the meters somebody used first (a pass over the rows kept in
-- a tuplestore, which spilled to disk) cost more than three times this whole statement.
WITH w AS MATERIALIZED (
    SELECT * FROM kilowatch_window('{}', $3::timestamptz[], $4::timestamptz[], $5::timestamptz[],
                                   '{}', '{}', '{}', $6::timestamptz[], $7::text[],
                                   $8::timestamptz[], '{c}')
),
c AS NOT MATERIALIZED (
    SELECT meter_id, vehicles, minutes, ac, ac2, dc, dc_ac, dc_dc FROM rollup_config_day
    WHERE day = ANY($1::timestamptz[])
    UNION ALL
    SELECT meter_id, vehicles, minutes, ac, ac2, dc, dc_ac, dc_dc FROM rollup_config_hour
    WHERE hour = ANY($2::timestamptz[])
    UNION ALL
    SELECT meter_id, vehicles, minutes, ac, ac2, dcs, dc_ac, dc_dc FROM w WHERE kind = 'c'
)
-- Added up here where that is cheap (configurations of none or one vehicle: scalars), by the
-- caller for the rest (estimate.configs: an aggregate over arrays costs PostgreSQL a function
-- call per row and element).
SELECT meter_id, vehicles, sum(minutes)::integer, sum(ac), sum(ac2),
       CASE WHEN cardinality(vehicles) = 0 THEN '{}' ELSE ARRAY[sum(dc[1])] END,
       CASE WHEN cardinality(vehicles) = 0 THEN '{}' ELSE ARRAY[sum(dc_ac[1])] END,
       CASE WHEN cardinality(vehicles) = 0 THEN '{}' ELSE ARRAY[sum(dc_dc[1])] END
FROM c WHERE cardinality(vehicles) <= 1
GROUP BY meter_id, vehicles
UNION ALL
SELECT * FROM c WHERE cardinality(vehicles) > 1;
