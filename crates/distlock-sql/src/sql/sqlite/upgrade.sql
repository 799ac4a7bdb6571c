-- Gives a locks table made by an earlier version its label column. Run only
-- when label_exists.sql finds it missing (SQLite has no ADD COLUMN IF NOT
-- EXISTS). Returns nothing.
ALTER TABLE "{table}" ADD COLUMN label TEXT
