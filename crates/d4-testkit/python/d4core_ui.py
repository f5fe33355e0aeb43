#!/usr/bin/env python3
"""What d4-core's Flask UI (server/Flask_server.py) does in Redis, for the compatibility
tests: the "kick" button and the sensor status page's list of types.

usage:
  d4core_ui.py kick URL SENSOR_UUID     SADD server:sensor_to_kick <uuid> (stream db)
  d4core_ui.py kick-state URL SENSOR_UUID   JSON: the pending kicks, whether the sensor's
                                        temp_blacklist_uuid key (30 s block) exists
  d4core_ui.py types URL SENSOR_UUID    the types the sensors page shows, as JSON:
                                        all_types_by_uuid, then, when 254 is among them,
                                        all_extended_types_by_uuid (metadata db)
"""
import json
import sys

import redis


def main():
    what, url, sensor = sys.argv[1], sys.argv[2], sys.argv[3]
    r = redis.Redis.from_url(url, decode_responses=True)
    if what == "kick":
        r.sadd("server:sensor_to_kick", sensor)
    elif what == "kick-state":
        print(json.dumps({"to_kick": sorted(r.smembers("server:sensor_to_kick")),
                          "temp_blacklist_uuid": bool(r.exists(
                              "temp_blacklist_uuid:{}".format(sensor)))}))
    elif what == "types":
        types = sorted(int(t) for t in r.smembers("all_types_by_uuid:{}".format(sensor)))
        shown = list(types)
        if 254 in types:
            extended = sorted(r.smembers("all_extended_types_by_uuid:{}".format(sensor)))
            shown.extend(extended)
        print(json.dumps(shown))
    else:
        sys.exit("unknown action " + what)


if __name__ == "__main__":
    main()
