-- The locks table and its holders table (MySQL / MariaDB). Returns nothing.
-- `{table}` is replaced by the validated table name before use.
--
-- {table}: one row per lock name, kept forever.
--   name: the lock key as bytes (VARBINARY compares bytes: case-sensitive).
--   owner: the exclusive holder's (mutex, writer) owner token, NULL when free.
--   fence: the last fencing token issued for this name, to any mode (never decreases).
--   expires_at: the exclusive hold's expiry in UTC on the database clock, NULL when free.
--   shared_count: how many rows of {table}_holders hold the name (readers or
--     permits); 0 when none.
--   shared_until: no reader or permit holder of the name lives past it (UTC);
--     NULL when there is none. The exclusive acquire reads these two columns of
--     its own row: no other table is consulted on the mutex path.
--   label: the exclusive holder's label (an elected leader's identity, UTF-8),
--     NULL when it was granted without one; meaningful only while that hold lives.
-- {table}_holders: one row per reader, semaphore permit, waiting writer or
--   queued waiter, and under the session strategy per leader's label.
--   name: the lock key (a row of {table} exists for it, except for 'l').
--   owner: the owner token of the hold (or of the waiting writer).
--   kind: 's' a reader, 'p' a semaphore permit, 'w' a waiting writer's intent
--     (not a hold: while one lives, no new reader or permit is granted), 'q'
--     an exclusive waiter's place in the name's queue (not a hold: while one
--     lives, the lock goes to the first place only); session strategy: 'l' the
--     label of the session lock's exclusive holder (not a hold: the session
--     lock is).
--   permits: the semaphore's size for 'p' (every holder of a name declares
--     the same), the place's ticket for 'q' (first come first served), the
--     holder's fencing token for 'l', 0 otherwise.
--   expires_at: the expiry in UTC on the database clock.
--   label: the leader's identity for 'l', NULL otherwise.
CREATE TABLE IF NOT EXISTS `{table}` (
    name         VARBINARY(255) NOT NULL PRIMARY KEY,
    owner        VARBINARY(32) NULL,
    fence        BIGINT UNSIGNED NOT NULL DEFAULT 0,
    expires_at   DATETIME(6) NULL,
    shared_count BIGINT NOT NULL DEFAULT 0,
    shared_until DATETIME(6) NULL,
    label        VARBINARY(256) NULL
) ENGINE = InnoDB;
CREATE TABLE IF NOT EXISTS `{table}_holders` (
    name       VARBINARY(255) NOT NULL,
    owner      VARBINARY(32) NOT NULL,
    kind       VARBINARY(1) NOT NULL,
    permits    BIGINT UNSIGNED NOT NULL DEFAULT 0,
    expires_at DATETIME(6) NOT NULL,
    label      VARBINARY(256) NULL,
    PRIMARY KEY (name, owner, kind)
) ENGINE = InnoDB
