--[[
  Stores an accepted message and adds its delivery job in one step: the listener's commit, one
  round trip and one script instead of a SET and BullMQ's addStandardJob (whose generic script
  cost Redis about 50 µs a message). The body is written first; a size that does not match
  removes it and adds no job. The job is what BullMQ 6.7.0's addStandardJob stores for a job
  with a custom id, no delay, no priority, no parent and no deduplication (the only jobs mailgw
  adds; see library-overrides.ts): the job hash, the "added" and "waiting" events, the id at the
  head of the wait list, and the worker marker unless the queue is paused or at its concurrency.
  (addStandardJob's id counter is only for generated ids: not touched.)

  Input:
    KEYS[1] the body key            KEYS[2] the header key (a large message's header section)
    KEYS[3] the job hash            KEYS[4] the wait list
    KEYS[5] the queue's meta hash   KEYS[6] the active list
    KEYS[7] the events stream       KEYS[8] the marker sorted set
    ARGV[1] "set": ARGV[2] is the whole stored message and any header key is removed;
            "append": ARGV[2] is the tail of a body already partly appended (its TTL is
            lifted) and ARGV[3], when not empty, the header section, stored apart
    ARGV[2] bytes        ARGV[3] header section or ""
    ARGV[4] the size the message must have (header and body bytes)
    ARGV[5] job id       ARGV[6] job name
    ARGV[7] job data (JSON)   ARGV[8] job options (JSON, as BullMQ stores them)
    ARGV[9] timestamp (ms)
  Output:
    the stored size; or an error whose first word says which: MAILGW_JOB_EXISTS (nothing
    written), MAILGW_BODY_SIZE (the body removed, no job)
]]
local rcall = redis.call
if rcall("EXISTS", KEYS[3]) == 1 then
  return redis.error_reply("MAILGW_JOB_EXISTS delivery job " .. ARGV[5] .. " exists already")
end

local size
if ARGV[1] == "set" then
  rcall("SET", KEYS[1], ARGV[2])
  rcall("DEL", KEYS[2])
  size = #ARGV[2]
else
  size = rcall("APPEND", KEYS[1], ARGV[2])
  rcall("PERSIST", KEYS[1])
  if ARGV[3] ~= "" then
    rcall("SET", KEYS[2], ARGV[3])
    size = size + #ARGV[3]
  end
end
if size ~= tonumber(ARGV[4]) then
  rcall("DEL", KEYS[1], KEYS[2])
  return redis.error_reply("MAILGW_BODY_SIZE stored body of " .. ARGV[5] .. " has " .. size .. " bytes, expected " .. ARGV[4])
end

-- One read of the queue's meta: the events' cap, paused, concurrency.
local meta = rcall("HMGET", KEYS[5], "opts.maxLenEvents", "paused", "concurrency")
local maxEvents = meta[1] or 10000
rcall("HMSET", KEYS[3], "name", ARGV[6], "data", ARGV[7], "opts", ARGV[8],
  "timestamp", ARGV[9], "delay", 0, "priority", 0)
rcall("XADD", KEYS[7], "*", "event", "added", "jobId", ARGV[5], "name", ARGV[6])
local held = false
if meta[2] then
  held = true
elseif meta[3] then
  held = rcall("LLEN", KEYS[6]) >= tonumber(meta[3])
end
rcall("LPUSH", KEYS[4], ARGV[5])
if not held then rcall("ZADD", KEYS[8], 0, "0") end
rcall("XADD", KEYS[7], "MAXLEN", "~", maxEvents, "*", "event", "waiting", "jobId", ARGV[5])
return size
