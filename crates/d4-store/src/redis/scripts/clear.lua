-- Drop every lease of a server. KEYS: server set, all leases. ARGV: server id.
local n = 0
for _, k in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  if redis.call('HGET', k, 'server_id') == ARGV[1] then
    redis.call('DEL', k)
    n = n + 1
  end
  redis.call('SREM', KEYS[2], k)
end
redis.call('DEL', KEYS[1])
return n
