-- Takes a session lock, waiting in the server's queue if it must
-- (PostgreSQL): the exclusive advisory lock, or the shared one with the mode
-- placeholder replaced by `_shared`. The table, mode and token placeholders
-- are replaced before use.
-- $1 = the key (bigint); $2 = the longest wait in milliseconds, as text
-- ('0': no limit).
-- CASE runs its branches in order and stops at the first that holds: first a
-- try (`pg_try_advisory_lock`, which never jumps the server's queue: it
-- fails while a request it conflicts with waits), so that a free lock costs
-- no more than the try; only when it fails is `lock_timeout` set, for this
-- statement only (set_config never returns NULL, so that branch never
-- answers), and the lock waited for. When the wait runs out the statement
-- fails with SQLSTATE 55P03 (lock_not_available), nothing taken.
-- The statement is kept small: the server sets up every function call in
-- it at each run, whether the call runs or not.
-- Returns one row (token, busy): the fencing token, the fencing sequence's
-- next value, drawn after the grant (see session/postgres.rs); and how long
-- the server had spent on the statement once it was granted (its wait), an
-- interval, evaluated after the token.
SELECT CASE
         WHEN pg_try_advisory_lock{mode}($1) THEN {token}
         WHEN set_config('lock_timeout', $2, true) IS NULL THEN NULL
         WHEN pg_advisory_lock{mode}($1)::text = '' THEN {token}
       END AS token,
       clock_timestamp() - statement_timestamp() AS busy
