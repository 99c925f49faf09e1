-- name: performance
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
