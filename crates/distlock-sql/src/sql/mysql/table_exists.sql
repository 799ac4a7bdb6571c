-- How far the locks table named ? (in the current database) is ready. ? = the
-- table name, three times.
-- Returns one row (locks, current, holders) of counts, each 0 or 1: the locks
-- table exists; it has its reader columns; its holders table exists.
SELECT (SELECT COUNT(*)
          FROM information_schema.tables
         WHERE table_schema = DATABASE()
           AND table_name = ?) AS locks,
       (SELECT COUNT(*)
          FROM information_schema.columns
         WHERE table_schema = DATABASE()
           AND table_name = ?
           AND column_name = 'shared_until') AS current,
       (SELECT COUNT(*)
          FROM information_schema.tables
         WHERE table_schema = DATABASE()
           AND table_name = CONCAT(?, '_holders')) AS holders
