--[[
  Stores an accepted message and adds its delivery job in one step: the listener's commit, one
  round trip and one script instead of a SET and BullMQ's addStandardJob (whose generic script
  cost Redis about 50 µs a message). The body is written first; a size that does not match
  removes it and adds no job. The job is what BullMQ 6.7.0's addStandardJob stores for a job
  with a custom id, no delay, no priority, no parent and no deduplication (the only jobs mailgw
  adds; see library-overrides.ts): the job hash, the "added" and "waiting" events, the id at the
  head of the wait list, and the worker marker unless the queue is paused or at its concurrency.
  (addStandardJob's id counter is only for generated ids: not touched.)

  The message's bytes never pass through Lua: a Lua string of a body costs Redis far more than
  the command that stores it (measured with Redis 7: 197 µs for a 100 KB argument against 3 µs
  for SET, most of it the Lua heap's garbage collection, paid by whichever script runs next).
  The caller stores them with plain commands in the same pipeline, just before this script:
  "set" writes the whole message to the incoming key (SET ... EX, the body's TTL), which this
  script renames to the body key; "append" appends the tail to the body key (APPEND) and writes
  the header section, when there is one, to the header key (SET ... EX).

  Input:
    KEYS[1] the body key            KEYS[2] the header key (a large message's header section)
    KEYS[3] the job hash            KEYS[4] the wait list
    KEYS[5] the queue's meta hash   KEYS[6] the active list
    KEYS[7] the events stream       KEYS[8] the marker sorted set
    KEYS[9] the incoming key (the message's bytes just written, "set" only)
    ARGV[1] "set": the incoming key holds the whole message; it becomes the body (its TTL
            lifted) and any header key is removed;
            "append": the body key holds the whole body and the header key, if any, the
            header section (their TTLs are lifted)
    ARGV[2] the size the message must have (header and body bytes)
    ARGV[3] job id       ARGV[4] job name
    ARGV[5] job data (JSON)   ARGV[6] job options (JSON, as BullMQ stores them)
    ARGV[7] timestamp (ms)
    ARGV[8] (optional) the job's initial progress (JSON): its delivery state, when recipients
            were failed at intake; absent, the worker starts from a fresh one
  Output:
    the stored size; or an error whose first word says which: MAILGW_JOB_EXISTS (the script
    writes nothing but removes the incoming key), MAILGW_BODY_SIZE (the body removed, no job)
]]
local rcall = redis.call
if rcall("EXISTS", KEYS[3]) == 1 then
  if ARGV[1] == "set" then rcall("DEL", KEYS[9]) end
  return redis.error_reply("MAILGW_JOB_EXISTS delivery job " .. ARGV[3] .. " exists already")
end

local size
if ARGV[1] == "set" then
  if rcall("EXISTS", KEYS[9]) == 1 then
    rcall("RENAME", KEYS[9], KEYS[1])
    rcall("PERSIST", KEYS[1])
    size = rcall("STRLEN", KEYS[1])
  else
    -- the SET before did not happen (refused, or the connection lost in between)
    size = -1
  end
  rcall("DEL", KEYS[2])
else
  size = rcall("STRLEN", KEYS[1]) + rcall("STRLEN", KEYS[2])
  rcall("PERSIST", KEYS[1])
  rcall("PERSIST", KEYS[2])
end
if size ~= tonumber(ARGV[2]) then
  rcall("DEL", KEYS[1], KEYS[2])
  return redis.error_reply("MAILGW_BODY_SIZE stored body of " .. ARGV[3] .. " has " .. size .. " bytes, expected " .. ARGV[2])
end

-- One read of the queue's meta: the events' cap, paused, concurrency.
local meta = rcall("HMGET", KEYS[5], "opts.maxLenEvents", "paused", "concurrency")
local maxEvents = meta[1] or 10000
rcall("HMSET", KEYS[3], "name", ARGV[4], "data", ARGV[5], "opts", ARGV[6],
  "timestamp", ARGV[7], "delay", 0, "priority", 0)
if ARGV[8] then rcall("HSET", KEYS[3], "progress", ARGV[8]) end
rcall("XADD", KEYS[7], "*", "event", "added", "jobId", ARGV[3], "name", ARGV[4])
local held = false
if meta[2] then
  held = true
elseif meta[3] then
  held = rcall("LLEN", KEYS[6]) >= tonumber(meta[3])
end
rcall("LPUSH", KEYS[4], ARGV[3])
if not held then rcall("ZADD", KEYS[8], 0, "0") end
rcall("XADD", KEYS[7], "MAXLEN", "~", maxEvents, "*", "event", "waiting", "jobId", ARGV[3])
return size
