-- name: create_partition
-- $1 parent table name, $2 day (date): the window's daily partition, when missing.
SELECT kilowatch_create_partition($1::regclass, $2::date);

-- name: upsert_meter_status
-- $1 meter ids, $2 recorded_at, $3 kWh AC, $4 voltage: the newest backfilled reading per meter;
-- a newer live status is kept.
INSERT INTO meter_status AS s (meter_id, recorded_at, kwh_consumed_ac, voltage)
SELECT * FROM unnest($1::text[], $2::timestamptz[], $3::float8[], $4::float8[])
ON CONFLICT (meter_id) DO UPDATE
SET recorded_at = EXCLUDED.recorded_at, kwh_consumed_ac = EXCLUDED.kwh_consumed_ac,
    voltage = EXCLUDED.voltage, updated_at = now()
WHERE s.recorded_at < EXCLUDED.recorded_at;

-- name: upsert_vehicle_status
-- $1 vehicle ids, $2 recorded_at, $3 SoC, $4 kWh DC, $5 battery temp, $6 meter ids (nullable):
-- the newest backfilled reading per vehicle; a newer live status is kept.
INSERT INTO vehicle_status AS s (vehicle_id, recorded_at, soc, kwh_delivered_dc, battery_temp, meter_id)
SELECT * FROM unnest($1::text[], $2::timestamptz[], $3::float8[], $4::float8[], $5::float8[],
                     $6::text[])
ON CONFLICT (vehicle_id) DO UPDATE
SET recorded_at = EXCLUDED.recorded_at, soc = EXCLUDED.soc,
    kwh_delivered_dc = EXCLUDED.kwh_delivered_dc, battery_temp = EXCLUDED.battery_temp,
    meter_id = EXCLUDED.meter_id, updated_at = now()
WHERE s.recorded_at < EXCLUDED.recorded_at;
