--[[
  Records the final delivery state of a message and deletes its body, atomically: a crash can
  never leave the job pending with its body gone (which would bounce mail already delivered).
  A job removed meanwhile is not recreated as a stub.

  Input:
    KEYS[1] the job hash (BullMQ: <prefix>:<queue>:<queueId>)
    KEYS[2] the body key
    KEYS[3] the header key (a large message's header section, stored apart)
    ARGV[1] the final delivery state, JSON, written where BullMQ keeps a job's progress
  Output:
    the number of keys deleted (0 to 2)
]]
if redis.call('EXISTS', KEYS[1]) == 1 then redis.call('HSET', KEYS[1], 'progress', ARGV[1]) end
return redis.call('DEL', KEYS[2], KEYS[3])
