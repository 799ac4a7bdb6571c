-- Library included (after lib/holds.lua) by the scripts that serve the
-- waiters' queue (fair mode: one instance, or each Redlock instance).
--
-- The queue: a sorted set of owner tokens by arrival (one instance: server
-- time in µs; an upgrade waits at 0, first. Redlock: the waiter's ticket,
-- its client's clock in µs when its acquire began, the same on every
-- instance; ties go by owner token, so every instance orders the same
-- waiters the same way, and a waiter that (re)joins an instance late
-- takes the same place there), and a hash owner token ->
-- 'deadline_ms:ttl_ms:mode:client[:label]' (when the entry dies unless
-- refreshed, the ttl the waiter wants, its mode, the id of the waiter's
-- client, and the holder label an exclusive request carries; an entry
-- without a mode is exclusive).
--
-- Waiter liveness: a live waiter refreshes its entry every third of the
-- waiter-liveness window (the entry's life); a waiter whose client's
-- process died is seen at once: every client subscribes its liveness
-- channel '<stem><client id>' on its pub/sub connection, which the server
-- closes when the process dies (PUBSUB NUMSUB then counts 0). A waiter
-- that vanished is dropped, and a hold handed to a waiter lives only until
-- its entry's deadline: the waiter's own next attempt confirms it with the
-- full ttl. So a dead waiter never gets a full ttl.
-- `k` names the keys: lock, holders, fence, queue, waiters, channel,
-- holder, and `k.alive` the liveness channels' stem ('' for the blind
-- hand-over: no liveness check, the full ttl at once).

-- A queue entry's text read: its deadline, ttl, mode, label and client id
-- (0, 0, 'x', '', '' when unreadable).
local function parse_entry(e)
  local deadline, ttl, mode, client, label =
    string.match(e or '', '^(%d+):(%d+):?(%w*):?(%x*):?(.*)$')
  if not deadline then
    return 0, 0, 'x', '', ''
  end
  if mode == '' then
    mode = 'x'
  end
  return tonumber(deadline), tonumber(ttl), mode, label, client
end

-- `owner`'s queue entry (see parse_entry).
local function entry(waiters, owner)
  return parse_entry(redis.call('HGET', waiters, owner))
end

-- Removes `owner`'s entry; 1 when it was queued.
local function leave(k, owner)
  local was = redis.call('ZREM', k.queue, owner)
  redis.call('HDEL', k.waiters, owner)
  return was
end

-- Adds or refreshes `owner`'s entry, living `life` ms from `now`;
-- `client` is the id of the waiter's client ('' while its liveness channel
-- is not subscribed).
local function enqueue(k, owner, score, life, ttl, mode, now, label, client)
  local e = (now + life) .. ':' .. ttl .. ':' .. mode .. ':' .. (client or '')
  if label and label ~= '' then
    e = e .. ':' .. label
  end
  redis.call('ZADD', k.queue, 'NX', score, owner)
  redis.call('HSET', k.waiters, owner, e)
  redis.call('PEXPIRE', k.queue, life * 2)
  redis.call('PEXPIRE', k.waiters, life * 2)
end

-- The permit count declared by a live queued permit request of another
-- count than `mode`'s, if any.
local function queued_mismatch(k, mode, now)
  for _, e in ipairs(redis.call('HVALS', k.waiters)) do
    local deadline, _, m = parse_entry(e)
    if deadline > now and string.sub(m, 1, 1) == 'p' and m ~= mode then
      return permit_count(m)
    end
  end
  return nil
end

-- True unless the waiter's client is known to be gone: its liveness
-- channel has no subscriber. A waiter without a client id (its client was
-- not subscribed yet) is judged by its deadline alone.
local function connected(k, client)
  if k.alive == '' or client == '' then
    return true
  end
  return redis.call('PUBSUB', 'NUMSUB', k.alive .. client)[2] > 0
end

-- How long a hold handed to the queued `owner` (not the caller) lives
-- until the waiter confirms it: until its entry's deadline (at most its
-- ttl). An upgrade keeps at least what its reader hold had left, which
-- held the name anyway. The blind hand-over gives the full ttl.
local function hand_over_life(k, owner, mode, ttl, deadline, now)
  if k.alive == '' then
    return ttl
  end
  local life = deadline - now
  if mode == 'u' then
    local reader = redis.call('ZSCORE', k.holders, 's:' .. owner)
    life = math.max(life, tonumber(reader or now) - now)
  end
  return math.max(1, math.min(ttl, life))
end

-- The core's Mode::admitted on the queue: grants, in arrival order, every
-- queued request that fits beside the holders and the requests granted
-- before it, and stops at the first that must wait (nobody overtakes it).
-- Entries whose waiter vanished (deadline passed, or its client's process
-- gone) are dropped. An upgrade goes once its own reader hold is the only
-- hold, and is dropped when that hold is gone. Each request granted leaves
-- the queue and is told `<owner>:<token>` on the channel; the caller `me`
-- gets its full ttl (and its token by the `proposal` it made, Redlock),
-- any other waiter a hold living until its entry's deadline, which its
-- next attempt confirms.
-- Returns the token granted to `me` (nil if none) and how many were granted.
local function admit(k, now, me, proposal)
  local kind, count = holding(k.lock, k.holders, now)
  local mine, granted = nil, 0
  while true do
    local head = redis.call('ZRANGE', k.queue, 0, 0)[1]
    if not head then
      break
    end
    local deadline, ttl, mode, label, client = entry(k.waiters, head)
    local go = 'stop'
    if deadline <= now or ttl <= 0 or (head ~= me and not connected(k, client)) then
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
    if go == 'take' then
      local life, proposed = ttl, proposal
      if head ~= me then
        life = hand_over_life(k, head, mode, ttl, deadline, now)
        proposed = nil
      end
      leave(k, head)
      local fence = take(k, head, mode, life, now, label, proposed)
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
    else
      leave(k, head)
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

