-- Whether a session lock is held, and how many sessions wait for it
-- (PostgreSQL), from the server's lock table.
-- $1 = the key (bigint): a bigint advisory lock appears in pg_locks with its
-- high 32 bits as classid, its low 32 bits as objid, and objsubid 1.
-- Returns one row (held, waiting): granted locks (any mode) and waiting
-- requests on the key in this database.
SELECT count(*) FILTER (WHERE granted) AS held,
       count(*) FILTER (WHERE NOT granted) AS waiting
  FROM pg_locks
 WHERE locktype = 'advisory'
   AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
   AND classid = (($1 >> 32) & 4294967295)::oid
   AND objid = ($1 & 4294967295)::oid
   AND objsubid = 1
