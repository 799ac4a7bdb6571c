-- In a grant transaction, after insert.sql: issues the next fencing token to
-- the new reader or permit holder. The exclusive hold was found absent or
-- expired; clearing it here means an expired writer's lease can never be
-- extended again. ?1 = key. Returns one row (fence).
UPDATE "{table}"
   SET fence = fence + 1,
       owner = NULL,
       expires_at = NULL
 WHERE name = ?1
RETURNING fence
