-- Brings a locks table made by an earlier version (no readers, no permits) up
-- to date. Run only when table_exists.sql finds the columns missing (MySQL 8
-- has no ADD COLUMN IF NOT EXISTS). Returns nothing.
ALTER TABLE `{table}`
    ADD COLUMN shared_count BIGINT NOT NULL DEFAULT 0,
    ADD COLUMN shared_until DATETIME(6) NULL
