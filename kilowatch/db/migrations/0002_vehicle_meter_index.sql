-- Correlation (SPEC §5) must find the other vehicles attached to a meter in a minute: those whose
-- heartbeat carried that meterId. A partial index keyed by meter answers that as a range scan per
-- meter; vehicle_id is included so the scan never touches the heap. Partitioned: every daily
-- partition, present and future, gets its own copy.
CREATE INDEX vehicle_readings_meter_idx
    ON vehicle_readings (meter_id, recorded_at) INCLUDE (vehicle_id)
    WHERE meter_id IS NOT NULL;
