--[[
  Replaces a string value only if it is still the one the caller read (or still absent): the
  TLS-RPT report claims (take a lease, record the outcome) are changed this way, so of several
  workers exactly one wins each step; the decision itself is made by the caller.

  Input:
    KEYS[1] the key
    ARGV[1] the value expected now ("" for an absent key)
    ARGV[2] the new value
    ARGV[3] its time to live, ms
  Output:
    1 replaced, 0 the value had changed (nothing written)
]]
local cur = redis.call('GET', KEYS[1])
if cur == false then cur = '' end
if cur ~= ARGV[1] then
  return 0
end
redis.call('SET', KEYS[1], ARGV[2], 'PX', tonumber(ARGV[3]))
return 1
