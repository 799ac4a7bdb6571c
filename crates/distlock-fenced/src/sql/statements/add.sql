-- The fenced addition: adds to the counter and records the token when the
-- token is not lower than the recorded one, the value is a counter and the
-- sum fits (the bounds are computed by the caller from the amount).
-- Binds: amount, token, resource, token, lowest counter, highest counter.
-- Affects 1 row when added; 0 when refused, absent, not a counter, or
-- when the sum would overflow.
UPDATE {table}
   SET counter = counter + ?, fence = ?
 WHERE resource = ? AND fence <= ? AND counter BETWEEN ? AND ?
