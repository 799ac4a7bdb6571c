-- Gives up an acquire or an upgrade (single instance): leaves the waiters'
-- queue, and undoes what a hand-over or an unanswered attempt may have
-- granted.
--
-- KEYS[1]  the lock key
-- KEYS[2]  the release channel
-- KEYS[3]  the waiters' queue
-- KEYS[4]  the waiters' entries
-- KEYS[5]  the fencing counter
-- KEYS[6]  the holders set
-- KEYS[7]  the holder label (a queued leader's label is recorded there
--          when the name is handed to it)
-- ARGV[1]  the owner token
-- ARGV[2]  the member this acquire would hold ('<mode>:<owner>'), or ''
--          for a writer
-- ARGV[3]  '1' for an upgrade: a reader turned writer just now becomes the
--          reader it was (same owner, the expiry it had left), never freed
-- ARGV[4]  the stem of the clients' liveness channels ('' for the blind
--          hand-over; see lib/queue.lua)
--
-- When anything changed, grants whoever may go now as the release script
-- does (or publishes `*` when nobody queues).
--
-- Returns 1 when this owner held (as the acquire asked) and now released,
-- 0 otherwise.

-- @include lib/fence.lua
-- @include lib/holds.lua
-- @include lib/queue.lua

local k = {
  lock = KEYS[1], fence = KEYS[5], queue = KEYS[3], waiters = KEYS[4],
  holders = KEYS[6], channel = KEYS[2],
  holder = KEYS[7], alive = ARGV[4],
}
local owner, member, upgrade = ARGV[1], ARGV[2], ARGV[3] == '1'
local now = now_ms()
local released, changed = 0, false
if upgrade then
  if redis.call('GET', k.lock) == owner then
    local pttl = redis.call('PTTL', k.lock)
    redis.call('DEL', k.lock)
    if pttl > 0 then
      redis.call('ZADD', k.holders, now + pttl, 's:' .. owner)
      touch(k.holders)
    end
    changed = true
  end
else
  if redis.call('GET', k.lock) == owner then
    redis.call('DEL', k.lock)
    released = 1
  end
  if member ~= '' and redis.call('ZREM', k.holders, member) == 1 then
    touch(k.holders)
    released = 1
  end
end
if leave(k, owner) == 1 then
  changed = true
end
if released == 1 or changed then
  wake(k, now)
end
return released
