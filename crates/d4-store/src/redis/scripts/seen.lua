-- Last-seen updates. ARGV: groups of 7 (uuid32, ip, type, typekey, time, stamp,
-- connections): the IP history (`list_uuid_ip`) gets one entry per connection, not one
-- per update.
local function setmin(key, field, v)
  local cur = redis.call('HGET', key, field)
  if (not cur) or tonumber(cur) > v then redis.call('HSET', key, field, v) end
end
local function setmax(key, field, v)
  local cur = redis.call('HGET', key, field)
  if (not cur) or tonumber(cur) < v then redis.call('HSET', key, field, v) end
end
for i = 1, #ARGV, 7 do
  local u, ip, t, tk, time, stamp = ARGV[i], ARGV[i+1], ARGV[i+2], ARGV[i+3], tonumber(ARGV[i+4]), ARGV[i+5]
  local conns = tonumber(ARGV[i+6])
  local mk = 'metadata_uuid:' .. u
  setmin(mk, 'first_seen', time)
  setmax(mk, 'last_seen', time)
  local tm = 'metadata_type_by_uuid:' .. u .. ':' .. t
  setmin(tm, 'first_seen', time)
  setmax(tm, 'last_seen', time)
  local ts = 'd4rs:type_seen:' .. u
  setmin(ts, tk .. '/first', time)
  setmax(ts, tk .. '/last', time)
  redis.call('SADD', 'all_types_by_uuid:' .. u, t)
  local colon = string.find(tk, ':', 1, true)
  if colon then
    -- d4-core's type-2 worker: the sensor's extended types and their first/last seen.
    local ext = string.sub(tk, colon + 1)
    redis.call('SADD', 'all_extended_types_by_uuid:' .. u, ext)
    local em = 'metadata_extended_type_by_uuid:' .. u .. ':' .. ext
    setmin(em, 'first_seen', time)
    setmax(em, 'last_seen', time)
  end
  redis.call('SADD', 'd4rs:sensors', u)
  local zk = 'd4rs:sensor_ips:' .. u
  redis.call('ZADD', zk, 'GT', time, ip)
  redis.call('ZREMRANGEBYRANK', zk, 0, -17)
  if conns > 0 then
    local lk = 'list_uuid_ip:' .. u
    for _ = 1, math.min(conns, 16) do redis.call('LPUSH', lk, ip .. '-' .. stamp) end
    redis.call('LTRIM', lk, 0, 15)
  end
end
return 1
