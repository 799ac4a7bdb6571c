-- The resources table (PostgreSQL). Returns nothing.
-- {table} is replaced by the checked, quoted table name.
--   resource: the resource's name (compared byte by byte: COLLATE "C").
--   value: the value when it is not a counter, else NULL.
--   counter: the value when it is a decimal 64-bit integer, else NULL.
--   fence: the highest fencing token recorded (never decreases).
CREATE TABLE IF NOT EXISTS {table} (
    resource text COLLATE "C" NOT NULL PRIMARY KEY,
    value    bytea,
    counter  bigint,
    fence    bigint NOT NULL
)
