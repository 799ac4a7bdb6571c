-- What every fenced script starts with: how a fencing token is read and
-- compared. Tokens travel as decimal strings: a Lua number is a double,
-- which would round tokens above 2^53, so the comparison is on the digits.

-- True when `s` is a token as the client writes it: decimal digits, no
-- leading zero, at most 20 digits (a u64).
local function is_token(s)
  return type(s) == 'string' and #s <= 20 and (s == '0' or s:match('^[1-9]%d*$') ~= nil)
end

-- True when token `a` is lower than token `b` (both as `is_token` says).
local function lower(a, b)
  if #a ~= #b then
    return #a < #b
  end
  return a < b
end

-- The token recorded at `fence_key` when it is higher than `offered` (the
-- write must be refused), else nil. Fails when the key holds anything but
-- a token, rather than guess.
local function higher_recorded(fence_key, offered)
  local recorded = redis.call('GET', fence_key)
  if not recorded then
    return nil
  end
  if not is_token(recorded) then
    error('fence key ' .. fence_key .. ' does not hold a fencing token')
  end
  if lower(offered, recorded) then
    return recorded
  end
  return nil
end

