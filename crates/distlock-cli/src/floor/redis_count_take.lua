-- Takes a hold on one name's counter (the floor's semaphore and
-- reader-writer lock; the rule of floor/counts.rs).
-- KEYS[1]: the name's hash: n = holders (permits or readers, -1 = the
--          writer), w = present while a refused writer waits
-- ARGV[1]: 'p' (a permit), 's' (a reader) or 'x' (the writer)
-- ARGV[2]: the semaphore's permits (for 'p')
-- Returns 1 when taken, 0 when refused.
local n = tonumber(redis.call('HGET', KEYS[1], 'n') or '0')
if ARGV[1] == 'p' then
  if n >= 0 and n < tonumber(ARGV[2]) then
    redis.call('HINCRBY', KEYS[1], 'n', 1)
    return 1
  end
  return 0
end
if ARGV[1] == 's' then
  if n >= 0 and redis.call('HEXISTS', KEYS[1], 'w') == 0 then
    redis.call('HINCRBY', KEYS[1], 'n', 1)
    return 1
  end
  return 0
end
if n == 0 then
  redis.call('HSET', KEYS[1], 'n', -1)
  redis.call('HDEL', KEYS[1], 'w')
  return 1
end
redis.call('HSET', KEYS[1], 'w', 1)
return 0
