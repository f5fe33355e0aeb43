-- A batch of pushes in one step: each target is one queue of one push, its entries a
-- range of the entry arguments; LPUSH then LTRIM to max (keeping exactly max), counting
-- what was trimmed. With a key, at most once per (producer, seq): the producer's marker
-- (`d4rs:journal:<uuid>`, the last KEY) holds the last seq as 20 decimal digits, compared
-- as strings (Lua numbers are doubles); nil is returned when seq was pushed already.
-- Push times go to side keys, never into the entries (d4-core's analyzers read the list):
-- `d4rs:queue_pushed:<q>` counts the entries pushed, `d4rs:queue_times:<q>` gets a mark
-- (score: the count before this push; member `<count>:<now>`) unless its newest mark is
-- of the same second; marks older than the one covering the oldest entry are dropped.
--
-- KEYS: nt lists, nt `d4rs:queue_times:<q>`, nt `d4rs:queue_pushed:<q>` [, nt
-- `analyzer:<q>` hashes, nt `d4rs:queue:<q>` hashes when ARGV[2] is '1'] [, the
-- producer's marker when ARGV[4] is '1'].
-- ARGV: nt, meta flag, now, keyed flag, seq (20 digits, or empty), then per target: max
-- size, offset of its first entry, entry count; then the entries.
-- Returns per target how many entries were trimmed.
local nt = tonumber(ARGV[1])
local meta = ARGV[2] == '1'
if ARGV[4] == '1' then
  local mark = KEYS[#KEYS]
  local last = redis.call('GET', mark)
  if last and last >= ARGV[5] then return false end
  redis.call('SET', mark, ARGV[5])
end
local now = ARGV[3]
local base = 6 + 3 * nt
local out = {}
for i = 1, nt do
  local max = tonumber(ARGV[3 + 3 * i])
  local first = base + tonumber(ARGV[4 + 3 * i])
  local count = tonumber(ARGV[5 + 3 * i])
  local last = first + count - 1
  local n = redis.call('LLEN', KEYS[i])
  local j = first
  while j <= last do
    local e = math.min(j + 999, last)
    n = redis.call('LPUSH', KEYS[i], unpack(ARGV, j, e))
    j = e + 1
  end
  local over = n - max
  if over > 0 then redis.call('LTRIM', KEYS[i], 0, max - 1) else over = 0 end
  local times = KEYS[nt + i]
  local pushed = redis.call('INCRBY', KEYS[2 * nt + i], count)
  local before = pushed - count
  local newest = redis.call('ZRANGE', times, -1, -1)
  if #newest == 0 or string.match(newest[1], ':(%d+)$') ~= now then
    redis.call('ZADD', times, before, before .. ':' .. now)
  end
  local head = pushed - math.min(n, max)
  local cover = redis.call('ZREVRANGEBYSCORE', times, head, '-inf', 'WITHSCORES', 'LIMIT', 0, 1)
  if #cover == 2 then redis.call('ZREMRANGEBYSCORE', times, '-inf', '(' .. cover[2]) end
  if meta then
    redis.call('HSET', KEYS[3 * nt + i], 'last_updated', now)
    if over > 0 then redis.call('HINCRBY', KEYS[4 * nt + i], 'trimmed', over) end
  end
  out[i] = over
end
return out
