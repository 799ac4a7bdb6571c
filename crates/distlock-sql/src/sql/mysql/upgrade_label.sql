-- Gives a locks table made by an earlier version its label column. Run only
-- when table_exists.sql finds it missing (MySQL 8 has no ADD COLUMN IF NOT
-- EXISTS). Returns nothing.
ALTER TABLE `{table}`
    ADD COLUMN label VARBINARY(256) NULL
