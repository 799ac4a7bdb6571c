-- Tries a session lock without waiting (PostgreSQL): the exclusive advisory
-- lock (`pg_try_advisory_lock`), or the shared one with `{mode}` = `_shared`.
-- `{table}` and `{mode}` are replaced before use.
-- $1 = the key (bigint).
-- Returns one row (token): the fencing token when the lock was taken (drawn
-- only then: CASE evaluates it after the grant; `{token}` is the expression
-- of session/postgres.rs, the sequence's next value or the server's clock,
-- whichever is larger), NULL
-- when another session holds it, or, for the shared lock, when an exclusive
-- request waits for it (the server's queue keeps writers from starving).
SELECT CASE WHEN pg_try_advisory_lock{mode}($1)
            THEN {token}
       END AS token
