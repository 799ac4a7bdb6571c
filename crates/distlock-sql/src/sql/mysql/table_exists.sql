-- How far the locks table named ? (in the current database) is ready. ? = the
-- table name, five times.
-- Returns one row (locks, current, holders, labelled, holders_labelled) of
-- counts, each 0 or 1: the locks table exists; it has its reader columns; its
-- holders table exists; the locks table has its label column; the holders
-- table has its label column.
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
           AND table_name = CONCAT(?, '_holders')) AS holders,
       (SELECT COUNT(*)
          FROM information_schema.columns
         WHERE table_schema = DATABASE()
           AND table_name = ?
           AND column_name = 'label') AS labelled,
       (SELECT COUNT(*)
          FROM information_schema.columns
         WHERE table_schema = DATABASE()
           AND table_name = CONCAT(?, '_holders')
           AND column_name = 'label') AS holders_labelled
