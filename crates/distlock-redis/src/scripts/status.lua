-- Reads what can be told about a lock without taking it.
--
-- KEYS[1]  the lock key
-- KEYS[2]  the fencing counter
-- KEYS[3]  the waiters' queue (fair mode; absent otherwise)
--
-- Returns {pttl, counter, waiters}: `pttl` is the holder's remaining time to
-- live in milliseconds (-2 when nobody holds the lock, -1 for a key without
-- expiry), `counter` the fencing counter (0 when no token was ever issued),
-- `waiters` the length of the waiters' queue (0 without one; it may still
-- count waiters that vanished until their entries are pruned).
return {
  redis.call('PTTL', KEYS[1]),
  tonumber(redis.call('GET', KEYS[2]) or '0'),
  redis.call('ZCARD', KEYS[3])
}
