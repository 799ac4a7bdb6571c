-- Releases a hold of this owner (any mode), and grants whoever may go now.
--
-- KEYS[1]  the key holding the owner token: the lock key, or a Redlock
--          permit slot
-- KEYS[2]  the release channel ({prefix name}:released)
-- KEYS[3]  the waiters' queue (fair mode; absent otherwise)
-- KEYS[4]  the waiters' entries
-- KEYS[5]  the fencing counter
-- KEYS[6]  the holders set
-- KEYS[7]  the lock key
-- KEYS[8]  the holder label (a queued leader's label is recorded there
--          when the name is handed to it)
-- ARGV[1]  the owner token
-- ARGV[2]  the holder's member of the holders set ('<mode>:<owner>'), or ''
--          for a writer
-- ARGV[3]  the stem of the clients' liveness channels ('' for the blind
--          hand-over; see lib/queue.lua)
--
-- A writer's release without a queue is compare, DEL, PUBLISH `*` (wake
-- every waiter; they race), before the libraries are even loaded.
-- With one, the owner leaves it (Redlock: a holder granted by a quorum may
-- still be queued on an instance that refused it; one instance: nothing
-- to leave), then every request the queue admits now is granted in arrival order
-- (lib/queue.lua `admit`: readers together, permits up to the count, or the
-- one writer; waiters whose process is gone are skipped), each told
-- `<owner token>:<counter>` and holding until its queue entry's deadline,
-- which its next attempt confirms with the full ttl; `*` when nobody was
-- left to grant.
--
-- Returns 1 when this owner held and now released, 0 when it did not hold
-- (an expired member is dropped but counts as not held).
local released = 0
if ARGV[2] == '' then
  if redis.call('GET', KEYS[1]) == ARGV[1] then
    redis.call('DEL', KEYS[1])
    released = 1
  end
  if redis.call('EXISTS', KEYS[3]) == 0 then
    if released == 1 then
      redis.call('PUBLISH', KEYS[2], '*')
    end
    return released
  end
end

-- @include lib/fence.lua
-- @include lib/holds.lua
-- @include lib/queue.lua

local k = {
  lock = KEYS[7], fence = KEYS[5], queue = KEYS[3], waiters = KEYS[4],
  holders = KEYS[6], channel = KEYS[2],
  holder = KEYS[8], alive = ARGV[3],
}
local owner, member = ARGV[1], ARGV[2]
local now = now_ms()
if member ~= '' then
  -- KEYS[1] holds the owner token for a Redlock permit (its slot), and
  -- for a reader upgraded meanwhile (the lock key).
  if redis.call('GET', KEYS[1]) == owner then
    redis.call('DEL', KEYS[1])
    released = 1
  end
  local score = redis.call('ZSCORE', k.holders, member)
  if score then
    redis.call('ZREM', k.holders, member)
    touch(k.holders)
    if tonumber(score) >= now then
      released = 1
    end
  end
end
if leave(k, owner) == 0 and released == 0 then
  return 0
end
wake(k, now)
return released
