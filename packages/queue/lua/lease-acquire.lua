--[[
  maxConnectionsPerDestination: takes a lease on a destination if a slot is free (or renews
  the caller's own). Leases expire on Redis' clock, so a dead worker's slots come back.

  Input:
    KEYS[1] the destination's lease set (members: tokens, scores: expiry ms)
    ARGV[1] the lease token
    ARGV[2] the limit
    ARGV[3] the lease time to live, ms
  Output:
    1 held, 0 destination full
]]
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ttl = tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZSCORE', KEYS[1], ARGV[1]) or redis.call('ZCARD', KEYS[1]) < tonumber(ARGV[2]) then
  redis.call('ZADD', KEYS[1], now + ttl, ARGV[1])
  redis.call('PEXPIRE', KEYS[1], ttl * 2)
  return 1
end
return 0
