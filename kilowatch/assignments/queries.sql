-- name: lock_vehicle
-- $1 vehicle id: serialises assignment writes of one vehicle until the transaction ends.
SELECT pg_advisory_xact_lock(hashtext($1::text));

-- name: conflicts
-- $1 vehicle id, $2 from, $3 to (NULL = open): ids of the vehicle's assignments that clash.
-- A closed assignment occupies [from, to); an open one only claims its start instant, because it
-- ends wherever the vehicle's next assignment begins. So: closed ones must not overlap, no
-- assignment may start inside a closed one, and no two may start at the same instant.
SELECT id
FROM assignments
WHERE vehicle_id = $1::text
  AND tstzrange(valid_from, coalesce(valid_to, valid_from + interval '1 microsecond'))
      && tstzrange($2::timestamptz, coalesce($3::timestamptz, $2::timestamptz + interval '1 microsecond'))
ORDER BY valid_from, id;

-- name: insert
-- $1 vehicle id, $2 meter id, $3 from, $4 to (NULL = open).
INSERT INTO assignments (vehicle_id, meter_id, valid_from, valid_to)
VALUES ($1::text, $2::text, $3::timestamptz, $4::timestamptz)
RETURNING id, vehicle_id, meter_id, valid_from, valid_to;

-- name: list
-- $1 vehicle id or NULL, $2 meter id or NULL, $3 cursor vehicle id or NULL, $4 cursor from,
-- $5 cursor id, $6 limit: ordered by (vehicle_id, valid_from, id), keyset-paged.
SELECT id, vehicle_id, meter_id, valid_from, valid_to
FROM assignments
WHERE ($1::text IS NULL OR vehicle_id = $1::text)
  AND ($2::text IS NULL OR meter_id = $2::text)
  AND ($3::text IS NULL OR (vehicle_id, valid_from, id) > ($3::text, $4::timestamptz, $5::bigint))
ORDER BY vehicle_id, valid_from, id
LIMIT $6::int;

-- name: delete
-- $1 assignment id: deletes it; returns its id when it existed.
DELETE FROM assignments WHERE id = $1::bigint RETURNING id;
