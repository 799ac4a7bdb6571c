-- In an upgrade transaction, after drop_own.sql: makes the reader (now the
-- only holder) the exclusive holder, with the next fencing token and no label.
-- ?1 = key, ?2 = owner token, ?3 = ttl in milliseconds. Returns one row (fence).
UPDATE "{table}"
   SET fence = fence + 1,
       owner = ?2,
       expires_at = CAST((julianday('now') - 2440587.5) * 86400000.0 AS INTEGER) + ?3,
       label = NULL
 WHERE name = ?1
RETURNING fence
