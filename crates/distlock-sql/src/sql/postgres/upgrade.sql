-- Brings the tables made by an earlier version (no readers, no permits, no
-- labels) up to date; a no-op on current ones. Returns nothing.
ALTER TABLE "{table}"
    ADD COLUMN IF NOT EXISTS shared_count bigint NOT NULL DEFAULT 0,
    ADD COLUMN IF NOT EXISTS shared_until timestamptz,
    ADD COLUMN IF NOT EXISTS label text;
ALTER TABLE "{table}_holders"
    ADD COLUMN IF NOT EXISTS label text
