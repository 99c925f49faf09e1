-- Daily partitions without an exclusive lock on the parent (SPEC §3).
--
-- `CREATE TABLE … PARTITION OF` and `DROP TABLE` of a partition take ACCESS EXCLUSIVE on the
-- parent: they wait behind any open read of it, and every insert queues behind them. Instead a
-- partition is created as a standalone table and attached, which locks the parent only in
-- SHARE UPDATE EXCLUSIVE mode (reads and inserts go on), and an expired one is detached with
-- `DETACH PARTITION … CONCURRENTLY` (same lock mode; a client statement, since it cannot run
-- inside a function or transaction) before it is dropped on its own.

-- The name of a parent's partition for a day, schema-qualified and quoted (as to_regclass takes).
CREATE FUNCTION kilowatch_partition_name(parent regclass, day date) RETURNS text
LANGUAGE sql STABLE AS $$
    SELECT format('%I.%I', n.nspname, c.relname || '_p' || to_char(day, 'YYYYMMDD'))
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE c.oid = parent
$$;

-- Creates and attaches one daily partition; false (and no lock on the parent) when it exists.
-- The table copies the parent's columns, defaults and constraints, plus a CHECK matching the
-- bounds, so ATTACH has nothing to validate; ATTACH then gives it every index of the parent
-- (primary key, vehicle_readings_meter_idx, and any index added later). A table of that name
-- left unattached (by hand, or an older version) is attached as it is.
CREATE OR REPLACE FUNCTION kilowatch_create_partition(parent regclass, day date) RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
    name text := kilowatch_partition_name(parent, day);
    lo timestamptz := day::timestamp AT TIME ZONE 'UTC';
    hi timestamptz := (day + 1)::timestamp AT TIME ZONE 'UTC';
    existing regclass;
BEGIN
    -- Serialises concurrent creators of the same partition (two workers starting at once).
    PERFORM pg_advisory_xact_lock(hashtext(name));
    existing := to_regclass(name);
    IF existing IS NOT NULL THEN
        IF EXISTS (SELECT FROM pg_inherits WHERE inhrelid = existing AND inhparent = parent) THEN
            RETURN false;
        END IF;
    ELSE
        -- Both history tables are partitioned by recorded_at.
        EXECUTE format(
            'CREATE TABLE %s (LIKE %s INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING STORAGE'
            ' INCLUDING COMPRESSION INCLUDING STATISTICS,'
            ' CONSTRAINT %I CHECK (recorded_at IS NOT NULL AND recorded_at >= %L AND recorded_at < %L))',
            name, parent, 'recorded_at_bounds', lo, hi
        );
    END IF;
    EXECUTE format('ALTER TABLE %s ATTACH PARTITION %s FOR VALUES FROM (%L) TO (%L)',
                   parent, name, lo, hi);
    RETURN true;
END $$;

-- Drops one day's table once it is no longer attached (retention detaches it first); returns
-- its name, or NULL when there was none. Refuses an attached partition: dropping it would lock
-- the parent exclusively.
CREATE OR REPLACE FUNCTION kilowatch_drop_partition(parent regclass, day date) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    name text := kilowatch_partition_name(parent, day);
    existing regclass := to_regclass(name);
BEGIN
    IF existing IS NULL THEN
        RETURN NULL;
    END IF;
    IF EXISTS (SELECT FROM pg_inherits WHERE inhrelid = existing) THEN
        RAISE EXCEPTION 'partition % is still attached; detach it first', name
            USING ERRCODE = 'object_not_in_prerequisite_state';
    END IF;
    EXECUTE format('DROP TABLE %s', name);
    RETURN name;
END $$;
