-- Takes the lock exclusively (the mutex, the writer) when its row is absent,
-- released or expired and no reader or permit holder lives, and issues the
-- next fencing token. ?1 = key, ?2 = owner token, ?3 = ttl in milliseconds.
-- Returns one row (fence) when acquired, no row when someone holds it.
-- The readers' check is one primary-key range probe of the holders table.
-- Holders exist only for names whose row exists (a grant creates it first),
-- so the insert branch needs no such check.
-- "Now" is the database clock: julianday('now') in milliseconds since the epoch,
-- fixed for the whole statement, read once the statement holds the write lock.
INSERT INTO "{table}" AS l (name, owner, fence, expires_at)
VALUES (?1, ?2, 1, CAST((julianday('now') - 2440587.5) * 86400000.0 AS INTEGER) + ?3)
ON CONFLICT (name) DO UPDATE
   SET owner = excluded.owner,
       fence = l.fence + 1,
       expires_at = excluded.expires_at
 WHERE (l.expires_at IS NULL
        OR l.expires_at <= CAST((julianday('now') - 2440587.5) * 86400000.0 AS INTEGER))
   AND NOT EXISTS (
       SELECT 1
         FROM "{table}_holders" h
        WHERE h.name = ?1
          AND h.kind <> 'w'
          AND h.expires_at > CAST((julianday('now') - 2440587.5) * 86400000.0 AS INTEGER))
RETURNING fence
