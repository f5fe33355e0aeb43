-- Acknowledge entries leased to a consumer: each id still in its id hash is dropped from
-- the hash and its entry from the processing list (LREM from the oldest end).
-- KEYS: the consumer's processing list, its id hash. ARGV: the ids.
-- Returns how many were acknowledged.
local n = 0
for i = 1, #ARGV do
  local v = redis.call('HGET', KEYS[2], ARGV[i])
  if v then
    redis.call('HDEL', KEYS[2], ARGV[i])
    redis.call('LREM', KEYS[1], -1, v)
    n = n + 1
  end
end
return n
