-- The length of a queue's list and the push time of its oldest entry (false when empty
-- or unknown). The oldest entry is number `pushed - LLEN` (entries leave from the old
-- end: RPOP, LMOVE, LTRIM); its time is that of the last mark at or before it, else of
-- the first mark (entries put back or pushed by another program: an estimate).
-- KEYS: list, `d4rs:queue_times:<q>`, `d4rs:queue_pushed:<q>`.
local n = redis.call('LLEN', KEYS[1])
if n == 0 then return {0, false} end
local pushed = tonumber(redis.call('GET', KEYS[3]) or '0')
local m = redis.call('ZREVRANGEBYSCORE', KEYS[2], pushed - n, '-inf', 'LIMIT', 0, 1)
if #m == 0 then m = redis.call('ZRANGE', KEYS[2], 0, 0) end
if #m == 0 then return {n, false} end
return {n, tonumber(string.match(m[1], ':(%d+)$'))}
