-- Gives a holders table made by an earlier version its label column. Run only
-- when table_exists.sql finds it missing. Returns nothing.
ALTER TABLE `{table}_holders`
    ADD COLUMN label VARBINARY(256) NULL
