-- Extends locks held by their owners, any number per call (the watchdog
-- batches every due lease of a client into one call per instance).
--
-- KEYS[i]        the lock key of lease i
-- ARGV[2i - 1]   the owner token of lease i
-- ARGV[2i]       the new ttl of lease i in milliseconds
--
-- Returns an array with one entry per key: 1 when that lock was held by that
-- owner and its expiry was reset to the new ttl, 0 when it was not held by
-- that owner (expired, released, or taken by someone else).
local result = {}
for i, key in ipairs(KEYS) do
  if redis.call('GET', key) == ARGV[2 * i - 1] then
    redis.call('PEXPIRE', key, ARGV[2 * i])
    result[i] = 1
  else
    result[i] = 0
  end
end
return result
