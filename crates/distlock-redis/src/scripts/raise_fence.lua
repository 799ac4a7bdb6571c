-- Raises the fencing counter to at least ARGV[2], but only while this owner
-- still holds the lock (Redlock writes the token it chose back to a majority).
--
-- KEYS[1]  the lock key
-- KEYS[2]  the fencing counter
-- ARGV[1]  the owner token
-- ARGV[2]  the fencing token to record
--
-- Returns 1 when the counter is now >= ARGV[2] and the owner holds the lock,
-- 0 when the lock is not held by this owner (nothing written).
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return 0
end
local current = tonumber(redis.call('GET', KEYS[2]) or '0')
local wanted = tonumber(ARGV[2])
if current < wanted then
  redis.call('SET', KEYS[2], ARGV[2])
end
return 1
