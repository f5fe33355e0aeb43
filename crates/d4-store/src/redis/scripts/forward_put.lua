-- Store a forwarding rule. KEYS: rules hash, the rule's stats hash.
-- ARGV: name, rule JSON, "create" (only if absent; its stale counters are dropped) or
-- "update" (only if present). Returns 1 when written, 0 otherwise.
local exists = redis.call('HEXISTS', KEYS[1], ARGV[1]) == 1
if ARGV[3] == 'create' then
  if exists then return 0 end
  redis.call('DEL', KEYS[2])
elseif not exists then
  return 0
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
return 1
