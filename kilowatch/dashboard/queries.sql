-- The dashboard's own reads: hot tables only (never history), each one scan of a status table.

-- name: live_counts
-- How many devices are charging / active / stale now, by SPEC §4's definitions (those the
-- status listings filter on: stale = recorded_at older than $1 s; charging = not stale and DC
-- above 0; active = not stale and AC above the idle threshold).
-- $1 stale seconds, $2 meter idle kWh
WITH v AS (
    SELECT count(*) AS vehicles,
           count(*) FILTER (WHERE recorded_at < now() - make_interval(secs => $1)) AS stale,
           count(*) FILTER (WHERE recorded_at >= now() - make_interval(secs => $1)
                              AND kwh_delivered_dc > 0) AS charging
    FROM vehicle_status
), m AS (
    SELECT count(*) AS meters,
           count(*) FILTER (WHERE recorded_at < now() - make_interval(secs => $1)) AS stale,
           count(*) FILTER (WHERE recorded_at >= now() - make_interval(secs => $1)
                              AND kwh_consumed_ac > $2) AS active
    FROM meter_status
)
SELECT v.vehicles, v.charging, v.stale AS vehicles_stale,
       m.meters, m.active AS meters_active, m.stale AS meters_stale
FROM v, m;

-- name: attached_vehicles
-- The vehicles attached now to some of the meters (the chargers board's page): not stale, and
-- on the meter by the status listing's rule (kilowatch.status `vehicles`): the heartbeat's
-- meterId, else the vehicle's latest assignment by valid_from at or before recorded_at when it
-- still covers that instant. A test holds this equal to GET /v1/vehicles/status?meterId=&stale=.
-- $1 meter ids, $2 stale seconds
SELECT * FROM (
    SELECT COALESCE(s.meter_id, a.meter_id) AS meter_id, s.vehicle_id, s.kwh_delivered_dc,
           s.soc
    FROM vehicle_status s
    LEFT JOIN LATERAL (
        SELECT x.meter_id, x.valid_to FROM assignments x
        WHERE x.vehicle_id = s.vehicle_id AND x.valid_from <= s.recorded_at
        ORDER BY x.valid_from DESC LIMIT 1
    ) a ON s.meter_id IS NULL AND (a.valid_to IS NULL OR a.valid_to > s.recorded_at)
    WHERE s.recorded_at >= now() - make_interval(secs => $2)
) v
WHERE v.meter_id = ANY($1::text[])
ORDER BY v.meter_id, v.vehicle_id;
