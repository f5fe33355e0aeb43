-- Replace one server's counters of a rule, if the rule exists. KEYS: rules hash, the
-- rule's stats hash. ARGV: name, server id, counters JSON. Returns 1 when written.
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 0 then return 0 end
redis.call('HSET', KEYS[2], ARGV[2], ARGV[3])
return 1
