-- History (cold, append-only): one row per heartbeat, daily range partitions by reading time.
-- The primary key is the dedup key and the per-device time-range index; its INCLUDE columns let
-- analytics answer from index-only scans instead of one heap page per reading.
CREATE TABLE meter_readings (
    meter_id        text             NOT NULL,
    recorded_at     timestamptz      NOT NULL,
    kwh_consumed_ac double precision NOT NULL,
    voltage         double precision NOT NULL,
    received_at     timestamptz      NOT NULL DEFAULT now(),
    PRIMARY KEY (meter_id, recorded_at) INCLUDE (kwh_consumed_ac)
) PARTITION BY RANGE (recorded_at);

CREATE TABLE vehicle_readings (
    vehicle_id       text             NOT NULL,
    recorded_at      timestamptz      NOT NULL,
    soc              double precision NOT NULL,
    kwh_delivered_dc double precision NOT NULL,
    battery_temp     double precision NOT NULL,
    meter_id         text,
    received_at      timestamptz      NOT NULL DEFAULT now(),
    PRIMARY KEY (vehicle_id, recorded_at) INCLUDE (kwh_delivered_dc, battery_temp, meter_id)
) PARTITION BY RANGE (recorded_at);

-- Live status (hot): exactly one row per device, newest reading wins.
CREATE TABLE meter_status (
    meter_id        text PRIMARY KEY,
    recorded_at     timestamptz      NOT NULL,
    kwh_consumed_ac double precision NOT NULL,
    voltage         double precision NOT NULL,
    updated_at      timestamptz      NOT NULL DEFAULT now()
);

CREATE TABLE vehicle_status (
    vehicle_id       text PRIMARY KEY,
    recorded_at      timestamptz      NOT NULL,
    soc              double precision NOT NULL,
    kwh_delivered_dc double precision NOT NULL,
    battery_temp     double precision NOT NULL,
    meter_id         text,
    updated_at       timestamptz      NOT NULL DEFAULT now()
);

-- Operator-recorded vehicle <-> meter intervals, half-open [valid_from, valid_to).
CREATE TABLE assignments (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    vehicle_id text        NOT NULL,
    meter_id   text        NOT NULL,
    valid_from timestamptz NOT NULL,
    valid_to   timestamptz,
    created_at timestamptz NOT NULL DEFAULT now(),
    CHECK (valid_to IS NULL OR valid_to > valid_from)
);
CREATE INDEX assignments_vehicle_idx ON assignments (vehicle_id, valid_from);
CREATE INDEX assignments_meter_idx ON assignments (meter_id, valid_from);

-- Creates one daily partition of a history table; a no-op (and no lock) when it exists.
CREATE FUNCTION kilowatch_create_partition(parent regclass, day date) RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
    name text := format('%s_p%s', parent::text, to_char(day, 'YYYYMMDD'));
BEGIN
    -- Serialises concurrent creators of the same partition (two workers starting at once).
    PERFORM pg_advisory_xact_lock(hashtext(name));
    IF to_regclass(name) IS NOT NULL THEN
        RETURN false;
    END IF;
    EXECUTE format(
        'CREATE TABLE IF NOT EXISTS %I PARTITION OF %s FOR VALUES FROM (%L) TO (%L)',
        name, parent, day::timestamp AT TIME ZONE 'UTC', (day + 1)::timestamp AT TIME ZONE 'UTC'
    );
    RETURN true;
END $$;

-- Drops one daily partition; returns its name, or NULL when there was none.
CREATE FUNCTION kilowatch_drop_partition(parent regclass, day date) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    name text := format('%s_p%s', parent::text, to_char(day, 'YYYYMMDD'));
BEGIN
    IF to_regclass(name) IS NULL THEN
        RETURN NULL;
    END IF;
    EXECUTE format('DROP TABLE %I', name);
    RETURN name;
END $$;
