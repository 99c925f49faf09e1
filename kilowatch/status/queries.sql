-- name: vehicles
-- Vehicles by id after a cursor, with the meter they are attached to at recorded_at (SPEC §5):
-- the meterId of their latest heartbeat in recorded_at's UTC minute that carries one (the
-- newest heartbeat's, else the vehicle's history rows of that minute, through the primary
-- key), else the meter of the assignment whose effective interval contains the start of that
-- minute (the latest starting at or before it, if it has not ended by then: an open one ends
-- where the vehicle's next one begins, so a later one never leaves an earlier one in force),
-- else NULL. Every read is a range of an index: the status primary key, one minute of the
-- vehicle's history primary key, the assignments' (vehicle_id, valid_from) index.
-- $1 vehicle id (exact) or NULL, $2 cursor (exclusive) or NULL, $3 limit,
-- $4 stale seconds, $5 charging filter or NULL, $6 stale filter or NULL, $7 meter filter or NULL
SELECT * FROM (
    SELECT s.vehicle_id, s.soc, s.kwh_delivered_dc, s.battery_temp, s.recorded_at,
           COALESCE(s.meter_id, h.meter_id, a.meter_id) AS meter_id,
           s.recorded_at < now() - make_interval(secs => $4) AS stale
    FROM vehicle_status s
    CROSS JOIN LATERAL (SELECT date_trunc('minute', s.recorded_at, 'UTC') AS start) m
    LEFT JOIN LATERAL (
        SELECT r.meter_id FROM vehicle_readings r
        WHERE s.meter_id IS NULL
          AND r.vehicle_id = s.vehicle_id
          AND r.recorded_at >= m.start AND r.recorded_at < m.start + interval '1 minute'
          AND r.meter_id IS NOT NULL
        ORDER BY r.recorded_at DESC
        LIMIT 1
    ) h ON true
    LEFT JOIN LATERAL (
        SELECT x.meter_id, x.valid_to FROM assignments x
        WHERE s.meter_id IS NULL AND h.meter_id IS NULL
          AND x.vehicle_id = s.vehicle_id AND x.valid_from <= m.start
        ORDER BY x.valid_from DESC, x.id DESC
        LIMIT 1
    ) a ON a.valid_to IS NULL OR a.valid_to > m.start
    WHERE ($1::text IS NULL OR s.vehicle_id = $1)
      AND ($2::text IS NULL OR s.vehicle_id > $2)
) v
WHERE ($5::boolean IS NULL OR (NOT v.stale AND v.kwh_delivered_dc > 0) = $5)
  AND ($6::boolean IS NULL OR v.stale = $6)
  AND ($7::text IS NULL OR v.meter_id = $7)
ORDER BY v.vehicle_id
LIMIT $3;

-- name: meters
-- Meters by id after a cursor.
-- $1 meter id (exact) or NULL, $2 cursor (exclusive) or NULL, $3 limit, $4 stale seconds,
-- $5 idle kWh, $6 active filter or NULL, $7 stale filter or NULL
SELECT * FROM (
    SELECT meter_id, kwh_consumed_ac, voltage, recorded_at,
           recorded_at < now() - make_interval(secs => $4) AS stale
    FROM meter_status
    WHERE ($1::text IS NULL OR meter_id = $1)
      AND ($2::text IS NULL OR meter_id > $2)
) m
WHERE ($6::boolean IS NULL OR (NOT m.stale AND m.kwh_consumed_ac > $5) = $6)
  AND ($7::boolean IS NULL OR m.stale = $7)
ORDER BY meter_id
LIMIT $3;
