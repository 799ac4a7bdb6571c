-- Deletes the label row of a session lock's exclusive holder that released it
-- (PostgreSQL), and notifies the change to observers on the channel of
-- releases. `{table}` is replaced.
-- $1 = the name's row key, $2 = owner token, $3 = the channel of releases.
-- Returns one row (notified) when there was a label row.
WITH gone AS (
    DELETE FROM "{table}_holders"
     WHERE name = $1
       AND owner = $2
       AND kind = 'l'
    RETURNING name
)
SELECT length(pg_notify($3, name)::text) AS notified
  FROM gone
