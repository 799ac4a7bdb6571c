-- The locks table (MySQL / MariaDB). Returns nothing.
-- `{table}` is replaced by the validated table name before use.
-- name: the lock key as bytes (VARBINARY compares bytes: case-sensitive).
-- owner: the holder's owner token, NULL when free.
-- fence: the last fencing token issued for this name (never decreases).
-- expires_at: the expiry in UTC on the database clock, NULL when free.
CREATE TABLE IF NOT EXISTS `{table}` (
    name       VARBINARY(255) NOT NULL PRIMARY KEY,
    owner      VARBINARY(32) NULL,
    fence      BIGINT UNSIGNED NOT NULL DEFAULT 0,
    expires_at DATETIME(6) NULL
) ENGINE = InnoDB
