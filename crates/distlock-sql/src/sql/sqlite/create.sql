-- The locks table (SQLite). Returns nothing.
-- `{table}` is replaced by the validated table name before use.
-- name: the lock key, compared with the BINARY collation (case-sensitive).
-- owner: the holder's owner token, NULL when free.
-- fence: the last fencing token issued for this name (never decreases).
-- expires_at: milliseconds since the Unix epoch on the database clock, NULL when free.
CREATE TABLE IF NOT EXISTS "{table}" (
    name       TEXT    NOT NULL PRIMARY KEY,
    owner      TEXT,
    fence      INTEGER NOT NULL DEFAULT 0,
    expires_at INTEGER
) WITHOUT ROWID
