#!/usr/bin/env python3
"""A d4-core style analyzer, as analyzer-d4-passivedns reads its queue: RPOP from
`analyzer:<type or ext>:<queue uuid>` until the list is empty. Used by the Redis tests
(d4_testkit::d4core_analyzer) to prove that d4-core analyzers work unchanged against d4-rs's Redis.

usage: d4_analyzer.py REDIS_URL QUEUE_TYPE QUEUE_UUID [MAX]
Prints each entry popped, hex-encoded, one per line (so binary lines compare exactly).
"""
import sys

import redis


def main():
    url, qtype, quuid = sys.argv[1], sys.argv[2], sys.argv[3]
    limit = int(sys.argv[4]) if len(sys.argv) > 4 else 100000
    r = redis.Redis.from_url(url)
    key = "analyzer:{}:{}".format(qtype, quuid)
    for _ in range(limit):
        d4_data = r.rpop(key)
        if d4_data is None:
            break
        print(d4_data.hex())


if __name__ == "__main__":
    main()
