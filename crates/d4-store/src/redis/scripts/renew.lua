-- Renew a server's leases. KEYS: server set. ARGV: server id, expires, ttl ms.
local n = 0
for _, k in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  local owner = redis.call('HGET', k, 'server_id')
  if owner == ARGV[1] then
    redis.call('HSET', k, 'expires', ARGV[2])
    redis.call('PEXPIRE', k, ARGV[3])
    n = n + 1
  else
    redis.call('SREM', KEYS[1], k)
  end
end
return n
