-- The rollup refresher's statements (kilowatch/rollups/refresher.py). Each runs inside one
-- REPEATABLE READ transaction of the refresher, after `lock`.

-- name: target
-- How far the frontier may advance now: no transaction still running began before
-- target + 1 min + grace, so every row below it that this snapshot cannot see is marked dirty
-- (kilowatch_late_before). Run on its own, before the refresher's transaction takes its snapshot.
SELECT least(kilowatch_late_before(),
             date_trunc('minute', min(a.xact_start) - interval '2 minutes 1 second', 'UTC'))
           AS target,
       bool_or(a.xact_start IS NULL AND a.query = '<insufficient privilege>') AS hidden
FROM pg_stat_activity a
WHERE a.datname = current_database() AND a.pid <> pg_backend_pid()
  AND (a.xact_start IS NOT NULL OR a.query = '<insufficient privilege>');

-- name: lock
-- One refresher at a time, whichever process runs it; false: another one is at work.
SELECT pg_try_advisory_xact_lock(7026101);

-- name: wait_lock
-- The refresher's lock, waited for (retention's floor move must not race a refresh).
SELECT pg_advisory_xact_lock(7026101);

-- name: state
SELECT floor, frontier FROM rollup_state FOR UPDATE;

-- name: advance
-- $1 old frontier, $2 new frontier (the same hour, or the next hour's start): materializes the
-- minutes [$1, $2) of every device and adds them to the hour rows; marks of hours that begin at
-- or after $1 are covered by it (their rows are visible to this snapshot) and dropped.
WITH raw AS MATERIALIZED (
    SELECT * FROM kilowatch_raw($1::timestamptz, $2::timestamptz,
                                NULL, NULL, NULL, NULL, NULL, NULL)
), v AS (
    INSERT INTO rollup_vehicle_hour AS t
        (vehicle_id, hour, dc, readings, temp_sum, temp_min, temp_max)
    SELECT vehicle_id, hour, dc, readings, temp_sum, temp_min, temp_max FROM raw WHERE kind = 'v'
    ON CONFLICT (vehicle_id, hour) DO UPDATE
    SET dc = t.dc + EXCLUDED.dc, readings = t.readings + EXCLUDED.readings,
        temp_sum = t.temp_sum + EXCLUDED.temp_sum,
        temp_min = least(t.temp_min, EXCLUDED.temp_min),
        temp_max = greatest(t.temp_max, EXCLUDED.temp_max)
), a AS (
    INSERT INTO rollup_attr_hour AS t
        (vehicle_id, hour, meter_id, ac, dc, minutes, shared_minutes, meter_readings)
    SELECT vehicle_id, hour, meter_id, ac, dc, minutes, shared_minutes, readings
    FROM raw WHERE kind = 'a'
    ON CONFLICT (vehicle_id, hour, meter_id) DO UPDATE
    SET ac = t.ac + EXCLUDED.ac, dc = t.dc + EXCLUDED.dc, minutes = t.minutes + EXCLUDED.minutes,
        shared_minutes = t.shared_minutes + EXCLUDED.shared_minutes,
        meter_readings = t.meter_readings + EXCLUDED.meter_readings
), c AS (
    INSERT INTO rollup_config_hour AS t
        (meter_id, hour, vehicles, minutes, readings, ac, ac2, dc, dc_ac, dc_dc)
    SELECT meter_id, hour, vehicles, minutes, readings, ac, ac2, dcs, dc_ac, dc_dc
    FROM raw WHERE kind = 'c'
    ON CONFLICT (meter_id, hour, vehicles) DO UPDATE
    SET minutes = t.minutes + EXCLUDED.minutes, readings = t.readings + EXCLUDED.readings,
        ac = t.ac + EXCLUDED.ac, ac2 = t.ac2 + EXCLUDED.ac2,
        dc = kilowatch_array_add(t.dc, EXCLUDED.dc),
        dc_ac = kilowatch_array_add(t.dc_ac, EXCLUDED.dc_ac),
        dc_dc = kilowatch_array_add(t.dc_dc, EXCLUDED.dc_dc)
), p AS (
    INSERT INTO rollup_presence AS t (day, kind, device_id, hours)
    SELECT date_trunc('day', hour, 'UTC'), CASE kind WHEN 'v' THEN 'v' ELSE 'm' END,
           coalesce(vehicle_id, meter_id),
           bit_or(1 << extract(hour FROM hour AT TIME ZONE 'UTC')::int)
    FROM raw WHERE kind IN ('v', 'c') GROUP BY 1, 2, 3
    ON CONFLICT (day, kind, device_id) DO UPDATE SET hours = t.hours | EXCLUDED.hours
), f AS (
    INSERT INTO rollup_fleet_hour AS t (hour, dc, ac, attached_dc, meter_ac, idle_ac)
    SELECT hour, coalesce(sum(dc) FILTER (WHERE kind = 'v'), 0),
           coalesce(sum(ac) FILTER (WHERE kind = 'a'), 0),
           coalesce(sum(dc) FILTER (WHERE kind = 'a'), 0),
           coalesce(sum(ac) FILTER (WHERE kind = 'c'), 0),
           coalesce(sum(ac) FILTER (WHERE kind = 'c' AND vehicles = '{}'), 0)
    FROM raw GROUP BY hour
    ON CONFLICT (hour) DO UPDATE
    SET dc = t.dc + EXCLUDED.dc, ac = t.ac + EXCLUDED.ac,
        attached_dc = t.attached_dc + EXCLUDED.attached_dc,
        meter_ac = t.meter_ac + EXCLUDED.meter_ac, idle_ac = t.idle_ac + EXCLUDED.idle_ac
), covered AS (
    DELETE FROM rollup_dirty WHERE hour >= $1::timestamptz AND hour < $2::timestamptz
)
UPDATE rollup_state SET frontier = $2::timestamptz
RETURNING (SELECT count(*) FILTER (WHERE kind = 'v') FROM raw) AS vehicle_hours,
          (SELECT coalesce(sum(readings) FILTER (WHERE kind IN ('v', 'c')), 0) FROM raw)
              AS readings;

-- name: marks
-- $1 frontier, $2 limit: dirty marks of materialized hours, oldest first.
SELECT id, hour, vehicle_id, meter_id FROM rollup_dirty
WHERE hour < $1::timestamptz ORDER BY hour, id LIMIT $2::int;

-- name: drop_marks
-- $1 mark ids this transaction has dealt with.
DELETE FROM rollup_dirty WHERE id = ANY($1::bigint[]);

-- name: clear_hours
-- $1 hours recomputed whole: their rows go.
WITH v AS (DELETE FROM rollup_vehicle_hour WHERE hour = ANY($1::timestamptz[])),
     a AS (DELETE FROM rollup_attr_hour WHERE hour = ANY($1::timestamptz[]))
DELETE FROM rollup_config_hour WHERE hour = ANY($1::timestamptz[]);

-- name: clear_closure
-- $1 hours, $2 vehicle ids (own figures); $3 hours, $4 meter ids (ledgers): their rows go.
WITH v AS (
    DELETE FROM rollup_vehicle_hour t USING unnest($1::timestamptz[], $2::text[]) AS d(hour, id)
    WHERE t.hour = d.hour AND t.vehicle_id = d.id
), a AS (
    DELETE FROM rollup_attr_hour t USING unnest($3::timestamptz[], $4::text[]) AS d(hour, id)
    WHERE t.hour = d.hour AND t.meter_id = d.id
)
DELETE FROM rollup_config_hour t USING unnest($3::timestamptz[], $4::text[]) AS d(hour, id)
WHERE t.hour = d.hour AND t.meter_id = d.id;

-- name: recompute
-- $1 hours recomputed whole, with $2 their ends; then the scoped closure: $3 vehicle ids,
-- $4 from, $5 to (own figures), $6 meter ids, $7 from, $8 to (ledgers). Writes fresh rows.
WITH raw AS MATERIALIZED (
    SELECT r.* FROM unnest($1::timestamptz[], $2::timestamptz[]) AS w(lo, hi)
    CROSS JOIN LATERAL kilowatch_raw(w.lo, w.hi, NULL, NULL, NULL, NULL, NULL, NULL) r
    UNION ALL
    SELECT * FROM kilowatch_raw(NULL, NULL, $3::text[], $4::timestamptz[], $5::timestamptz[],
                                $6::text[], $7::timestamptz[], $8::timestamptz[])
), v AS (
    INSERT INTO rollup_vehicle_hour (vehicle_id, hour, dc, readings, temp_sum, temp_min, temp_max)
    SELECT vehicle_id, hour, dc, readings, temp_sum, temp_min, temp_max FROM raw WHERE kind = 'v'
), a AS (
    INSERT INTO rollup_attr_hour
        (vehicle_id, hour, meter_id, ac, dc, minutes, shared_minutes, meter_readings)
    SELECT vehicle_id, hour, meter_id, ac, dc, minutes, shared_minutes, readings
    FROM raw WHERE kind = 'a'
), p AS (
    INSERT INTO rollup_presence AS t (day, kind, device_id, hours)
    SELECT date_trunc('day', hour, 'UTC'), CASE kind WHEN 'v' THEN 'v' ELSE 'm' END,
           coalesce(vehicle_id, meter_id),
           bit_or(1 << extract(hour FROM hour AT TIME ZONE 'UTC')::int)
    FROM raw WHERE kind IN ('v', 'c') GROUP BY 1, 2, 3
    ON CONFLICT (day, kind, device_id) DO UPDATE SET hours = t.hours | EXCLUDED.hours
)
INSERT INTO rollup_config_hour (meter_id, hour, vehicles, minutes, readings, ac, ac2, dc, dc_ac,
                                dc_dc)
SELECT meter_id, hour, vehicles, minutes, readings, ac, ac2, dcs, dc_ac, dc_dc
FROM raw WHERE kind = 'c';

-- name: roll_fleet_hours
-- $1 hours whose rows were recomputed (after recompute): their fleet sums, summed again.
INSERT INTO rollup_fleet_hour AS t (hour, dc, ac, attached_dc, meter_ac, idle_ac)
SELECT h.hour,
       coalesce((SELECT sum(v.dc) FROM rollup_vehicle_hour v WHERE v.hour = h.hour), 0),
       coalesce((SELECT sum(a.ac) FROM rollup_attr_hour a WHERE a.hour = h.hour), 0),
       coalesce((SELECT sum(a.dc) FROM rollup_attr_hour a WHERE a.hour = h.hour), 0),
       coalesce((SELECT sum(c.ac) FROM rollup_config_hour c WHERE c.hour = h.hour), 0),
       coalesce((SELECT sum(c.ac) FROM rollup_config_hour c
                 WHERE c.hour = h.hour AND c.vehicles = '{}'), 0)
FROM (SELECT DISTINCT unnest($1::timestamptz[]) AS hour) h
ON CONFLICT (hour) DO UPDATE
SET dc = EXCLUDED.dc, ac = EXCLUDED.ac, attached_dc = EXCLUDED.attached_dc,
    meter_ac = EXCLUDED.meter_ac, idle_ac = EXCLUDED.idle_ac;

-- name: closure
-- $1 hours, $2 vehicle ids, $3 meter ids of dirty marks: what must be recomputed per hour.
SELECT hour, vehicle_id, meter_id FROM kilowatch_dirty_closure($1::timestamptz[], $2::text[],
                                                               $3::text[]);

-- name: clear_days
-- $1 days about to be rewritten whole (a statement of its own: an INSERT does not see the
-- deletions of the statement it is part of, and would collide with the old keys).
WITH v AS (DELETE FROM rollup_vehicle_day WHERE day = ANY($1::timestamptz[])),
     a AS (DELETE FROM rollup_attr_day WHERE day = ANY($1::timestamptz[]))
DELETE FROM rollup_config_day WHERE day = ANY($1::timestamptz[]);

-- name: roll_days
-- $1 days wholly written from their hour rows (after clear_days).
WITH days AS (SELECT d AS day FROM unnest($1::timestamptz[]) AS d),
     v AS (
    INSERT INTO rollup_vehicle_day (vehicle_id, day, dc, readings, temp_sum, temp_min, temp_max)
    SELECT h.vehicle_id, d.day, sum(h.dc), sum(h.readings), sum(h.temp_sum), min(h.temp_min),
           max(h.temp_max)
    FROM days d JOIN rollup_vehicle_hour h ON h.hour >= d.day AND h.hour < d.day + interval '1 day'
    GROUP BY h.vehicle_id, d.day
), a AS (
    INSERT INTO rollup_attr_day
        (vehicle_id, day, meter_id, ac, dc, minutes, shared_minutes, meter_readings)
    SELECT h.vehicle_id, d.day, h.meter_id, sum(h.ac), sum(h.dc), sum(h.minutes),
           sum(h.shared_minutes), sum(h.meter_readings)
    FROM days d JOIN rollup_attr_hour h ON h.hour >= d.day AND h.hour < d.day + interval '1 day'
    GROUP BY h.vehicle_id, d.day, h.meter_id
)
INSERT INTO rollup_config_day (meter_id, day, vehicles, minutes, readings, ac, ac2, dc, dc_ac,
                               dc_dc)
SELECT h.meter_id, d.day, h.vehicles, sum(h.minutes), sum(h.readings), sum(h.ac), sum(h.ac2),
       kilowatch_array_sum(h.dc), kilowatch_array_sum(h.dc_ac), kilowatch_array_sum(h.dc_dc)
FROM days d JOIN rollup_config_hour h ON h.hour >= d.day AND h.hour < d.day + interval '1 day'
GROUP BY h.meter_id, d.day, h.vehicles;

-- name: clear_day_keys
-- The day rows of some keys, about to be rewritten: $1 days, $2 vehicle ids (own figures);
-- $3 days, $4 meter ids (ledgers: every vehicle's row on that meter, and its configurations).
WITH vk AS (SELECT day, id FROM unnest($1::timestamptz[], $2::text[]) AS k(day, id)),
     mk AS (SELECT day, id FROM unnest($3::timestamptz[], $4::text[]) AS k(day, id)),
     v AS (DELETE FROM rollup_vehicle_day t USING vk WHERE t.day = vk.day AND t.vehicle_id = vk.id),
     a AS (DELETE FROM rollup_attr_day t USING mk WHERE t.day = mk.day AND t.meter_id = mk.id)
DELETE FROM rollup_config_day t USING mk WHERE t.day = mk.day AND t.meter_id = mk.id;

-- name: roll_day_keys
-- Writes the day rows of those keys from their hour rows (after clear_day_keys), same $1..$4.
WITH vk AS (SELECT DISTINCT day, id FROM unnest($1::timestamptz[], $2::text[]) AS k(day, id)),
     mk AS (SELECT DISTINCT day, id FROM unnest($3::timestamptz[], $4::text[]) AS k(day, id)),
     v AS (
    INSERT INTO rollup_vehicle_day (vehicle_id, day, dc, readings, temp_sum, temp_min, temp_max)
    SELECT h.vehicle_id, k.day, sum(h.dc), sum(h.readings), sum(h.temp_sum), min(h.temp_min),
           max(h.temp_max)
    FROM vk k JOIN rollup_vehicle_hour h
      ON h.vehicle_id = k.id AND h.hour >= k.day AND h.hour < k.day + interval '1 day'
    GROUP BY h.vehicle_id, k.day
), a AS (
    INSERT INTO rollup_attr_day
        (vehicle_id, day, meter_id, ac, dc, minutes, shared_minutes, meter_readings)
    SELECT h.vehicle_id, k.day, h.meter_id, sum(h.ac), sum(h.dc), sum(h.minutes),
           sum(h.shared_minutes), sum(h.meter_readings)
    FROM mk k JOIN rollup_attr_hour h
      ON h.meter_id = k.id AND h.hour >= k.day AND h.hour < k.day + interval '1 day'
    GROUP BY h.vehicle_id, k.day, h.meter_id
)
INSERT INTO rollup_config_day (meter_id, day, vehicles, minutes, readings, ac, ac2, dc, dc_ac,
                               dc_dc)
SELECT h.meter_id, k.day, h.vehicles, sum(h.minutes), sum(h.readings), sum(h.ac), sum(h.ac2),
       kilowatch_array_sum(h.dc), kilowatch_array_sum(h.dc_ac), kilowatch_array_sum(h.dc_dc)
FROM mk k JOIN rollup_config_hour h
  ON h.meter_id = k.id AND h.hour >= k.day AND h.hour < k.day + interval '1 day'
GROUP BY h.meter_id, k.day, h.vehicles;

-- name: drop_below_floor
-- $1 new floor (retention): rollup rows and marks below it go, and the floor moves up, so reads
-- of those hours go to raw history (until its partitions are dropped) in the same snapshot.
WITH v AS (DELETE FROM rollup_vehicle_hour WHERE hour < $1::timestamptz),
     a AS (DELETE FROM rollup_attr_hour WHERE hour < $1::timestamptz),
     c AS (DELETE FROM rollup_config_hour WHERE hour < $1::timestamptz),
     vd AS (DELETE FROM rollup_vehicle_day WHERE day < $1::timestamptz),
     ad AS (DELETE FROM rollup_attr_day WHERE day < $1::timestamptz),
     cd AS (DELETE FROM rollup_config_day WHERE day < $1::timestamptz),
     m AS (DELETE FROM rollup_dirty WHERE hour < $1::timestamptz),
     f AS (DELETE FROM rollup_fleet_hour WHERE hour < $1::timestamptz),
     p AS (DELETE FROM rollup_presence WHERE day < date_trunc('day', $1::timestamptz, 'UTC'))
UPDATE rollup_state SET floor = greatest(floor, $1::timestamptz),
                        frontier = greatest(frontier, $1::timestamptz);

-- name: lag
-- For /metrics and the bench: how far the frontier trails, and the dirty backlog.
SELECT extract(epoch FROM now() - s.frontier) AS lag_s,
       (SELECT count(*) FROM rollup_dirty) AS dirty_marks
FROM rollup_state s;

-- name: rewind
-- $1 an hour start below the frontier: everything materialized from there on is forgotten and
-- the frontier goes back to it, so the refresher materializes it again (reads stay exact
-- meanwhile: above the frontier they read raw history). The bench times that re-run.
WITH v AS (DELETE FROM rollup_vehicle_hour WHERE hour >= $1::timestamptz),
     a AS (DELETE FROM rollup_attr_hour WHERE hour >= $1::timestamptz),
     c AS (DELETE FROM rollup_config_hour WHERE hour >= $1::timestamptz),
     vd AS (DELETE FROM rollup_vehicle_day WHERE day >= date_trunc('day', $1::timestamptz, 'UTC')),
     ad AS (DELETE FROM rollup_attr_day WHERE day >= date_trunc('day', $1::timestamptz, 'UTC')),
     cd AS (DELETE FROM rollup_config_day WHERE day >= date_trunc('day', $1::timestamptz, 'UTC')),
     m AS (DELETE FROM rollup_dirty WHERE hour >= $1::timestamptz),
     f AS (DELETE FROM rollup_fleet_hour WHERE hour >= $1::timestamptz),
     p AS (DELETE FROM rollup_presence WHERE day > date_trunc('day', $1::timestamptz, 'UTC')),
     q AS (UPDATE rollup_presence
           SET hours = hours & ((1 << extract(hour FROM $1::timestamptz AT TIME ZONE 'UTC')::int) - 1)
           WHERE day = date_trunc('day', $1::timestamptz, 'UTC'))
UPDATE rollup_state SET frontier = greatest(floor, least(frontier, $1::timestamptz));
