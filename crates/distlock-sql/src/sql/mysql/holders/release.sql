-- Releases a reader or permit holder: one statement over both tables, the
-- name's row first (STRAIGHT_JOIN fixes the order in which rows are locked,
-- the same as in a grant transaction). The holder's row is marked released
-- (an expiry in the year 1000, which every statement judges past) and the
-- name's count goes down by one, together; forget.sql then deletes the row
-- (MySQL cannot delete from one table and update another in one statement).
-- Parameters: key, owner token.
-- Matches two rows when the owner still held it unexpired, none otherwise;
-- a hold whose name's row the exclusive acquire cleared (shared_until) is
-- gone, whatever its own expiry says.
UPDATE `{table}` AS l
  STRAIGHT_JOIN `{table}_holders` AS h
    ON h.name = l.name
   SET h.expires_at = '1000-01-01 00:00:00',
       l.shared_count = GREATEST(l.shared_count - 1, 0)
 WHERE l.name = ?
   AND h.owner = ?
   AND h.kind IN ('s', 'p')
   AND h.expires_at > UTC_TIMESTAMP(6)
   AND l.shared_until > UTC_TIMESTAMP(6)
