-- Whether the locks table named $1 (visible in the search path) is ready:
-- it exists, has its reader columns, and its holders table exists.
-- Returns one row with one boolean.
SELECT EXISTS (
           SELECT 1
             FROM pg_catalog.pg_class c
             JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid
            WHERE c.relname = $1
              AND c.relkind IN ('r', 'p')
              AND pg_catalog.pg_table_is_visible(c.oid)
              AND a.attname = 'shared_until'
              AND NOT a.attisdropped)
   AND EXISTS (
           SELECT 1
             FROM pg_catalog.pg_class c
            WHERE c.relname = $1 || '_holders'
              AND c.relkind IN ('r', 'p')
              AND pg_catalog.pg_table_is_visible(c.oid))
