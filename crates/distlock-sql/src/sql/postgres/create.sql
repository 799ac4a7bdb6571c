-- The locks table (PostgreSQL). Returns nothing.
-- `{table}` is replaced by the validated table name before use.
-- name: the lock key; the "C" collation compares bytes (case-sensitive).
-- owner: the holder's owner token, NULL when free.
-- fence: the last fencing token issued for this name (never decreases).
-- expires_at: the expiry on the database clock, NULL when free.
CREATE TABLE IF NOT EXISTS "{table}" (
    name       text COLLATE "C" PRIMARY KEY,
    owner      text,
    fence      bigint NOT NULL DEFAULT 0,
    expires_at timestamptz
)
