-- Whether a session lock is held, how many sessions wait for it, and the
-- leader's label (PostgreSQL), from the server's lock table and the holders
-- table. `{table}` is replaced.
-- $1 = the key (bigint): a bigint advisory lock appears in pg_locks with its
-- high 32 bits as classid, its low 32 bits as objid, and objsubid 1;
-- $2 = the name's row key.
-- Returns one row (held, exclusive, waiting, term, label, remaining_us):
-- granted locks (any mode; exclusive ones), waiting requests on the key in
-- this database, and the live label row of the highest term (a holder's
-- label, which counts only while an exclusive lock is granted), NULLs when
-- there is none.
WITH locks AS (
    SELECT count(*) FILTER (WHERE granted) AS held,
           count(*) FILTER (WHERE granted AND mode = 'ExclusiveLock') AS exclusive,
           count(*) FILTER (WHERE NOT granted) AS waiting
      FROM pg_locks
     WHERE locktype = 'advisory'
       AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
       AND classid = (($1 >> 32) & 4294967295)::oid
       AND objid = ($1 & 4294967295)::oid
       AND objsubid = 1
)
SELECT l.held,
       l.exclusive,
       l.waiting,
       t.permits AS term,
       t.label,
       (EXTRACT(EPOCH FROM (t.expires_at - now())) * 1000000)::bigint AS remaining_us
  FROM locks l
  LEFT JOIN LATERAL (
       SELECT h.permits, h.label, h.expires_at
         FROM "{table}_holders" h
        WHERE h.name = $2
          AND h.kind = 'l'
          AND h.expires_at > now()
        ORDER BY h.permits DESC
        LIMIT 1) t ON true
