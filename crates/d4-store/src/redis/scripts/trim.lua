-- Trim a list to max; returns how many were dropped. KEYS: list. ARGV: max.
local n = redis.call('LLEN', KEYS[1])
local over = n - tonumber(ARGV[1])
if over > 0 then redis.call('LTRIM', KEYS[1], 0, tonumber(ARGV[1]) - 1) return over end
return 0
