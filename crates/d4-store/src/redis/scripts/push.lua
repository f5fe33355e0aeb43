-- A batch of pushes in one step: each target is one queue of one push, its entries a
-- range of the entry arguments; LPUSH then LTRIM to max (keeping exactly max), counting
-- what was trimmed. With a key, at most once per (producer, seq): the producer's marker
-- (`d4rs:journal:<uuid>`, the last KEY) holds the last seq as 20 decimal digits, compared
-- as strings (Lua numbers are doubles); nil is returned when seq was pushed already.
--
-- KEYS: nt lists [, nt `analyzer:<q>` hashes, nt `d4rs:queue:<q>` hashes when ARGV[2]
-- is '1'] [, the producer's marker when ARGV[4] is '1'].
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
local base = 6 + 3 * nt
local out = {}
for i = 1, nt do
  local max = tonumber(ARGV[3 + 3 * i])
  local first = base + tonumber(ARGV[4 + 3 * i])
  local last = first + tonumber(ARGV[5 + 3 * i]) - 1
  local n = redis.call('LLEN', KEYS[i])
  local j = first
  while j <= last do
    local e = math.min(j + 999, last)
    n = redis.call('LPUSH', KEYS[i], unpack(ARGV, j, e))
    j = e + 1
  end
  local over = n - max
  if over > 0 then redis.call('LTRIM', KEYS[i], 0, max - 1) else over = 0 end
  if meta then
    redis.call('HSET', KEYS[nt + i], 'last_updated', ARGV[3])
    if over > 0 then redis.call('HINCRBY', KEYS[2 * nt + i], 'trimmed', over) end
  end
  out[i] = over
end
return out
