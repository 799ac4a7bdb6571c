-- In an upgrade transaction, after read.sql found the reader alone: removes
-- its reader row and its intent and makes it the exclusive holder, with the
-- next fencing token, and no label (a leader's is elected, never upgraded). $1 = key, $2 = owner token, $3 = ttl in microseconds.
-- Returns one row (fence).
WITH gone AS (
    DELETE FROM "{table}_holders"
     WHERE name = $1
       AND owner = $2
       AND kind IN ('s', 'w')
)
UPDATE "{table}"
   SET fence = fence + 1,
       owner = $2,
       expires_at = now() + make_interval(secs => $3::float8 / 1000000),
       shared_count = 0,
       shared_until = NULL,
       label = NULL
 WHERE name = $1
RETURNING fence
