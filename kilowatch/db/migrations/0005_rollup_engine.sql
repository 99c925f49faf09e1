-- The rollup engine: SPEC §5's per-minute correlation over raw history, set-based, producing
-- rollup-shaped rows per UTC hour. PL/pgSQL only so that each session plans its statements once
-- (a SQL function's body is planned again at every call on PostgreSQL 15). The refresher materializes with it; reads use it for the
-- minutes the rollups cannot answer (window edges, the open minutes above the frontier, dirty
-- hours). The per-vehicle statement in kilowatch/analytics/queries.sql is an independent
-- implementation of the same rules, kept as the reference that tests and the bench compare with.
--
-- Two scopes:
--   * every device over [p_lo, p_hi) (p_lo not NULL): history found by time (BRIN ranges);
--   * listed devices (p_lo NULL): own figures of (p_vehicles[i], [p_vlo[i], p_vhi[i])), and the
--     ledger of (p_meters[j], [p_mlo[j], p_mhi[j])) with every vehicle attached to those meters
--     then (found through vehicle_readings_meter_idx and assignments_meter_idx, each history
--     row through its primary key range). A vehicle's ranges must be equal or disjoint.
--
-- Rows (`kind`):
--   'v' vehicle_id, hour, dc, readings, temp_sum, temp_min, temp_max      (rollup_vehicle_hour)
--   'a' vehicle_id, hour, meter_id, ac, dc, minutes, shared_minutes, readings (rollup_attr_hour;
--       readings = the meter's readings in the vehicle's matched minutes)
--   'c' meter_id, hour, vehicles, minutes, readings, ac, ac2, dcs, dc_ac, dc_dc (rollup_config_hour)
CREATE FUNCTION kilowatch_raw(
    p_lo timestamptz, p_hi timestamptz,
    p_vehicles text[], p_vlo timestamptz[], p_vhi timestamptz[],
    p_meters text[], p_mlo timestamptz[], p_mhi timestamptz[])
RETURNS TABLE (kind "char", vehicle_id text, meter_id text, hour timestamptz, vehicles text[],
               minutes integer, readings integer, shared_minutes integer,
               ac double precision, ac2 double precision, dc double precision,
               temp_sum double precision, temp_min double precision, temp_max double precision,
               dcs double precision[], dc_ac double precision[], dc_dc double precision[])
LANGUAGE plpgsql STABLE
-- Its statements' plans are made once per session: re-planning them at every call cost more
-- than running them on a small scope.
SET plan_cache_mode = force_generic_plan
-- History is only ever read through an index range (a BRIN range of the time, or a key range):
-- on a small partition the planner would scan it whole, and a day grows to millions of rows.
SET enable_seqscan = off
AS $$
#variable_conflict use_column
BEGIN
RETURN QUERY
WITH
own_scope AS (
    SELECT DISTINCT s.vehicle_id, s.lo, s.hi
    FROM unnest(p_vehicles, p_vlo, p_vhi) AS s(vehicle_id, lo, hi)
    WHERE p_lo IS NULL AND s.lo < s.hi
),
meter_scope AS (
    SELECT DISTINCT s.meter_id, s.lo, s.hi
    FROM unnest(p_meters, p_mlo, p_mhi) AS s(meter_id, lo, hi)
    WHERE p_lo IS NULL AND s.lo < s.hi
),
-- Vehicles that may be attached to a listed meter: a heartbeat naming it, or an assignment.
-- History is read by key (= ANY) inside the scope's overall bounds, so the primary keys and the
-- meter index give ranges and the bounds prune partitions; exact ranges are checked after.
meter_bounds AS (SELECT min(lo) AS lo, max(hi) AS hi FROM meter_scope),
candidates AS (
    SELECT DISTINCT c.vehicle_id, c.lo, c.hi FROM (
        SELECT r.vehicle_id, s.lo, s.hi
        FROM vehicle_readings r
        JOIN meter_scope s ON s.meter_id = r.meter_id AND r.recorded_at >= s.lo
                          AND r.recorded_at < s.hi
        WHERE r.meter_id = ANY (ARRAY(SELECT meter_id FROM meter_scope))
          AND r.recorded_at >= (SELECT lo FROM meter_bounds)
          AND r.recorded_at < (SELECT hi FROM meter_bounds)
        UNION ALL
        SELECT a.vehicle_id, s.lo, s.hi
        FROM meter_scope s
        JOIN assignments a ON a.meter_id = s.meter_id
                          AND a.valid_from < s.hi AND a.effective_to > s.lo
    ) c
),
vehicle_ranges AS MATERIALIZED (
    SELECT vehicle_id, lo, hi FROM own_scope
    UNION
    SELECT vehicle_id, lo, hi FROM candidates
),
vehicle_bounds AS (SELECT min(lo) AS lo, max(hi) AS hi FROM vehicle_ranges),
vrows AS (
    SELECT r.vehicle_id, r.recorded_at, r.kwh_delivered_dc, r.battery_temp, r.meter_id
    FROM vehicle_readings r
    WHERE p_lo IS NOT NULL AND r.recorded_at >= p_lo AND r.recorded_at < p_hi
    UNION ALL
    SELECT r.vehicle_id, r.recorded_at, r.kwh_delivered_dc, r.battery_temp, r.meter_id
    FROM vehicle_readings r
    JOIN vehicle_ranges s ON s.vehicle_id = r.vehicle_id AND r.recorded_at >= s.lo
                         AND r.recorded_at < s.hi
    WHERE r.vehicle_id = ANY (ARRAY(SELECT vehicle_id FROM vehicle_ranges))
      AND r.recorded_at >= (SELECT lo FROM vehicle_bounds)
      AND r.recorded_at < (SELECT hi FROM vehicle_bounds)
),
vmin AS MATERIALIZED (
    SELECT v.vehicle_id, date_trunc('minute', v.recorded_at, 'UTC') AS minute,
           sum(v.kwh_delivered_dc) AS dc, count(*) AS n, sum(v.battery_temp) AS ts,
           min(v.battery_temp) AS tmin, max(v.battery_temp) AS tmax,
           (array_agg(v.meter_id ORDER BY v.recorded_at DESC)
               FILTER (WHERE v.meter_id IS NOT NULL))[1] AS hb
    FROM vrows v
    GROUP BY 1, 2
),
-- Attachment (SPEC §5): the latest meter-carrying heartbeat of the minute, else the assignment
-- covering the minute's start (a vehicle's effective assignments never overlap).
attached AS MATERIALIZED (
    SELECT v.vehicle_id, v.minute, v.dc, coalesce(v.hb, a.meter_id) AS meter_id
    FROM vmin v
    LEFT JOIN assignments a ON v.hb IS NULL AND a.vehicle_id = v.vehicle_id
                           AND a.valid_from <= v.minute AND v.minute < a.effective_to
    WHERE v.hb IS NOT NULL OR a.meter_id IS NOT NULL
),
mrows AS (
    SELECT r.meter_id, r.recorded_at, r.kwh_consumed_ac
    FROM meter_readings r
    WHERE p_lo IS NOT NULL AND r.recorded_at >= p_lo AND r.recorded_at < p_hi
    UNION ALL
    SELECT r.meter_id, r.recorded_at, r.kwh_consumed_ac
    FROM meter_readings r
    JOIN meter_scope s ON s.meter_id = r.meter_id AND r.recorded_at >= s.lo
                      AND r.recorded_at < s.hi
    WHERE r.meter_id = ANY (ARRAY(SELECT meter_id FROM meter_scope))
      AND r.recorded_at >= (SELECT lo FROM meter_bounds)
      AND r.recorded_at < (SELECT hi FROM meter_bounds)
),
mmin AS (
    SELECT m.meter_id, date_trunc('minute', m.recorded_at, 'UTC') AS minute,
           sum(m.kwh_consumed_ac) AS ac, count(*) AS n
    FROM mrows m
    GROUP BY 1, 2
),
-- Who was attached to each meter in each minute (sorted), with their DC: grouped before the
-- meter's minutes are joined, so only attached minutes are sorted.
together AS (
    SELECT a.meter_id, a.minute, array_agg(a.vehicle_id ORDER BY a.vehicle_id) AS vehicles,
           array_agg(a.dc ORDER BY a.vehicle_id) AS dcs, sum(a.dc) AS dc_sum,
           count(*) AS k
    FROM attached a
    GROUP BY a.meter_id, a.minute
),
-- One row per meter-minute with who was attached then, their DC, and its AC.
cmin AS MATERIALIZED (
    SELECT m.meter_id, m.minute, date_trunc('hour', m.minute, 'UTC') AS hour, m.ac, m.n,
           coalesce(t.vehicles, '{}') AS vehicles, coalesce(t.dcs, '{}') AS dcs,
           coalesce(t.dc_sum, 0) AS dc_sum, coalesce(t.k, 0) AS k
    FROM mmin m
    LEFT JOIN together t ON t.meter_id = m.meter_id AND t.minute = m.minute
),
-- Each attached vehicle's share of its meter's AC in the minute. Alone, it is the whole AC
-- (dc / dc_sum = 1, or an equal split among one): no unnesting for the common case.
shares AS (
    SELECT c.meter_id, c.hour, c.vehicles[1] AS vehicle_id, c.dc_sum AS dc, c.n, c.k, c.ac
    FROM cmin c WHERE c.k = 1
    UNION ALL
    SELECT c.meter_id, c.hour, u.vehicle_id, u.dc, c.n, c.k,
           c.ac * CASE WHEN c.dc_sum > 0 THEN u.dc / c.dc_sum ELSE 1.0 / c.k END
    FROM cmin c
    CROSS JOIN LATERAL unnest(c.vehicles, c.dcs) AS u(vehicle_id, dc)
    WHERE c.k > 1
),
-- The fit's sums per configuration: element-wise only for minutes shared by several vehicles.
per_k AS (
    SELECT c.meter_id, c.hour, c.vehicles, u.k, sum(u.dc) AS dc, sum(u.dc * c.ac) AS dc_ac
    FROM cmin c
    CROSS JOIN LATERAL unnest(c.dcs) WITH ORDINALITY AS u(dc, k)
    WHERE c.k > 1
    GROUP BY 1, 2, 3, 4
),
per_kl AS (
    SELECT c.meter_id, c.hour, c.vehicles, u.k, w.l, sum(u.dc * w.dc) AS dc_dc
    FROM cmin c
    CROSS JOIN LATERAL unnest(c.dcs) WITH ORDINALITY AS u(dc, k)
    CROSS JOIN LATERAL unnest(c.dcs) WITH ORDINALITY AS w(dc, l)
    WHERE c.k > 1 AND u.k <= w.l
    GROUP BY 1, 2, 3, 4, 5
),
configs AS (
    SELECT c.meter_id, c.hour, c.vehicles, max(c.k) AS k, count(*)::integer AS minutes,
           sum(c.n)::integer AS readings, sum(c.ac) AS ac, sum(c.ac * c.ac) AS ac2,
           sum(c.dc_sum) AS dc1, sum(c.dc_sum * c.ac) AS dc_ac1, sum(c.dc_sum * c.dc_sum) AS dc_dc1
    FROM cmin c
    GROUP BY 1, 2, 3
)
SELECT 'v'::"char", v.vehicle_id, NULL::text, date_trunc('hour', v.minute, 'UTC'), NULL::text[],
       NULL::integer, sum(v.n)::integer, NULL::integer, NULL::float8, NULL::float8, sum(v.dc),
       sum(v.ts), min(v.tmin), max(v.tmax), NULL::float8[], NULL::float8[], NULL::float8[]
FROM vmin v
WHERE p_lo IS NOT NULL
   OR EXISTS (SELECT 1 FROM own_scope o
              WHERE o.vehicle_id = v.vehicle_id AND v.minute >= o.lo AND v.minute < o.hi)
GROUP BY v.vehicle_id, date_trunc('hour', v.minute, 'UTC')
UNION ALL
SELECT 'a', s.vehicle_id, s.meter_id, s.hour, NULL, count(*)::integer, sum(s.n)::integer,
       (count(*) FILTER (WHERE s.k > 1))::integer, sum(s.ac), NULL, sum(s.dc),
       NULL, NULL, NULL, NULL, NULL, NULL
FROM shares s
GROUP BY s.vehicle_id, s.meter_id, s.hour
UNION ALL
SELECT 'c', NULL, g.meter_id, g.hour, g.vehicles, g.minutes, g.readings, NULL, g.ac, g.ac2, NULL,
       NULL, NULL, NULL,
       CASE g.k WHEN 0 THEN '{}' WHEN 1 THEN ARRAY[g.dc1] ELSE ka.dcs END,
       CASE g.k WHEN 0 THEN '{}' WHEN 1 THEN ARRAY[g.dc_ac1] ELSE ka.dc_ac END,
       CASE g.k WHEN 0 THEN '{}' WHEN 1 THEN ARRAY[g.dc_dc1] ELSE kl.dc_dc END
FROM configs g
LEFT JOIN (SELECT p.meter_id, p.hour, p.vehicles, array_agg(p.dc ORDER BY p.k) AS dcs,
                  array_agg(p.dc_ac ORDER BY p.k) AS dc_ac
           FROM per_k p GROUP BY 1, 2, 3) ka
       ON ka.meter_id = g.meter_id AND ka.hour = g.hour AND ka.vehicles = g.vehicles
LEFT JOIN (SELECT q.meter_id, q.hour, q.vehicles, array_agg(q.dc_dc ORDER BY q.k, q.l) AS dc_dc
           FROM per_kl q GROUP BY 1, 2, 3) kl
       ON kl.meter_id = g.meter_id AND kl.hour = g.hour AND kl.vehicles = g.vehicles;
END
$$;

-- The closure of dirty marks (p_hours[i], p_vehicles[i] | p_meters[i]): per hour, the vehicles
-- whose own figures must be read raw (the marked ones) and the meters whose ledger must be
-- read raw (the marked ones, and every meter a marked vehicle was or may now be attached to:
-- its rollup rows of that hour, its heartbeats naming a meter, its assignments then). A meter's
-- split depends only on its readings and on the attachment of vehicles to it, so every other
-- (vehicle, meter, hour) row of the rollups is still exact.
CREATE FUNCTION kilowatch_dirty_closure(p_hours timestamptz[], p_vehicles text[], p_meters text[])
RETURNS TABLE (hour timestamptz, vehicle_id text, meter_id text)
LANGUAGE plpgsql STABLE
-- Its statements' plans are made once per session: re-planning them at every call cost more
-- than running them on a small scope.
SET plan_cache_mode = force_generic_plan
AS $$
#variable_conflict use_column
BEGIN
RETURN QUERY
WITH marks AS (
    SELECT DISTINCT m.hour, m.vehicle_id, m.meter_id
    FROM unnest(p_hours, p_vehicles, p_meters) AS m(hour, vehicle_id, meter_id)
),
mv AS (
    SELECT m.hour, m.vehicle_id FROM marks m WHERE m.vehicle_id IS NOT NULL
)
SELECT mv.hour, mv.vehicle_id, NULL::text FROM mv
UNION
SELECT m.hour, NULL, m.meter_id FROM marks m WHERE m.meter_id IS NOT NULL
UNION
SELECT mv.hour, NULL, a.meter_id
FROM mv JOIN rollup_attr_hour a ON a.vehicle_id = mv.vehicle_id AND a.hour = mv.hour
UNION
SELECT mv.hour, NULL, r.meter_id
FROM mv CROSS JOIN LATERAL (
    SELECT DISTINCT x.meter_id FROM vehicle_readings x
    WHERE x.vehicle_id = mv.vehicle_id AND x.recorded_at >= mv.hour
      AND x.recorded_at < mv.hour + interval '1 hour' AND x.meter_id IS NOT NULL
) r
UNION
SELECT mv.hour, NULL, a.meter_id
FROM mv JOIN assignments a ON a.vehicle_id = mv.vehicle_id
                          AND a.valid_from < mv.hour + interval '1 hour' AND a.effective_to > mv.hour;
END
$$;

-- A window's rows, from the rollups where they are exact and from raw history elsewhere: the
-- day rows of p_days, the hour rows of p_hours except the dirty closure (vehicles p_dv_ids in
-- hours p_dv_hours, meters p_dm_ids in hours p_dm_hours, recomputed raw up to p_dv_hi /
-- p_dm_hi), and every device's raw rows in [p_lo[i], p_hi[i]). Same columns as kilowatch_raw;
-- `hour` is the day's start for day rows. kilowatch/rollups/plan.py makes the lists.
CREATE FUNCTION kilowatch_window(
    p_days timestamptz[], p_hours timestamptz[], p_lo timestamptz[], p_hi timestamptz[],
    p_dv_hours timestamptz[], p_dv_ids text[], p_dv_hi timestamptz[],
    p_dm_hours timestamptz[], p_dm_ids text[], p_dm_hi timestamptz[], p_kinds "char"[])
RETURNS TABLE (kind "char", vehicle_id text, meter_id text, hour timestamptz, vehicles text[],
               minutes integer, readings integer, shared_minutes integer,
               ac double precision, ac2 double precision, dc double precision,
               temp_sum double precision, temp_min double precision, temp_max double precision,
               dcs double precision[], dc_ac double precision[], dc_dc double precision[])
LANGUAGE plpgsql STABLE
-- Its statements' plans are made once per session: re-planning them at every call cost more
-- than running them on a small scope.
SET plan_cache_mode = force_generic_plan
AS $$
#variable_conflict use_column
BEGIN
RETURN QUERY
WITH dv AS MATERIALIZED (SELECT * FROM unnest(p_dv_hours, p_dv_ids) AS d(hour, id)),
     dm AS MATERIALIZED (SELECT * FROM unnest(p_dm_hours, p_dm_ids) AS d(hour, id))
SELECT r.* FROM unnest(p_lo, p_hi) AS w(lo, hi)
CROSS JOIN LATERAL kilowatch_raw(w.lo, w.hi, NULL, NULL, NULL, NULL, NULL, NULL) r
UNION ALL
SELECT * FROM kilowatch_raw(NULL, NULL, p_dv_ids, p_dv_hours, p_dv_hi, p_dm_ids, p_dm_hours,
                            p_dm_hi)
WHERE cardinality(p_dv_ids) > 0 OR cardinality(p_dm_ids) > 0
UNION ALL
SELECT 'v', t.vehicle_id, NULL, t.day, NULL, NULL, t.readings, NULL, NULL, NULL, t.dc,
       t.temp_sum, t.temp_min, t.temp_max, NULL, NULL, NULL
FROM rollup_vehicle_day t WHERE t.day = ANY(p_days) AND 'v' = ANY(p_kinds)
UNION ALL
SELECT 'v', t.vehicle_id, NULL, t.hour, NULL, NULL, t.readings, NULL, NULL, NULL, t.dc,
       t.temp_sum, t.temp_min, t.temp_max, NULL, NULL, NULL
FROM rollup_vehicle_hour t WHERE t.hour = ANY(p_hours) AND 'v' = ANY(p_kinds)
  AND NOT EXISTS (SELECT 1 FROM dv WHERE dv.hour = t.hour AND dv.id = t.vehicle_id)
UNION ALL
SELECT 'a', t.vehicle_id, t.meter_id, t.day, NULL, t.minutes, t.meter_readings, t.shared_minutes,
       t.ac, NULL, t.dc, NULL, NULL, NULL, NULL, NULL, NULL
FROM rollup_attr_day t WHERE t.day = ANY(p_days) AND 'a' = ANY(p_kinds)
UNION ALL
SELECT 'a', t.vehicle_id, t.meter_id, t.hour, NULL, t.minutes, t.meter_readings, t.shared_minutes,
       t.ac, NULL, t.dc, NULL, NULL, NULL, NULL, NULL, NULL
FROM rollup_attr_hour t WHERE t.hour = ANY(p_hours) AND 'a' = ANY(p_kinds)
  AND NOT EXISTS (SELECT 1 FROM dm WHERE dm.hour = t.hour AND dm.id = t.meter_id)
UNION ALL
SELECT 'c', NULL, t.meter_id, t.day, t.vehicles, t.minutes, t.readings, NULL, t.ac, t.ac2, NULL,
       NULL, NULL, NULL, t.dc, t.dc_ac, t.dc_dc
FROM rollup_config_day t WHERE t.day = ANY(p_days) AND 'c' = ANY(p_kinds)
UNION ALL
SELECT 'c', NULL, t.meter_id, t.hour, t.vehicles, t.minutes, t.readings, NULL, t.ac, t.ac2, NULL,
       NULL, NULL, NULL, t.dc, t.dc_ac, t.dc_dc
FROM rollup_config_hour t WHERE t.hour = ANY(p_hours) AND 'c' = ANY(p_kinds)
  AND NOT EXISTS (SELECT 1 FROM dm WHERE dm.hour = t.hour AND dm.id = t.meter_id);
END
$$;
