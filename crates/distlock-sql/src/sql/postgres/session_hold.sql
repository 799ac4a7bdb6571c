-- distlock: kept hold. Keeps a session lock after its release until its
-- lock-at-least-for time, on the server (PostgreSQL): run on the session that
-- holds it (and nothing else), readied by session_hold_setup.sql, this
-- statement sleeps on the server for what is left of the minimum, then gives
-- the lock back — whether or not its client is still there: the server does
-- not look at the connection while it runs, and finds it gone only when it
-- answers. Then, for a leader's hold, its label row goes, and observers are
-- notified (both at the statement's commit).
-- The comment's first words are how the client sees the statement running
-- (session_holding.sql). `{table}` and `{mode}` (`` or `_shared`) are
-- replaced.
-- $1 = the key (bigint), $2 = how long to keep it, in microseconds,
-- $3 = the name's row key, $4 = the owner token, $5 = the channel of releases.
-- The CTEs run in order: the sleep, the give-back, then the label row.
-- Returns one row (given, notified): whether the lock was given back, and
-- whether a label row went (NULL when none did).
WITH slept AS MATERIALIZED (
    SELECT pg_sleep($2::float8 / 1000000) AS slept
), given AS MATERIALIZED (
    SELECT pg_advisory_unlock{mode}($1) AS given FROM slept
), gone AS (
    DELETE FROM "{table}_holders" h
     USING given
     WHERE h.name = $3
       AND h.owner = $4
       AND h.kind = 'l'
    RETURNING h.name
)
SELECT given.given,
       (SELECT length(pg_notify($5, name)::text) FROM gone) AS notified
  FROM given
