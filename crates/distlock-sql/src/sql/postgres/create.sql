-- The locks table and its holders table (PostgreSQL). Returns nothing.
-- `{table}` is replaced by the validated table name before use.
--
-- {table}: one row per lock name, kept forever.
--   name: the lock key; the "C" collation compares bytes (case-sensitive).
--   owner: the exclusive holder's (mutex, writer) owner token, NULL when free.
--   fence: the last fencing token issued for this name, to any mode (never decreases).
--   expires_at: the exclusive hold's expiry on the database clock, NULL when free.
--   shared_count: how many rows of {table}_holders hold the name (readers or
--     permits); 0 when none.
--   shared_until: no reader or permit holder of the name lives past it; NULL
--     when there is none. The exclusive acquire reads these two columns of its
--     own row: no other table is consulted on the mutex path.
--   label: the exclusive holder's label (an elected leader's identity), NULL
--     when it was granted without one; meaningful only while that hold lives.
-- {table}_holders: one row per reader, semaphore permit or waiting writer, and
--   under the session strategy per leader's label.
--   name: the lock key (a row of {table} exists for it, except for 'l').
--   owner: the owner token of the hold (or of the waiting writer).
--   kind: 's' a reader, 'p' a semaphore permit, 'w' a waiting writer's intent
--     (not a hold: while one lives, no new reader or permit is granted);
--     session strategy: 'l' the label of the session lock's exclusive holder
--     (not a hold: the session lock is).
--   permits: the semaphore's size for 'p' (every holder of a name declares
--     the same), the holder's fencing token for 'l', 0 otherwise.
--   expires_at: the expiry on the database clock.
--   label: the leader's identity for 'l', NULL otherwise.
CREATE TABLE IF NOT EXISTS "{table}" (
    name         text COLLATE "C" PRIMARY KEY,
    owner        text,
    fence        bigint NOT NULL DEFAULT 0,
    expires_at   timestamptz,
    shared_count bigint NOT NULL DEFAULT 0,
    shared_until timestamptz,
    label        text
);
CREATE TABLE IF NOT EXISTS "{table}_holders" (
    name       text COLLATE "C" NOT NULL,
    owner      text NOT NULL,
    kind       text NOT NULL,
    permits    bigint NOT NULL DEFAULT 0,
    expires_at timestamptz NOT NULL,
    label      text,
    PRIMARY KEY (name, owner, kind)
)
