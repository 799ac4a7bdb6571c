-- The locks table and its holders table (SQLite). Returns nothing.
-- `{table}` is replaced by the validated table name before use; both
-- statements are idempotent, so an older database gains the holders table
-- (and upgrade.sql gives its locks table the label column).
--
-- {table}: one row per lock name, kept forever.
--   name: the lock key, compared with the BINARY collation (case-sensitive).
--   owner: the exclusive holder's (mutex, writer) owner token, NULL when free.
--   fence: the last fencing token issued for this name, to any mode (never decreases).
--   expires_at: the exclusive hold's expiry, ms since the Unix epoch on the
--     database clock, NULL when free.
--   label: the exclusive holder's label (an elected leader's identity), NULL
--     when it was granted without one; meaningful only while that hold lives.
-- {table}_holders: one row per reader, semaphore permit, waiting writer or
--   queued waiter.
--   name: the lock key (a row of {table} exists for it).
--   owner: the owner token of the hold (or of the waiting writer).
--   kind: 's' a reader, 'p' a semaphore permit, 'w' a waiting writer's intent
--     (not a hold: while one lives, no new reader or permit is granted), 'q'
--     an exclusive waiter's place in the name's queue (not a hold: while one
--     lives, the lock goes to the first place only).
--   permits: the semaphore's size for 'p' (every holder of a name declares
--     the same), the place's ticket for 'q' (first come first served), 0
--     otherwise.
--   expires_at: ms since the Unix epoch on the database clock.
CREATE TABLE IF NOT EXISTS "{table}" (
    name       TEXT    NOT NULL PRIMARY KEY,
    owner      TEXT,
    fence      INTEGER NOT NULL DEFAULT 0,
    expires_at INTEGER,
    label      TEXT
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS "{table}_holders" (
    name       TEXT    NOT NULL,
    owner      TEXT    NOT NULL,
    kind       TEXT    NOT NULL,
    permits    INTEGER NOT NULL DEFAULT 0,
    expires_at INTEGER NOT NULL,
    PRIMARY KEY (name, owner, kind)
) WITHOUT ROWID
