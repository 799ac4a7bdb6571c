-- Whether the locks table has its label column. ?1 = the table name.
-- Returns one row with one count, 0 or 1.
SELECT COUNT(*) FROM pragma_table_info(?1) WHERE name = 'label'
