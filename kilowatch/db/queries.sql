-- name: create_partition
-- $1 parent table name, $2 day (date): creates and attaches the daily partition when missing
-- (true when it did); locks the parent only in SHARE UPDATE EXCLUSIVE mode.
SELECT kilowatch_create_partition($1::regclass, $2::date);

-- name: list_partitions
-- $1 parent table name: the tables named as its daily partitions, attached or not (a detach
-- interrupted half-way, or one detached and not dropped yet), with their state.
SELECT to_date(right(c.relname, 8), 'YYYYMMDD') AS day,
       i.inhrelid IS NOT NULL AS attached,
       coalesce(i.inhdetachpending, false) AS detaching
FROM pg_class p
JOIN pg_class c ON c.relnamespace = p.relnamespace
               AND c.relkind = 'r'
               AND length(c.relname) = length(p.relname) + 10
               AND left(c.relname, length(p.relname) + 2) = p.relname || '_p'
               AND right(c.relname, 8) ~ '^[0-9]{8}$'
LEFT JOIN pg_inherits i ON i.inhrelid = c.oid AND i.inhparent = p.oid
WHERE p.oid = $1::regclass
ORDER BY day;

-- name: partition_state
-- $1 parent table name, $2 day (date): that day's table, if any, and whether it is attached or
-- its detach is pending. No row when there is no such table.
SELECT c.oid::regclass::text AS name,
       i.inhrelid IS NOT NULL AS attached,
       coalesce(i.inhdetachpending, false) AS detaching
FROM pg_class c
LEFT JOIN pg_inherits i ON i.inhrelid = c.oid AND i.inhparent = $1::regclass
WHERE c.oid = to_regclass(kilowatch_partition_name($1::regclass, $2::date));

-- name: detach_partition_statement
-- $1 parent table name, $2 day (date), $3 'CONCURRENTLY' or 'FINALIZE': the statement that
-- detaches that day's partition, names quoted by PostgreSQL. It cannot run in a function or a
-- transaction, so the client runs the text this returns.
SELECT format('ALTER TABLE %s DETACH PARTITION %s %s', $1::regclass,
              kilowatch_partition_name($1::regclass, $2::date),
              CASE $3::text WHEN 'CONCURRENTLY' THEN 'CONCURRENTLY' ELSE 'FINALIZE' END);

-- name: drop_partition
-- $1 parent table name, $2 day (date): drops that day's table once detached; returns its name,
-- or NULL when there was none.
SELECT kilowatch_drop_partition($1::regclass, $2::date);

-- name: applied_versions
-- Versions recorded by migrate().
SELECT version FROM schema_migrations ORDER BY version;
