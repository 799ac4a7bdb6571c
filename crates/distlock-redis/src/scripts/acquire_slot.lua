-- Redlock permits: takes one free permit slot on this instance, trying
-- the slots from a given one on. Permit i of n is a mutex on its own key,
-- so a majority of instances granting slot i gives at most one holder of
-- it, and n slots at most n holders (counting holders per instance would
-- not be safe: holders on {A,B}, {A,C}, {B,C} each have a majority of three
-- while every instance counts two). The holder is a member of the holders
-- set too, so the writer and readers are kept out.
--
-- KEYS[1]  the lock key (the writer's)
-- KEYS[2]  the fencing counter (shared by every slot and mode)
-- KEYS[3]  the holders set
-- KEYS[4]  the permit slots' base key (slot i is '<base>:<i>')
-- ARGV[1]  the owner token
-- ARGV[2]  the ttl in milliseconds
-- ARGV[3]  the mode: 'p<n>'
-- ARGV[4]  the slot to try first (0 <= first < n)
-- ARGV[5]  the token the client proposes (lib/fence.lua), or ''
--
-- An owner that already holds a slot here (a retry after a lost reply)
-- gets that slot again with a fresh expiry.
--
-- Returns {1, counter, slot} when a slot was taken (`counter`: the token
-- issued).
-- Returns {0, ms} when every slot is taken, or a writer or readers hold the
-- name: `ms` is the time until that may change.
-- Returns {-1, declared} when permits of another count hold the name.

-- @include lib/fence.lua
-- @include lib/holds.lua

local k = {lock = KEYS[1], fence = KEYS[2], holders = KEYS[3]}
local base, owner, ttl, mode = KEYS[4], ARGV[1], tonumber(ARGV[2]), ARGV[3]
if redis.call('EXISTS', k.lock) == 1 then
  return {0, redis.call('PTTL', k.lock)}
end
local now = now_ms()
local kind, count = shared_holders(k.holders, now)
local n, first, member = permit_count(mode), tonumber(ARGV[4]), mode .. ':' .. owner

-- Slot `slot` is ours (its key set): join the holders, take a token.
local function grant(slot)
  redis.call('ZADD', k.holders, now + ttl, member)
  touch(k.holders)
  return {1, next_fence(k.fence, ARGV[5]), slot}
end

if holds_member(k.holders, member, now) then
  for slot = 0, n - 1 do
    if redis.call('GET', base .. ':' .. slot) == owner then
      redis.call('PEXPIRE', base .. ':' .. slot, ttl)
      return grant(slot)
    end
  end
  redis.call('ZREM', k.holders, member)
  touch(k.holders)
  count = count - 1
end
local fit = fits(mode, kind, count)
if fit == 'mismatch' then
  return {-1, permit_count(kind)}
end
if fit == 'fits' then
  for j = 0, n - 1 do
    local slot = (first + j) % n
    if redis.call('SET', base .. ':' .. slot, owner, 'NX', 'PX', ttl) then
      return grant(slot)
    end
  end
end
return {0, blocked_for(k.lock, k.holders, now)}
