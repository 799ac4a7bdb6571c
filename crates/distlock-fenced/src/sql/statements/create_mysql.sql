-- The resources table (MySQL / MariaDB). Returns nothing.
-- {table} is replaced by the checked, quoted table name.
--   resource: the resource's name as bytes (VARBINARY compares bytes: case
--     and trailing spaces count).
--   value: the value when it is not a counter, else NULL.
--   counter: the value when it is a decimal 64-bit integer, else NULL.
--   fence: the highest fencing token recorded (never decreases).
CREATE TABLE IF NOT EXISTS {table} (
    resource VARBINARY(1024) NOT NULL PRIMARY KEY,
    value    LONGBLOB NULL,
    counter  BIGINT NULL,
    fence    BIGINT NOT NULL
) ENGINE = InnoDB
