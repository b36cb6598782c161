--[[
  Renews the leases a live worker still holds on one destination.

  Input:
    KEYS[1] the destination's lease set
    ARGV[1] the lease time to live, ms
    ARGV[2..] the tokens to renew
  Output:
    how many of them were still held
]]
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ttl = tonumber(ARGV[1])
local n = 0
for i = 2, #ARGV do
  n = n + redis.call('ZADD', KEYS[1], 'XX', 'CH', now + ttl, ARGV[i])
end
redis.call('PEXPIRE', KEYS[1], ttl * 2)
return n
