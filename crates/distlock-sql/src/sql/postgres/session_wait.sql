-- Takes a session lock, waiting in the server's queue (PostgreSQL): the
-- exclusive advisory lock (`pg_advisory_lock`), or the shared one with
-- `{mode}` = `_shared`. `{table}` and `{mode}` are replaced before use.
-- $1 = the key (bigint); $2 = the longest wait in milliseconds, as text
-- ('0': no limit), set as `lock_timeout` for this statement only.
-- The CTEs run in order: the setting, the lock, then the token. When the
-- wait runs out the statement fails with SQLSTATE 55P03 (lock_not_available),
-- nothing taken.
-- Returns one row (token, busy_us): the fencing token (`{token}`: the
-- sequence's next value or the server's clock, whichever is larger; see
-- session/postgres.rs), drawn after the grant, and how long the server spent on the statement
-- (its wait), in microseconds.
WITH setting AS MATERIALIZED (
    SELECT set_config('lock_timeout', $2, true) AS lock_timeout
), granted AS MATERIALIZED (
    SELECT pg_advisory_lock{mode}($1) FROM setting
)
SELECT {token} AS token,
       (EXTRACT(EPOCH FROM clock_timestamp() - statement_timestamp()) * 1000000)::bigint AS busy_us
  FROM granted
