-- Turns a reader's hold into the writer's, in place, once it is the only
-- hold (single instance).
--
-- KEYS[1]  the lock key
-- KEYS[2]  the fencing counter
-- KEYS[3]  the waiters' queue
-- KEYS[4]  the waiters' entries
-- KEYS[5]  the holders set
-- KEYS[6]  the release channel
-- KEYS[7]  the holder label (a queued leader's label is recorded there
--          when the name is handed to it)
-- ARGV[1]  the owner token of the reader
-- ARGV[2]  the writer's ttl in milliseconds
-- ARGV[3]  '1' when the caller will wait in fair mode: it queues first in
--          line, so readers arriving meanwhile queue behind it ('0' for a
--          single try, and always without a queue)
-- ARGV[4]  how long a queue entry lives without being refreshed (ms)
-- ARGV[5]  the stem of the clients' liveness channels ('' for the blind
--          hand-over; see lib/queue.lua)
-- ARGV[6]  the id of the caller's client, whose liveness channel is
--          subscribed, or '' (not yet)
--
-- The reader member leaves the holders set and the lock key is set to the
-- same owner in one script: no writer can come in between. A release that
-- leaves the upgrading reader alone does the same for it (lib/queue.lua
-- `admit`, mode 'u') and tells it `<owner>:<token>`.
--
-- Returns {1, counter} when upgraded (or already upgraded, by this script
-- or a release's hand-over: granted again with the full ttl); `counter` is
-- the token issued (lib/fence.lua).
-- Returns {0, ms, counter} while other holders remain (see fair_acquire).
-- Returns {-2} when the reader's hold is gone (expired or released).

-- @include lib/fence.lua
-- @include lib/holds.lua
-- @include lib/queue.lua

local k = {
  lock = KEYS[1], fence = KEYS[2], queue = KEYS[3], waiters = KEYS[4],
  holders = KEYS[5], channel = KEYS[6],
  holder = KEYS[7], alive = ARGV[5],
}
local owner, ttl, waits, life = ARGV[1], tonumber(ARGV[2]), ARGV[3], tonumber(ARGV[4])
local client = ARGV[6]
local now = now_ms()

if redis.call('GET', k.lock) == owner then
  leave(k, owner)
  return {1, take(k, owner, 'x', ttl, now)}
end
local _, count = shared_holders(k.holders, now)
if not holds_member(k.holders, 's:' .. owner, now) then
  if leave(k, owner) == 1 then
    wake(k, now)
  end
  return {-2}
end
if count == 1 and redis.call('EXISTS', k.lock) == 0 then
  leave(k, owner)
  return {1, take(k, owner, 'u', ttl, now)}
end
if waits == '1' then
  enqueue(k, owner, 0, life, ttl, 'u', now, '', client)
end
local counter = tonumber(redis.call('GET', k.fence) or '0')
return {0, blocked_for(k.lock, k.holders, now), counter}
