-- Brings a locks table made by an earlier version (no readers, no permits) up
-- to date; a no-op on a current one. Returns nothing.
ALTER TABLE "{table}"
    ADD COLUMN IF NOT EXISTS shared_count bigint NOT NULL DEFAULT 0,
    ADD COLUMN IF NOT EXISTS shared_until timestamptz
