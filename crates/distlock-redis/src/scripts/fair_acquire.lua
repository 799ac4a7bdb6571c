-- Takes the lock for the oldest live waiter only (single instance, fair
-- mode), keeping the waiters' queue.
--
-- KEYS[1]  the lock key
-- KEYS[2]  the fencing counter
-- KEYS[3]  the waiters' queue: a sorted set of owner tokens scored by arrival
--          (server time in microseconds)
-- KEYS[4]  the waiters' entries: a hash owner token -> "deadline_ms:ttl_ms"
--          (when the entry expires, server time; the ttl it wants the lock for)
-- ARGV[1]  the owner token
-- ARGV[2]  the lock ttl in milliseconds
-- ARGV[3]  '1' when the caller will wait (join or refresh the queue), '0'
--          for a single try
-- ARGV[4]  how long a queue entry lives without being refreshed (ms)
--
-- Without a queue (the uncontended case) this is SET NX PX + INCR. With
-- one, queue entries whose deadline passed (a waiter that vanished) are
-- dropped from its head first.
--
-- Returns {1, counter} when the lock was taken (the caller left the queue;
-- `counter` is the fencing counter after INCR).
-- Returns {0, ms, counter} when not: `ms` is the holder's remaining ttl, or,
-- when the lock is free but an older waiter is first in line, how long that
-- waiter's queue entry still lives (-1 when unknown); `counter` is the
-- fencing counter now (a later hand-over to us carries a higher one).
if redis.call('EXISTS', KEYS[3]) == 0 then
  if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
    return {1, redis.call('INCR', KEYS[2])}
  end
end

local t = redis.call('TIME')
local now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local now_us = tonumber(t[1]) * 1000000 + tonumber(t[2])

local head = nil
local head_deadline = 0
while true do
  head = redis.call('ZRANGE', KEYS[3], 0, 0)[1]
  if not head then break end
  head_deadline = tonumber(string.match(redis.call('HGET', KEYS[4], head) or '0:0', '^(%d+):') or '0')
  if head_deadline > now_ms then break end
  redis.call('ZREM', KEYS[3], head)
  redis.call('HDEL', KEYS[4], head)
end

local holder = redis.call('GET', KEYS[1])
-- Ours already (a release handed it to us, or a retry after a lost reply),
-- or free and we are first in line.
if holder == ARGV[1] or (not holder and (not head or head == ARGV[1])) then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  redis.call('ZREM', KEYS[3], ARGV[1])
  redis.call('HDEL', KEYS[4], ARGV[1])
  return {1, redis.call('INCR', KEYS[2])}
end

if ARGV[3] == '1' then
  local entry_ttl = tonumber(ARGV[4])
  redis.call('ZADD', KEYS[3], 'NX', now_us, ARGV[1])
  redis.call('HSET', KEYS[4], ARGV[1], (now_ms + entry_ttl) .. ':' .. ARGV[2])
  redis.call('PEXPIRE', KEYS[3], entry_ttl * 2)
  redis.call('PEXPIRE', KEYS[4], entry_ttl * 2)
end

local counter = tonumber(redis.call('GET', KEYS[2]) or '0')
if holder then
  return {0, redis.call('PTTL', KEYS[1]), counter}
end
if head and head ~= ARGV[1] then
  return {0, head_deadline - now_ms, counter}
end
return {0, -1, counter}
