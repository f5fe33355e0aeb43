-- Register a sensor in one step: refused (0) when it is already registered or pending,
-- else its settings written and it joins the pending (or registered) set (1).
-- KEYS: registered set, pending set, `metadata_uuid:<s>`, `d4rs:sensor:<s>`, `d4rs:sensors`.
-- ARGV: sensor id (32 hex), key flag, key, mail flag, mail, description flag,
-- description, third party (0/1), registered at, approve (0/1).
local s = ARGV[1]
if redis.call('SISMEMBER', KEYS[1], s) == 1 or redis.call('SISMEMBER', KEYS[2], s) == 1 then
  return 0
end
local md = KEYS[3]
if ARGV[2] == '1' then redis.call('HSET', md, 'hmac_key', ARGV[3]) else redis.call('HDEL', md, 'hmac_key') end
if ARGV[4] == '1' then redis.call('HSET', md, 'user_mail', ARGV[5]) end
if ARGV[6] == '1' then redis.call('HSET', md, 'description', ARGV[7]) end
if ARGV[8] == '1' then redis.call('HSET', md, 'third_party', 'True') else redis.call('HDEL', md, 'third_party') end
redis.call('HSET', KEYS[4], 'registered_at', ARGV[9])
redis.call('SADD', KEYS[5], s)
if ARGV[10] == '1' then redis.call('SADD', KEYS[1], s) else redis.call('SADD', KEYS[2], s) end
return 1
