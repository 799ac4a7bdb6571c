-- Whether the locks table named $1 (visible in the search path) is ready:
-- it exists with its reader and label columns, and its holders table exists
-- with its label column.
-- Returns one row with one boolean.
SELECT (SELECT count(*)
          FROM pg_catalog.pg_class c
          JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid
         WHERE c.relname IN ($1, $1 || '_holders')
           AND c.relkind IN ('r', 'p')
           AND pg_catalog.pg_table_is_visible(c.oid)
           AND NOT a.attisdropped
           AND ((c.relname = $1 AND a.attname IN ('shared_until', 'label'))
                OR (c.relname = $1 || '_holders' AND a.attname = 'label'))) = 3
