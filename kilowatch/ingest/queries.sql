-- name: write_batch
-- One statement, one round trip, atomic: history insert (dedup by primary key) and the live
-- status upsert from the rows actually inserted, newest per device, never moving backwards.
-- Inputs are sorted by (device, recorded_at) and DISTINCT ON sorts by device, so concurrent
-- batches take row locks in one global order and cannot deadlock.
-- $1 meter ids, $2 meter times, $3 kwh_consumed_ac, $4 voltage,
-- $5 vehicle ids, $6 vehicle times, $7 soc, $8 kwh_delivered_dc, $9 battery_temp, $10 vehicle meter ids
WITH m AS (
    INSERT INTO meter_readings (meter_id, recorded_at, kwh_consumed_ac, voltage)
    SELECT * FROM unnest($1::text[], $2::timestamptz[], $3::float8[], $4::float8[])
    ON CONFLICT DO NOTHING
    RETURNING meter_id, recorded_at, kwh_consumed_ac, voltage
), v AS (
    INSERT INTO vehicle_readings (vehicle_id, recorded_at, soc, kwh_delivered_dc, battery_temp, meter_id)
    SELECT * FROM unnest($5::text[], $6::timestamptz[], $7::float8[], $8::float8[], $9::float8[], $10::text[])
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
SELECT true, vehicle_id, recorded_at FROM v
