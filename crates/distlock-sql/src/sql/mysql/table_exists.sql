-- Whether a table named ? exists in the current database.
-- Returns one row with one integer (0 or 1).
SELECT COUNT(*)
  FROM information_schema.tables
 WHERE table_schema = DATABASE()
   AND table_name = ?
