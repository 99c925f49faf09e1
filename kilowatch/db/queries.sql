-- name: create_partition
-- $1 parent table name, $2 day (date): creates the daily partition when missing.
SELECT kilowatch_create_partition($1::regclass, $2::date);

-- name: list_partition_days
-- $1 parent table name: the days of its existing daily partitions.
SELECT to_date(right(c.relname, 8), 'YYYYMMDD') AS day
FROM pg_inherits i
JOIN pg_class c ON c.oid = i.inhrelid
WHERE i.inhparent = $1::regclass
ORDER BY day;

-- name: drop_partition
-- $1 parent table name, $2 day (date): drops that day's partition when present.
SELECT kilowatch_drop_partition($1::regclass, $2::date);

-- name: applied_versions
-- Versions recorded by migrate().
SELECT version FROM schema_migrations ORDER BY version;
