-- Gives up an acquire (fair mode): releases the lock if this owner holds it
-- (it may have been handed over just now), and leaves the waiters' queue.
--
-- KEYS[1]  the lock key
-- KEYS[2]  the release channel
-- KEYS[3]  the waiters' queue
-- KEYS[4]  the waiters' entries: owner token -> "deadline_ms:ttl_ms"
-- KEYS[5]  the fencing counter
-- ARGV[1]  the owner token
--
-- When the lock is free afterwards, it is handed to the next live waiter as
-- the release script does (or `*` is published when nobody waits).
--
-- Returns 1 when the lock was held by this owner and is now released,
-- 0 otherwise.
local function hand_over()
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

local released = 0
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1])
  released = 1
end
local queued = redis.call('ZREM', KEYS[3], ARGV[1])
redis.call('HDEL', KEYS[4], ARGV[1])
if (released == 1 or queued == 1) and redis.call('EXISTS', KEYS[1]) == 0 then
  hand_over()
end
return released
