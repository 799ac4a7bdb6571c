-- Takes a reader hold, or a permit on a single instance, when it fits
-- beside the name's holders (no queue: fair=false and Redlock), and
-- issues a fencing token (lib/fence.lua).
--
-- KEYS[1]  the lock key (the writer's)
-- KEYS[2]  the fencing counter
-- KEYS[3]  the holders set
-- ARGV[1]  the owner token
-- ARGV[2]  the ttl in milliseconds
-- ARGV[3]  the mode: 's' (a reader) or 'p<n>' (a permit of n)
-- ARGV[4]  Redlock: the token the client proposes (lib/fence.lua), or ''
--
-- Expired holders are dropped first. An owner that already holds (a retry
-- after a reply was lost) gets its hold again with a fresh expiry.
--
-- Returns {1, counter} when taken (`counter`: the token issued).
-- Returns {0, ms} when it must wait: `ms` is the writer's remaining ttl, or
-- the time until the earliest holder expires.
-- Returns {-1, declared} when a permit of another count holds the name.

-- @include lib/fence.lua
-- @include lib/holds.lua

local k = {lock = KEYS[1], fence = KEYS[2], holders = KEYS[3]}
local owner, ttl, mode, proposal = ARGV[1], tonumber(ARGV[2]), ARGV[3], ARGV[4]
if redis.call('EXISTS', k.lock) == 1 then
  return {0, redis.call('PTTL', k.lock)}
end
local now = now_ms()
local kind, count = shared_holders(k.holders, now)
if holds_member(k.holders, mode .. ':' .. owner, now) then
  return {1, take(k, owner, mode, ttl, now, nil, proposal)}
end
local fit = fits(mode, kind, count)
if fit == 'mismatch' then
  return {-1, permit_count(kind)}
end
if fit == 'waits' then
  return {0, blocked_for(k.lock, k.holders, now)}
end
return {1, take(k, owner, mode, ttl, now, nil, proposal)}
