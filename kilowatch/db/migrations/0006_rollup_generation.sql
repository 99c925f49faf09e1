-- The rollups' generation: a number that changes in every transaction that changes a rollup row,
-- in that same transaction. Read in a snapshot with the window's plan, it names the rollup rows
-- that snapshot sees: two reads of a window served wholly from rollup rows (no raw minutes, no
-- dirty mark) with the same plan and generation read the same rows, so a result computed from
-- them can be kept and served again (kilowatch/db/memo.py) and is exact.
--
-- A statement-level trigger on every rollup table, so no writer (the refresher, retention, a
-- rewind, the bench, a test) can change rows without it: one small update of the singleton per
-- statement, however many rows the statement writes.
ALTER TABLE rollup_state ADD COLUMN generation bigint NOT NULL DEFAULT 0;

CREATE FUNCTION kilowatch_rollups_changed() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    UPDATE rollup_state SET generation = generation + 1;
    RETURN NULL;
END
$$;

DO $$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['rollup_vehicle_hour', 'rollup_attr_hour', 'rollup_config_hour',
                             'rollup_vehicle_day', 'rollup_attr_day', 'rollup_config_day',
                             'rollup_fleet_hour', 'rollup_presence']
    LOOP
        EXECUTE format('CREATE TRIGGER %I AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON %I '
                       'FOR EACH STATEMENT EXECUTE FUNCTION kilowatch_rollups_changed()',
                       t || '_changed', t);
    END LOOP;
END
$$;
