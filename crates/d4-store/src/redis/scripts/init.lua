-- Fresh store: default accepted types, unless d4-core already set them.
-- KEYS: initialized flag, accepted types, accepted extended types.
-- ARGV: number of types, the types, then the extended types.
if redis.call('SETNX', KEYS[1], '1') == 1 then
  if redis.call('EXISTS', KEYS[2]) == 0 then
    for i = 2, 1 + tonumber(ARGV[1]) do redis.call('SADD', KEYS[2], ARGV[i]) end
  end
  if redis.call('EXISTS', KEYS[3]) == 0 then
    for i = 2 + tonumber(ARGV[1]), #ARGV do redis.call('SADD', KEYS[3], ARGV[i]) end
  end
end
return 1
