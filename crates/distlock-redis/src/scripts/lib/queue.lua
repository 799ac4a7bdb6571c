-- Library included (after lib/holds.lua) by the scripts that serve the
-- waiters' queue (single instance, fair mode).
--
-- The queue: a sorted set of owner tokens by arrival (server time in µs;
-- an upgrade waits at 0, first), and a hash owner token ->
-- 'deadline_ms:ttl_ms:mode' (when the entry dies unless refreshed, the ttl
-- the waiter wants, its mode; an entry without a mode is exclusive).
-- `k` names the keys: lock, holders, fence, queue, waiters, channel.

-- One queue entry: its deadline, ttl and mode (0, 0, 'x' when unreadable).
local function entry(waiters, owner)
  local e = redis.call('HGET', waiters, owner) or ''
  local deadline, ttl, mode = string.match(e, '^(%d+):(%d+):?(%w*)$')
  if not deadline then
    return 0, 0, 'x'
  end
  if mode == '' then
    mode = 'x'
  end
  return tonumber(deadline), tonumber(ttl), mode
end

-- Removes `owner`'s entry; 1 when it was queued.
local function leave(k, owner)
  local was = redis.call('ZREM', k.queue, owner)
  redis.call('HDEL', k.waiters, owner)
  return was
end

-- Adds or refreshes `owner`'s entry, living `life` ms from `now`.
local function enqueue(k, owner, score, life, ttl, mode, now)
  redis.call('ZADD', k.queue, 'NX', score, owner)
  redis.call('HSET', k.waiters, owner, (now + life) .. ':' .. ttl .. ':' .. mode)
  redis.call('PEXPIRE', k.queue, life * 2)
  redis.call('PEXPIRE', k.waiters, life * 2)
end

-- The permit count declared by a live queued permit request of another
-- count than `mode`'s, if any.
local function queued_mismatch(k, mode, now)
  for _, e in ipairs(redis.call('HVALS', k.waiters)) do
    local deadline, _, m = string.match(e, '^(%d+):(%d+):?(%w*)$')
    if deadline and tonumber(deadline) > now and string.sub(m, 1, 1) == 'p' and m ~= mode then
      return permit_count(m)
    end
  end
  return nil
end

-- The core's Mode::admitted on the queue: grants, in arrival order, every
-- queued request that fits beside the holders and the requests granted
-- before it, and stops at the first that must wait (nobody overtakes it).
-- Entries whose waiter vanished (deadline passed) are dropped. An upgrade
-- goes once its own reader hold is the only hold, and is dropped when that
-- hold is gone. Each request granted leaves the queue and is told
-- `<owner>:<token>` on the channel (it owns the hold without a round trip).
-- Returns the token granted to `me` (nil if none) and how many were granted.
local function admit(k, now, me)
  local kind, count = holding(k.lock, k.holders, now)
  local mine, granted = nil, 0
  while true do
    local head = redis.call('ZRANGE', k.queue, 0, 0)[1]
    if not head then
      break
    end
    local deadline, ttl, mode = entry(k.waiters, head)
    local go = 'stop'
    if deadline <= now or ttl <= 0 then
      go = 'drop'
    elseif mode == 'u' then
      if not redis.call('ZSCORE', k.holders, 's:' .. head) then
        go = 'drop'
      elseif kind == 's' and count == 1 then
        go = 'take'
      end
    elseif fits(mode, kind, count) == 'fits' then
      go = 'take'
    end
    if go == 'stop' then
      break
    end
    leave(k, head)
    if go == 'take' then
      local fence = take(k, head, mode, ttl, now)
      redis.call('PUBLISH', k.channel, head .. ':' .. fence)
      granted = granted + 1
      if head == me then
        mine = fence
      end
      if mode == 'u' then
        kind, count = 'x', 1
      else
        kind, count = mode, count + 1
      end
    end
  end
  return mine, granted
end

-- After a hold ended or a waiter left: grants whoever may go now; when
-- nobody was granted and nobody queues, publishes `*` (wake every waiter).
local function wake(k, now)
  if redis.call('EXISTS', k.queue) == 1 then
    local _, granted = admit(k, now, nil)
    if granted > 0 or redis.call('EXISTS', k.queue) == 1 then
      return
    end
  end
  redis.call('PUBLISH', k.channel, '*')
end

