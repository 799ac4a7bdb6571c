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
-- Returns one row, one bigint[] column (granted): the fencing token (the
-- sequence's next value or the server's clock, whichever is larger; see
-- session/postgres.rs), drawn after the grant, and how long the server spent
-- on the statement (its wait) in microseconds, 0 when the try took it.
SELECT CASE
         WHEN pg_try_advisory_lock{mode}($1)
           THEN ARRAY[{token}, 0]
         WHEN set_config('lock_timeout', $2, true) IS NULL
           THEN NULL
         WHEN pg_advisory_lock{mode}($1)::text = ''
           THEN ARRAY[{token},
                      (EXTRACT(EPOCH FROM clock_timestamp() - statement_timestamp()) * 1000000)::bigint]
       END AS granted
