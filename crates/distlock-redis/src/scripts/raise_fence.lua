-- Raises the fencing counter to a token, but only while this owner still
-- holds (Redlock writes the token it chose back to a majority).
--
-- KEYS[1]  the key holding the owner token: the lock key, or the permit
--          slot granted
-- KEYS[2]  the fencing counter
-- KEYS[3]  the holders set
-- ARGV[1]  the owner token
-- ARGV[2]  the fencing token to record
-- ARGV[3]  a reader's member of the holders set ('s:<owner>'), or '' when
--          KEYS[1] holds the owner token
--
-- Returns 0 when this owner does not hold (nothing written); 1 when the
-- counter was below the token and now is the token (this owner moved it
-- there: no other grant can have moved it to the same value, so tokens of
-- readers granted together stay distinct); 2 when the counter already was
-- at or above the token (nothing written).
if ARGV[3] == '' then
  if redis.call('GET', KEYS[1]) ~= ARGV[1] then
    return 0
  end
else
  local t = redis.call('TIME')
  local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  local score = redis.call('ZSCORE', KEYS[3], ARGV[3])
  if not score or tonumber(score) < now then
    return 0
  end
end
local current = tonumber(redis.call('GET', KEYS[2]) or '0')
local wanted = tonumber(ARGV[2])
if current < wanted then
  redis.call('SET', KEYS[2], ARGV[2])
  return 1
end
return 2
