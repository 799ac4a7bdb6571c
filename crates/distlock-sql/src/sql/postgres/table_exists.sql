-- Whether a table named $1 is visible in the search path.
-- Returns one row with one boolean.
SELECT EXISTS (
    SELECT 1
      FROM pg_catalog.pg_class c
     WHERE c.relname = $1
       AND c.relkind IN ('r', 'p')
       AND pg_catalog.pg_table_is_visible(c.oid)
)
