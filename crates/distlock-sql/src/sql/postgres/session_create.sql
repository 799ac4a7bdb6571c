-- The session strategy's fencing sequence (PostgreSQL). Returns nothing.
-- `{table}` is replaced by the validated table name before use.
-- Every grant of a session lock (mutex, writer, reader, permit) draws its
-- fencing token from it, in the granting statement, once the lock is taken.
-- It starts at 2^52: above every token the table strategy could have issued
-- for a name (one per grant), so a name that moves from `strategy=table` to
-- `strategy=session` keeps rising tokens. The other way round they would fall.
-- Sequences never go back, across restarts and crashes included.
CREATE SEQUENCE IF NOT EXISTS "{table}_fence" AS bigint
    START WITH 4503599627370496 MINVALUE 4503599627370496
