-- Tries a session lock without waiting (PostgreSQL): the exclusive advisory
-- lock (`pg_try_advisory_lock`), or the shared one with the mode placeholder
-- replaced by `_shared`.
-- The table, mode and token placeholders are replaced before use.
-- $1 = the key (bigint).
-- Returns one row (token): the fencing token when the lock was taken (drawn
-- only then: CASE evaluates it after the grant; the token placeholder is the
-- fencing sequence's next value, see session/postgres.rs), NULL when another
-- session holds it, or, for the shared lock, when an exclusive request waits
-- for it (the server's queue keeps writers from starving).
SELECT CASE WHEN pg_try_advisory_lock{mode}($1)
            THEN {token}
       END AS token
