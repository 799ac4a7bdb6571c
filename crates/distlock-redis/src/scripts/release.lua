-- Releases the lock if this owner holds it, and hands it to the next waiter.
--
-- KEYS[1]  the lock key
-- KEYS[2]  the release channel ({prefix name}:released)
-- KEYS[3]  the waiters' queue (fair mode; absent otherwise)
-- KEYS[4]  the waiters' entries: owner token -> "deadline_ms:ttl_ms"
-- KEYS[5]  the fencing counter
-- ARGV[1]  the owner token
--
-- Without a queue, publishes `*` (wake every waiter; they race).
-- With one, the oldest live waiter (entries whose deadline passed are
-- dropped) leaves the queue and gets the lock at once: its owner token is
-- SET with its own ttl, the fencing counter is INCRed, and
-- `<owner token>:<counter>` is published so it needs no round trip of its own.
--
-- Returns 1 when the lock was held by this owner and is now released (and
-- handed over or announced), 0 when it was not held by this owner.
local function hand_over()
  if redis.call('EXISTS', KEYS[3]) == 0 then
    redis.call('PUBLISH', KEYS[2], '*')
    return
  end
  local t = redis.call('TIME')
  local now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  while true do
    local head = redis.call('ZRANGE', KEYS[3], 0, 0)[1]
    if not head then
      redis.call('PUBLISH', KEYS[2], '*')
      return
    end
    local entry = redis.call('HGET', KEYS[4], head) or '0:0'
    local deadline, ttl = string.match(entry, '^(%d+):(%d+)$')
    redis.call('ZREM', KEYS[3], head)
    redis.call('HDEL', KEYS[4], head)
    if deadline and tonumber(deadline) > now_ms and tonumber(ttl) > 0 then
      redis.call('SET', KEYS[1], head, 'PX', ttl)
      local fence = redis.call('INCR', KEYS[5])
      redis.call('PUBLISH', KEYS[2], head .. ':' .. fence)
      return
    end
  end
end

if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1])
  hand_over()
  return 1
end
return 0
