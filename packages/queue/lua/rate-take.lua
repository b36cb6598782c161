--[[
  messageRateLimit: one sliding-window counter per key. Prunes what left the window, counts,
  and records this message if under the limit: one round trip, atomic per key.

  Input:
    KEYS[1] the counter (a sorted set of message tokens scored by time)
    ARGV[1] now, ms
    ARGV[2] the window, ms
    ARGV[3] the limit
    ARGV[4] a unique token for this message
  Output:
    the count before this message (>= limit: refused, nothing recorded)
]]
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', tonumber(ARGV[1]) - tonumber(ARGV[2]))
local n = redis.call('ZCARD', KEYS[1])
if n < tonumber(ARGV[3]) then
  redis.call('ZADD', KEYS[1], ARGV[1], ARGV[4])
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return n
