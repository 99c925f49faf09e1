-- Rollups (SPEC §5.1): hourly and daily sums of every §5 figure, maintained incrementally.
--
-- Materialized region. Every minute in [floor, frontier) is materialized: an hour row covers
-- [hour, least(hour + 1 h, frontier)), a day row a whole day below the frontier. The refresher
-- advances the frontier; retention raises the floor. A read uses rollup rows inside the region
-- and raw history outside it, so no answer depends on how far the refresher has come.
CREATE TABLE rollup_state (
    singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    floor     timestamptz NOT NULL,
    frontier  timestamptz NOT NULL,
    CHECK (frontier >= floor)
);
-- Starts below the oldest event the service accepts (MAX_EVENT_AGE_DAYS is at most 35 by
-- default); anything older stays below the floor and is always read raw.
INSERT INTO rollup_state (floor, frontier)
VALUES (date_trunc('hour', now() - interval '37 days', 'UTC'),
        date_trunc('hour', now() - interval '37 days', 'UTC'));

-- A row is late when it lands below this: then its insert marks its hour dirty, in the same
-- transaction. The refresher materializes a minute only once every transaction that began
-- before minute + 1 min + the grace has ended, so a row it cannot see is always marked.
CREATE FUNCTION kilowatch_late_before() RETURNS timestamptz
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT date_trunc('minute', now() - interval '2 minutes', 'UTC')
$$;

-- Dirty marks: an append-only log, no unique key (a refresher deletes exactly the marks it read,
-- so a mark committed during its recompute survives it). One of vehicle_id / meter_id is set.
CREATE TABLE rollup_dirty (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    hour       timestamptz NOT NULL,
    vehicle_id text,
    meter_id   text,
    CHECK ((vehicle_id IS NULL) <> (meter_id IS NULL))
);
CREATE INDEX rollup_dirty_hour_idx ON rollup_dirty (hour);

-- A vehicle's own figures per hour / day: all of its readings, attached or not.
CREATE TABLE rollup_vehicle_hour (
    vehicle_id text             NOT NULL,
    hour       timestamptz      NOT NULL,
    dc         double precision NOT NULL,
    readings   integer          NOT NULL,
    temp_sum   double precision NOT NULL,
    temp_min   double precision NOT NULL,
    temp_max   double precision NOT NULL,
    PRIMARY KEY (vehicle_id, hour)
) WITH (fillfactor = 80);
CREATE INDEX rollup_vehicle_hour_hour_idx ON rollup_vehicle_hour (hour);

-- What a vehicle got from one meter per hour / day: attributed AC (proportional share),
-- attached DC, matched minutes (of them shared with another vehicle), the meter's readings
-- in those minutes.
CREATE TABLE rollup_attr_hour (
    vehicle_id     text             NOT NULL,
    hour           timestamptz      NOT NULL,
    meter_id       text             NOT NULL,
    ac             double precision NOT NULL,
    dc             double precision NOT NULL,
    minutes        integer          NOT NULL,
    shared_minutes integer          NOT NULL,
    meter_readings integer          NOT NULL,
    PRIMARY KEY (vehicle_id, hour, meter_id)
) WITH (fillfactor = 80);
CREATE INDEX rollup_attr_hour_hour_idx ON rollup_attr_hour (hour, meter_id);

-- A meter's minutes per hour / day, grouped by who was attached (`vehicles`, sorted; empty for
-- minutes with nobody attached): the meter's side of the ledger, and the sufficient statistics
-- of the per-vehicle efficiency fit (SPEC §5.3): Σ AC, Σ AC², and per attached vehicle k
-- Σ DCₖ, Σ DCₖ·AC, and Σ DCₖ·DCₗ (upper triangle, row-major: (0,0), (0,1), …, (1,1), …).
CREATE TABLE rollup_config_hour (
    meter_id text               NOT NULL,
    hour     timestamptz        NOT NULL,
    vehicles text[]             NOT NULL,
    minutes  integer            NOT NULL,
    readings integer            NOT NULL,
    ac       double precision   NOT NULL,
    ac2      double precision   NOT NULL,
    dc       double precision[] NOT NULL,
    dc_ac    double precision[] NOT NULL,
    dc_dc    double precision[] NOT NULL,
    PRIMARY KEY (meter_id, hour, vehicles)
) WITH (fillfactor = 80);
CREATE INDEX rollup_config_hour_hour_idx ON rollup_config_hour (hour);

-- The same per UTC day, for days wholly below the frontier: sums of their hour rows, written
-- when the frontier passes midnight and rewritten with any hour of theirs that is recomputed.
CREATE TABLE rollup_vehicle_day (LIKE rollup_vehicle_hour INCLUDING ALL);
CREATE TABLE rollup_attr_day (LIKE rollup_attr_hour INCLUDING ALL);
CREATE TABLE rollup_config_day (LIKE rollup_config_hour INCLUDING ALL);
ALTER TABLE rollup_vehicle_day RENAME COLUMN hour TO day;
ALTER TABLE rollup_attr_day RENAME COLUMN hour TO day;
ALTER TABLE rollup_config_day RENAME COLUMN hour TO day;

-- Fleet-wide sums per hour (the fleet summary's totals and hourly figures without reading every
-- device's rows): all DC, attributed AC, attached DC, the meters' AC and its unattributed part.
CREATE TABLE rollup_fleet_hour (
    hour        timestamptz PRIMARY KEY,
    dc          double precision NOT NULL,
    ac          double precision NOT NULL,
    attached_dc double precision NOT NULL,
    meter_ac    double precision NOT NULL,
    idle_ac     double precision NOT NULL
);

-- Which devices have a materialized reading in which hours of a day (bit h: UTC hour h): who is
-- listed in a window, without reading a row per device and hour. Only ever gains bits (history
-- is append-only) until retention drops the day.
CREATE TABLE rollup_presence (
    day       timestamptz NOT NULL,
    kind      "char"      NOT NULL CHECK (kind IN ('v', 'm')),
    device_id text        NOT NULL,
    hours     integer     NOT NULL,
    PRIMARY KEY (day, kind, device_id)
) WITH (fillfactor = 80);

-- Element-wise sum of two equally long arrays (the statistics of one configuration).
CREATE FUNCTION kilowatch_array_add(a double precision[], b double precision[])
RETURNS double precision[] LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
    SELECT coalesce(array_agg(x + y ORDER BY i), '{}')
    FROM unnest(a, b) WITH ORDINALITY AS u(x, y, i)
$$;
-- Its aggregate (a strict transition function takes the first array as the initial state).
CREATE AGGREGATE kilowatch_array_sum(double precision[]) (
    SFUNC = kilowatch_array_add, STYPE = double precision[]
);

-- Assignments carry their effective end: an open one ends where the vehicle's next one (by
-- from) begins and does not resume after it. Kept by kilowatch_assignments_changed().
ALTER TABLE assignments ADD COLUMN effective_to timestamptz;
UPDATE assignments a
SET effective_to = e.eff
FROM (SELECT id, least(coalesce(valid_to, 'infinity'),
                       coalesce(lead(valid_from) OVER (PARTITION BY vehicle_id
                                                       ORDER BY valid_from, id),
                                'infinity')) AS eff
      FROM assignments) e
WHERE a.id = e.id;
CREATE INDEX assignments_effective_idx ON assignments (effective_to, valid_from);

-- After an assignment of p_vehicle was inserted or deleted ([p_lo, p_hi) is the deleted one's
-- effective interval, else NULLs): recomputes the vehicle's effective ends and marks dirty
-- every hour in which its attachment may have changed, in the caller's transaction. Hours are
-- marked whether or not readings are visible yet: a reading committed concurrently must not
-- escape the mark. Bounded to the materialized region, and to the minutes the refresher may
-- already have materialized (later ones it reads after this transaction ends, as for rows).
CREATE FUNCTION kilowatch_assignments_changed(p_vehicle text, p_lo timestamptz,
                                              p_hi timestamptz) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    marked integer;
BEGIN
    WITH fresh AS (
        SELECT id, valid_from, effective_to AS old_eff,
               least(coalesce(valid_to, 'infinity'),
                     coalesce(lead(valid_from) OVER (ORDER BY valid_from, id), 'infinity')) AS eff
        FROM assignments WHERE vehicle_id = p_vehicle
    ), updated AS (
        UPDATE assignments a SET effective_to = f.eff
        FROM fresh f
        WHERE a.id = f.id AND a.effective_to IS DISTINCT FROM f.eff
        -- A new assignment changes [from, its end); an existing one whose end moved changes
        -- only the stretch between its old and its new end.
        RETURNING CASE WHEN f.old_eff IS NULL THEN f.valid_from ELSE least(f.old_eff, f.eff) END AS lo,
                  greatest(f.eff, coalesce(f.old_eff, f.eff)) AS hi
    ), ranges AS (
        SELECT lo, hi FROM updated
        UNION ALL
        SELECT p_lo, p_hi WHERE p_lo IS NOT NULL
    ), bounds AS (
        SELECT greatest(min(r.lo), s.floor) AS lo,
               least(max(r.hi), kilowatch_late_before()) AS hi
        FROM ranges r, rollup_state s
        GROUP BY s.floor
    ), hours AS (
        SELECT DISTINCT h.hour
        FROM ranges r, bounds b,
             generate_series(date_trunc('hour', greatest(r.lo, b.lo), 'UTC'),
                             least(r.hi, b.hi) - interval '1 microsecond',
                             interval '1 hour') AS h(hour)
        WHERE greatest(r.lo, b.lo) < least(r.hi, b.hi)
    )
    INSERT INTO rollup_dirty (hour, vehicle_id)
    SELECT hour, p_vehicle FROM hours;
    GET DIAGNOSTICS marked = ROW_COUNT;
    RETURN marked;
END $$;

-- Finding the minutes of a time range in history without a full scan: rows arrive (and
-- backfills are written) roughly in time order, so a block range index is small and sharp.
CREATE INDEX meter_readings_time_brin ON meter_readings USING brin (recorded_at)
    WITH (pages_per_range = 32, autosummarize = on);
CREATE INDEX vehicle_readings_time_brin ON vehicle_readings USING brin (recorded_at)
    WITH (pages_per_range = 32, autosummarize = on);

-- Whoever writes assignments (the API, a backfill's COPY, an operator's SQL), their effective
-- ends and the dirty marks follow in the same transaction.
CREATE FUNCTION kilowatch_assignments_inserted() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM kilowatch_assignments_changed(v.vehicle_id, NULL, NULL)
    FROM (SELECT DISTINCT vehicle_id FROM inserted ORDER BY vehicle_id) v;
    RETURN NULL;
END $$;

CREATE FUNCTION kilowatch_assignments_deleted() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM kilowatch_assignments_changed(d.vehicle_id, d.valid_from, d.effective_to)
    FROM deleted d ORDER BY d.vehicle_id, d.valid_from;
    RETURN NULL;
END $$;

CREATE TRIGGER assignments_inserted AFTER INSERT ON assignments
    REFERENCING NEW TABLE AS inserted FOR EACH STATEMENT
    EXECUTE FUNCTION kilowatch_assignments_inserted();
CREATE TRIGGER assignments_deleted AFTER DELETE ON assignments
    REFERENCING OLD TABLE AS deleted FOR EACH STATEMENT
    EXECUTE FUNCTION kilowatch_assignments_deleted();

-- Late rows mark their hour dirty in their own statement, whoever writes them (the ingest
-- writer, a backfill's COPY, an operator's INSERT). Only rows actually inserted are seen
-- (ON CONFLICT DO NOTHING skips duplicates), and on-time rows cost one comparison each.
CREATE FUNCTION kilowatch_mark_late_vehicles() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO rollup_dirty (hour, vehicle_id)
    SELECT DISTINCT date_trunc('hour', recorded_at, 'UTC'), vehicle_id
    FROM inserted WHERE recorded_at < kilowatch_late_before();
    RETURN NULL;
END $$;

CREATE FUNCTION kilowatch_mark_late_meters() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO rollup_dirty (hour, meter_id)
    SELECT DISTINCT date_trunc('hour', recorded_at, 'UTC'), meter_id
    FROM inserted WHERE recorded_at < kilowatch_late_before();
    RETURN NULL;
END $$;

CREATE TRIGGER vehicle_readings_late AFTER INSERT ON vehicle_readings
    REFERENCING NEW TABLE AS inserted FOR EACH STATEMENT
    EXECUTE FUNCTION kilowatch_mark_late_vehicles();
CREATE TRIGGER meter_readings_late AFTER INSERT ON meter_readings
    REFERENCING NEW TABLE AS inserted FOR EACH STATEMENT
    EXECUTE FUNCTION kilowatch_mark_late_meters();
