-- Release a lease. KEYS: slot, all leases. ARGV: session id.
local cur = redis.call('HMGET', KEYS[1], 'session_id', 'server_id')
if cur[1] == ARGV[1] then
  redis.call('DEL', KEYS[1])
  redis.call('SREM', KEYS[2], KEYS[1])
  if cur[2] then redis.call('SREM', 'd4rs:server_sessions:' .. cur[2], KEYS[1]) end
  return 1
end
return 0
