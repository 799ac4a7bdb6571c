-- Takes the name in any mode for a request the queue admits (fair mode;
-- on Redlock the writer and readers, on each instance), keeping the
-- waiters' queue.
--
-- KEYS[1]  the lock key
-- KEYS[2]  the fencing counter
-- KEYS[3]  the waiters' queue
-- KEYS[4]  the waiters' entries
-- KEYS[5]  the holders set
-- KEYS[6]  the release channel
-- KEYS[7]  the holder label
-- ARGV[1]  the owner token
-- ARGV[2]  the ttl in milliseconds
-- ARGV[3]  '1' when the caller will wait (join or refresh the queue), '0'
--          for a single try
-- ARGV[4]  how long a queue entry lives without being refreshed (ms)
-- ARGV[5]  the mode: 'x', 's' or 'p<n>'
-- ARGV[6]  the holder label of an exclusive request (an elected leader's
--          identity), or ''; kept in the queue entry while it waits
-- ARGV[7]  the stem of the clients' liveness channels ('' for the blind
--          hand-over; see lib/queue.lua)
-- ARGV[8]  the id of the caller's client, whose liveness channel is
--          subscribed, or '' (not yet)
-- ARGV[9]  Redlock: the token the client proposes (lib/fence.lua), or ''
-- ARGV[10] Redlock: the caller's ticket, its place in line (the client's
--          clock in µs when this acquire began, the same on every
--          instance, so that every instance orders the same waiters the
--          same way), or '' for the server's clock now (one instance)
--
-- Without a queue or holders, an unlabelled exclusive request is SET NX PX
-- and a token (the uncontended mutex, before the other libraries are even
-- loaded).
-- Otherwise the queue's head is admitted first
-- (lib/queue.lua `admit`: every queued request that fits, in order, is
-- granted and told); the caller then goes if it was among them, or if
-- nobody queues and it fits beside the holders. A request never overtakes
-- a queued one. A hold handed to the caller by a release (it lives only
-- until the caller's queue entry would have died) is confirmed here: the
-- caller gets it again with its full ttl.
--
-- Returns {1, counter} when taken (the caller left the queue; `counter` is
-- the token issued, lib/fence.lua).
-- Returns {0, ms, counter} when not: `ms` is how long until the holds may
-- change (the writer's remaining ttl or the earliest holder's expiry; -1
-- when unknown); `counter` is the fencing counter now (a later hand-over to
-- us carries a higher one).
-- Returns {-1, declared} when a permit request meets holders or queued
-- requests of another permit count (the caller is not queued).

-- @include lib/fence.lua

if ARGV[5] == 'x' and ARGV[6] == '' and redis.call('EXISTS', KEYS[3]) == 0
    and redis.call('EXISTS', KEYS[5]) == 0 then
  if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
    return {1, next_fence(KEYS[2], ARGV[9])}
  end
end

-- @include lib/holds.lua
-- @include lib/queue.lua

local k = {
  lock = KEYS[1], fence = KEYS[2], queue = KEYS[3], waiters = KEYS[4],
  holders = KEYS[5], channel = KEYS[6], holder = KEYS[7], alive = ARGV[7],
}
local owner, ttl, waits, life, mode = ARGV[1], tonumber(ARGV[2]), ARGV[3], tonumber(ARGV[4]), ARGV[5]
local label, client, proposal = ARGV[6], ARGV[8], ARGV[9]

local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local now_us = tonumber(t[1]) * 1000000 + tonumber(t[2])

-- Ours already (a release handed it to us, or a retry after a lost reply):
-- granted again with the full ttl (a hand-over confirmed).
local ours
if mode == 'x' then
  ours = redis.call('GET', k.lock) == owner
else
  ours = holds_member(k.holders, mode .. ':' .. owner, now)
end
if ours then
  leave(k, owner)
  return {1, take(k, owner, mode, ttl, now, label, proposal)}
end

if string.sub(mode, 1, 1) == 'p' then
  local kind, count = holding(k.lock, k.holders, now)
  local declared = nil
  if fits(mode, kind, count) == 'mismatch' then
    declared = permit_count(kind)
  else
    declared = queued_mismatch(k, mode, now)
  end
  if declared then
    if leave(k, owner) == 1 then
      admit(k, now, nil)
    end
    return {-1, declared}
  end
end

local mine = admit(k, now, owner, proposal)
if mine then
  return {1, mine}
end
if redis.call('EXISTS', k.queue) == 0 then
  local kind, count = holding(k.lock, k.holders, now)
  if fits(mode, kind, count) == 'fits' then
    return {1, take(k, owner, mode, ttl, now, label, proposal)}
  end
end

if waits == '1' then
  enqueue(k, owner, tonumber(ARGV[10]) or now_us, life, ttl, mode, now, label, client)
end
local counter = tonumber(redis.call('GET', k.fence) or '0')
return {0, blocked_for(k.lock, k.holders, now), counter}
