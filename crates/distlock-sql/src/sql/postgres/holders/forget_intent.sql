-- Removes a writer's intent (granted, gave up, or cancelled), and wakes the
-- readers it held back: notifies channel $3 (the table name) with the key.
-- $1 = key, $2 = owner token, $3 = channel. Returns one row when there was one.
WITH gone AS (
    DELETE FROM "{table}_holders"
     WHERE name = $1
       AND owner = $2
       AND kind = 'w'
    RETURNING name
)
SELECT length(pg_notify($3, name)::text) AS notified
  FROM gone
