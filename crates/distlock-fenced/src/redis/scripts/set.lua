-- Sets a value if the offered token is not lower than the recorded one,
-- and records the token.
--
-- KEYS[1]  the resource's fence key (the highest token recorded)
-- KEYS[2]  the resource's value key
-- ARGV[1]  the offered token (decimal)
-- ARGV[2]  the value
--
-- Returns {1, offered} when written, {0, recorded} when refused (nothing
-- changed).

local recorded = higher_recorded(KEYS[1], ARGV[1])
if recorded then
  return {0, recorded}
end
redis.call('SET', KEYS[2], ARGV[2])
redis.call('SET', KEYS[1], ARGV[1])
return {1, ARGV[1]}
