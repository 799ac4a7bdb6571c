-- The fenced set: writes the value and records the token when the token
-- is not lower than the recorded one.
-- Binds: value, counter (one of them NULL), token, resource, token.
-- Affects 1 row when written, 0 when refused or when the row is absent.
UPDATE {table}
   SET value = ?, counter = ?, fence = ?
 WHERE resource = ? AND fence <= ?
