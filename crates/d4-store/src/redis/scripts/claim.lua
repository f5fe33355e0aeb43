-- Claim a lease (a session slot). KEYS: slot, server set, all leases.
-- ARGV: session id, server id, ip, now, expires, ttl ms, exempt (0/1), uuid32, type.
if ARGV[7] == '0' then
  local cur = redis.call('HMGET', KEYS[1], 'session_id', 'expires', 'server_id')
  if cur[1] then
    if cur[1] ~= ARGV[1] and tonumber(cur[2]) > tonumber(ARGV[4]) then return 0 end
    if cur[3] and cur[3] ~= ARGV[2] then
      redis.call('SREM', 'd4rs:server_sessions:' .. cur[3], KEYS[1])
    end
    if cur[1] ~= ARGV[1] then redis.call('DEL', KEYS[1]) end
  end
end
if redis.call('HEXISTS', KEYS[1], 'started') == 0 then
  redis.call('HSET', KEYS[1], 'started', ARGV[4])
end
redis.call('HSET', KEYS[1], 'uuid', ARGV[8], 'type', ARGV[9], 'session_id', ARGV[1],
  'server_id', ARGV[2], 'ip', ARGV[3], 'expires', ARGV[5])
redis.call('PEXPIRE', KEYS[1], ARGV[6])
redis.call('SADD', KEYS[2], KEYS[1])
redis.call('SADD', KEYS[3], KEYS[1])
return 1
