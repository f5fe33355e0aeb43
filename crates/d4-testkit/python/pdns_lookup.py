#!/usr/bin/env python3
"""The reads of analyzer-d4-passivedns's lookup server (bin/pdns-cof-server.py), for the
compatibility tests: the same key names, built the same way (the name and the value
lower-cased for the s:/l:/o: keys, the value lower-cased for v:).

usage: pdns_lookup.py URL  (then one JSON request per stdin line)
  {"query": NAME}    getRecord: r:<name>:<type> members, then s:/l:/o:<name>:<rdata>:<type>
  {"fquery": VALUE}  getAssociatedRecords: the names in v:<value>:<type>
  {"hash": KEY}      HGETALL KEY (the dist:* statistics)
Prints one JSON answer per request line.
"""
import json
import sys

import redis

# The types the reference serves (rrset_supported).
SUPPORTED = {"1": "A", "2": "NS", "5": "CNAME", "15": "MX", "16": "TXT", "28": "AAAA",
             "33": "SRV", "46": "RRSIG"}

r = redis.StrictRedis.from_url(sys.argv[1])


def get_seen(prefix, t1, t2):
    rec = "{}:{}:{}".format(prefix, t1.lower(), t2.lower())
    for value in SUPPORTED:
        got = r.get(rec + ":{}".format(value))
        if got is not None:
            return int(got.decode("UTF-8"))
    return None


def get_record(t):
    found = []
    for value, name in SUPPORTED.items():
        rec = "r:{}:{}".format(t, value)
        if r.scard(rec) >= 200:
            continue
        for v in r.smembers(rec):
            rdata = v.decode("UTF-8").strip()
            first = get_seen("s", t, rdata)
            if first is None:
                break
            found.append({"rrname": t, "rrtype": name, "rdata": rdata, "time_first": first,
                          "time_last": get_seen("l", t, rdata),
                          "count": get_seen("o", t, rdata)})
    return found


def get_associated(rdata):
    rec = "v:" + rdata.lower()
    names = []
    for value in SUPPORTED:
        for v in r.smembers(rec + ":{}".format(value)):
            names.append(v.decode("UTF-8"))
    return names


for line in sys.stdin:
    req = json.loads(line)
    if "query" in req:
        out = get_record(req["query"])
    elif "fquery" in req:
        out = sorted(get_associated(req["fquery"]))
    else:
        out = {k.decode(): v.decode() for k, v in r.hgetall(req["hash"]).items()}
    print(json.dumps(out), flush=True)
