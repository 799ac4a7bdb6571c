-- Stores the label of a session lock's exclusive holder (PostgreSQL): an
-- elected leader's identity, in a holders row of kind 'l' living as long as
-- the hold's ttl (renewed with it, deleted at release), and notifies the
-- labelled grant to observers (delivered when the statement commits).
-- `{table}` is replaced.
-- $1 = the name's row key, $2 = owner token, $3 = the hold's fencing token
-- (the leader's term), $4 = ttl in microseconds, $5 = the label, $6 = the
-- channel of labelled grants.
-- Returns one row (notified).
WITH added AS (
    INSERT INTO "{table}_holders" (name, owner, kind, permits, expires_at, label)
    VALUES ($1, $2, 'l', $3, now() + make_interval(secs => $4::float8 / 1000000), $5)
    ON CONFLICT (name, owner, kind) DO UPDATE
       SET permits = EXCLUDED.permits,
           expires_at = EXCLUDED.expires_at,
           label = EXCLUDED.label
    RETURNING name
)
SELECT length(pg_notify($6, name)::text) AS notified
  FROM added
