-- name: create_staging
-- Per-connection staging tables for the COPY variant of the writer (emptied at each commit).
CREATE TEMP TABLE IF NOT EXISTS stage_meter (
    meter_id text, recorded_at timestamptz, kwh_consumed_ac float8, voltage float8
) ON COMMIT DELETE ROWS;
CREATE TEMP TABLE IF NOT EXISTS stage_vehicle (
    vehicle_id text, recorded_at timestamptz, soc float8, kwh_delivered_dc float8,
    battery_temp float8, meter_id text
) ON COMMIT DELETE ROWS;

-- name: write_staged
-- The writer's statement (kilowatch.ingest write_batch) reading COPYed staging tables instead
-- of unnest() arrays: the alternative issue 8 asked to measure. No parameters.
WITH m AS (
    INSERT INTO meter_readings (meter_id, recorded_at, kwh_consumed_ac, voltage)
    SELECT * FROM stage_meter ORDER BY meter_id, recorded_at
    ON CONFLICT DO NOTHING
    RETURNING meter_id, recorded_at, kwh_consumed_ac, voltage
), v AS (
    INSERT INTO vehicle_readings (vehicle_id, recorded_at, soc, kwh_delivered_dc, battery_temp, meter_id)
    SELECT * FROM stage_vehicle ORDER BY vehicle_id, recorded_at
    ON CONFLICT DO NOTHING
    RETURNING vehicle_id, recorded_at, soc, kwh_delivered_dc, battery_temp, meter_id
), ms AS (
    INSERT INTO meter_status AS s (meter_id, recorded_at, kwh_consumed_ac, voltage)
    SELECT DISTINCT ON (meter_id) meter_id, recorded_at, kwh_consumed_ac, voltage
    FROM m ORDER BY meter_id, recorded_at DESC
    ON CONFLICT (meter_id) DO UPDATE
    SET recorded_at = EXCLUDED.recorded_at, kwh_consumed_ac = EXCLUDED.kwh_consumed_ac,
        voltage = EXCLUDED.voltage, updated_at = now()
    WHERE s.recorded_at < EXCLUDED.recorded_at
), vs AS (
    INSERT INTO vehicle_status AS s (vehicle_id, recorded_at, soc, kwh_delivered_dc, battery_temp, meter_id)
    SELECT DISTINCT ON (vehicle_id) vehicle_id, recorded_at, soc, kwh_delivered_dc, battery_temp, meter_id
    FROM v ORDER BY vehicle_id, recorded_at DESC
    ON CONFLICT (vehicle_id) DO UPDATE
    SET recorded_at = EXCLUDED.recorded_at, soc = EXCLUDED.soc,
        kwh_delivered_dc = EXCLUDED.kwh_delivered_dc, battery_temp = EXCLUDED.battery_temp,
        meter_id = EXCLUDED.meter_id, updated_at = now()
    WHERE s.recorded_at < EXCLUDED.recorded_at
)
SELECT false AS is_vehicle, meter_id AS device, recorded_at FROM m
UNION ALL
SELECT true, vehicle_id, recorded_at FROM v;
