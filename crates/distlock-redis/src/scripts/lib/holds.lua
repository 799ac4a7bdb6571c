-- Library included (`-- @include lib/holds.lua`, after lib/fence.lua) by
-- the scripts that handle readers and permits: server time, the holders
-- set, and the core's compatibility rule.
--
-- Where a name's holds live:
--   the lock key     the exclusive holder's owner token (PX ttl): the mutex,
--                    which is the write lock;
--   the holders set  readers and permits: members '<mode>:<owner token>'
--                    ('s:…' a reader, 'p3:…' a permit of 3) scored by expiry
--                    (ms, server time). The key expires with its latest
--                    member, so it exists exactly while someone holds. By
--                    the rule below all its members share one mode;
--   permit slots     Redlock permits only: '<permits>:<i>' holds the owner
--                    token of permit i (PX ttl); the holder is a member of
--                    the holders set too.
-- Modes are written 'x' (exclusive), 's' (shared), 'p<n>' (a permit of n)
-- and, in the queue, 'u' (a reader upgrading to the writer).

-- Server time in milliseconds.
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- Makes the holders set expire with its latest member.
local function touch(holders)
  local last = redis.call('ZRANGE', holders, -1, -1, 'WITHSCORES')
  if last[2] then
    redis.call('PEXPIREAT', holders, last[2])
  end
end

-- Drops expired members of the holders set; returns their mode and count
-- (nil, 0 when nobody holds).
local function shared_holders(holders, now)
  redis.call('ZREMRANGEBYSCORE', holders, '-inf', '(' .. now)
  local first = redis.call('ZRANGE', holders, 0, 0)[1]
  if not first then
    return nil, 0
  end
  return string.match(first, '^([^:]*):'), redis.call('ZCARD', holders)
end

-- What holds the name now: 'x', 1 when the lock key is held, else the
-- holders set's mode and count.
local function holding(lock, holders, now)
  if redis.call('EXISTS', lock) == 1 then
    return 'x', 1
  end
  return shared_holders(holders, now)
end

-- The core's compatibility rule (distlock_core::Mode::fits) for a request
-- in `mode` beside `count` holds in mode `kind`: 'fits', 'waits', or
-- 'mismatch' (a permit of another count than the holders declared).
-- Exclusive fits only alone; shared beside shared only; a permit beside
-- permits of its count while fewer than that many are held.
local function fits(mode, kind, count)
  if count == 0 then
    return 'fits'
  end
  if mode == 'x' or kind == 'x' then
    return 'waits'
  end
  local mode_permit = string.sub(mode, 1, 1) == 'p'
  local kind_permit = string.sub(kind, 1, 1) == 'p'
  if mode_permit and kind_permit then
    if mode ~= kind then
      return 'mismatch'
    end
    if count < tonumber(string.sub(mode, 2)) then
      return 'fits'
    end
    return 'waits'
  end
  if mode == 's' and kind == 's' then
    return 'fits'
  end
  return 'waits'
end

-- The permit count of a permit mode ('p3' -> 3).
local function permit_count(mode)
  return tonumber(string.sub(mode, 2))
end

-- How long until the holds may change: the lock key's ttl, else the time
-- to the earliest holder's expiry; -1 when nothing is held.
local function blocked_for(lock, holders, now)
  local pttl = redis.call('PTTL', lock)
  if pttl >= 0 then
    return pttl
  end
  local first = redis.call('ZRANGE', holders, 0, 0, 'WITHSCORES')
  if first[2] then
    return math.max(0, tonumber(first[2]) - now)
  end
  return -1
end

-- Records `label` as the label of the exclusive holder `owner` (an
-- elected leader's identity): '<owner>:<label>' in k.holder, kept without
-- expiry (readers trust it only while the lock key holds that owner), and
-- announces the grant with '+' on k.channel so that leader observers read
-- again ('+' wakes no waiter). Nothing without a label.
local function record_label(k, owner, label)
  if label and label ~= '' then
    redis.call('SET', k.holder, owner .. ':' .. label)
    redis.call('PUBLISH', k.channel, '+')
  end
end

-- Grants `owner` a hold in `mode` for `ttl` ms and issues a fencing token
-- (lib/fence.lua `next_fence`, with the client's `proposal` if any;
-- returns it). 'x' sets the lock key; 's' and 'p<n>' add a member to the
-- holders set; 'u' turns the owner's reader member into the lock key (an
-- upgrade). An exclusive hold may carry a `label`. `k` names the keys:
-- lock, holders, fence (and holder, channel for a label).
local function take(k, owner, mode, ttl, now, label, proposal)
  if mode == 'x' or mode == 'u' then
    if mode == 'u' then
      redis.call('ZREM', k.holders, 's:' .. owner)
      touch(k.holders)
    end
    redis.call('SET', k.lock, owner, 'PX', ttl)
  else
    redis.call('ZADD', k.holders, now + ttl, mode .. ':' .. owner)
    touch(k.holders)
  end
  local fence = next_fence(k.fence, proposal)
  record_label(k, owner, label)
  return fence
end

-- True while `member` of the holders set is live.
local function holds_member(holders, member, now)
  local score = redis.call('ZSCORE', holders, member)
  return score and tonumber(score) >= now
end

