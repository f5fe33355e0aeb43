-- Lease entries to a consumer (the reliable-queue pattern): entries move with LMOVE from
-- the queue's list to the consumer's processing list, and get an id (a per-queue counter)
-- kept in the consumer's id hash (id -> entry) until they are acknowledged.
-- First, the processing lists of other consumers whose lease expired go back to the
-- consuming end of the queue's list (oldest last), so they are delivered again first.
-- Then this consumer's unacknowledged entries are returned again (oldest first), then
-- fresh entries (oldest first), up to max in all.
-- KEYS: queue list, consumers hash (consumer -> lease expiry), id counter, this consumer's
-- processing list, this consumer's id hash.
-- ARGV: consumer, max, now, expiry, processing list prefix, id hash prefix.
-- Returns id, entry, id, entry...
local me, max, now = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local holders = redis.call('HGETALL', KEYS[2])
for i = 1, #holders, 2 do
  local c, exp = holders[i], tonumber(holders[i + 1])
  if c ~= me and exp <= now then
    local p = ARGV[5] .. c
    while redis.call('LMOVE', p, KEYS[1], 'LEFT', 'RIGHT') do end
    redis.call('DEL', ARGV[6] .. c)
    redis.call('HDEL', KEYS[2], c)
  end
end
local out = {}
local n = 0
local held = redis.call('HGETALL', KEYS[5])
if #held > 0 then
  local ids, vals = {}, {}
  for i = 1, #held, 2 do
    ids[#ids + 1] = held[i]
    vals[held[i]] = held[i + 1]
  end
  table.sort(ids, function(a, b) return tonumber(a) < tonumber(b) end)
  for _, id in ipairs(ids) do
    if n >= max then break end
    out[#out + 1] = id
    out[#out + 1] = vals[id]
    n = n + 1
  end
end
while n < max do
  local v = redis.call('LMOVE', KEYS[1], KEYS[4], 'RIGHT', 'LEFT')
  if not v then break end
  local id = string.format('%d', redis.call('INCR', KEYS[3]))
  redis.call('HSET', KEYS[5], id, v)
  out[#out + 1] = id
  out[#out + 1] = v
  n = n + 1
end
if redis.call('HLEN', KEYS[5]) > 0 then
  redis.call('HSET', KEYS[2], me, ARGV[4])
else
  redis.call('HDEL', KEYS[2], me)
end
return out
