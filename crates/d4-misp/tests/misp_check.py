"""Checks a static MISP feed folder with PyMISP (the independent reader of the tests).

Usage: python3 misp_check.py FEED_DIR
Fails (exit 1, message on stderr) unless:
 * every `<uuid>.json` loads as a pymisp.MISPEvent and the manifest names exactly these events,
   with the same info, date, timestamp, analysis, threat level, organisation and tags;
 * every object names a misp-objects template shipped with PyMISP, with its template uuid and
   version, its required / requiredOneOf attributes present, every attribute's type and category
   those of the template for its object_relation (categories: describeTypes.json), at most one
   value for a relation that is not `multiple`, values of the type's form (IP addresses, ports,
   counters, datetimes, booleans, hex digests, domains), values from the template's values_list;
 * every reference points at an object of the same event;
 * hashes.csv holds exactly md5(value),event uuid of every attribute value as the files hold
   them (PyMISP's hash_values agreeing for every type but `datetime`, whose values it parses).
Prints a JSON summary of the events (objects with their attributes and references) on stdout.
"""

import datetime
import hashlib
import ipaddress
import json
import os
import re
import sys

import pymisp
from pymisp import MISPEvent

DATA = os.path.join(os.path.dirname(pymisp.__file__), "data")
OBJECTS = os.path.join(DATA, "misp-objects", "objects")
DESCRIBE = json.load(open(os.path.join(DATA, "describeTypes.json")))["result"]

errors = []


def fail(msg):
    errors.append(msg)


HEX = {"ja3-fingerprint-md5": 32, "x509-fingerprint-md5": 32, "x509-fingerprint-sha1": 40,
       "x509-fingerprint-sha256": 64}
DOMAIN = re.compile(r"^([A-Za-z0-9_-]{1,63}\.)+[A-Za-z0-9_-]{1,63}$")


def check_value(where, typ, value):
    v = str(value)
    try:
        if typ in ("ip-src", "ip-dst"):
            ipaddress.ip_address(v)
        elif typ == "port":
            assert 0 <= int(v) <= 65535
        elif typ in ("counter", "integer"):
            assert int(v) >= 0
        elif typ == "datetime":
            # PyMISP may already have parsed it
            if not isinstance(value, datetime.datetime):
                datetime.datetime.fromisoformat(v)
        elif typ == "boolean":
            assert v in ("True", "False", "0", "1", "true", "false")
        elif typ in HEX:
            assert re.fullmatch("[0-9a-f]{%d}" % HEX[typ], v)
        elif typ in ("domain", "hostname"):
            assert DOMAIN.match(v)
        elif typ == "text":
            assert v != ""
    except Exception as e:  # noqa: BLE001
        fail(f"{where}: value {v!r} is not a valid {typ} ({e!r})")


def check_object(where, obj, uuids):
    path = os.path.join(OBJECTS, obj.name, "definition.json")
    if not os.path.exists(path):
        fail(f"{where}: no misp-objects template named {obj.name}")
        return None
    d = json.load(open(path))
    if str(obj.template_uuid) != d["uuid"]:
        fail(f"{where}: template_uuid {obj.template_uuid} != {d['uuid']}")
    if str(obj.template_version) != str(d["version"]):
        fail(f"{where}: template_version {obj.template_version} != {d['version']}")
    rels = {}
    for a in obj.attributes:
        rels.setdefault(a.object_relation, []).append(a)
        spec = d["attributes"].get(a.object_relation)
        w = f"{where} {a.object_relation}"
        if spec is None:
            fail(f"{w}: not an attribute of {obj.name}")
            continue
        if a.type != spec["misp-attribute"]:
            fail(f"{w}: type {a.type} != {spec['misp-attribute']}")
        cats = spec.get("categories") or [c for c, ts in DESCRIBE["category_type_mappings"].items()
                                           if spec["misp-attribute"] in ts]
        if a.category not in cats:
            fail(f"{w}: category {a.category} not in {cats}")
        if "values_list" in spec and str(a.value) not in spec["values_list"]:
            fail(f"{w}: {a.value!r} not in {spec['values_list']}")
        check_value(w, a.type, a.value)
    for r, attrs in rels.items():
        spec = d["attributes"].get(r)
        if spec and not spec.get("multiple") and len(attrs) > 1:
            fail(f"{where}: {r} given {len(attrs)} times, the template has it once")
    for r in d.get("required", []):
        if r not in rels:
            fail(f"{where}: required {r} missing")
    one_of = d.get("requiredOneOf")
    if one_of and not any(r in rels for r in one_of):
        fail(f"{where}: none of {one_of}")
    refs = []
    for ref in obj.references:
        if str(ref.object_uuid) != str(obj.uuid):
            fail(f"{where}: reference object_uuid {ref.object_uuid} != {obj.uuid}")
        target = uuids.get(str(ref.referenced_uuid))
        if target is None:
            fail(f"{where}: reference to {ref.referenced_uuid}, not an object of the event")
        refs.append([ref.relationship_type, target])
    return {
        "name": obj.name,
        "uuid": str(obj.uuid),
        "timestamp": int(obj.timestamp.timestamp()),
        # datetimes as PyMISP parsed them, back in ISO 8601
        "attributes": {r: sorted(a.value.isoformat() if isinstance(a.value, datetime.datetime)
                                 else str(a.value) for a in attrs) for r, attrs in rels.items()},
        "references": sorted(refs),
    }


def main(feed):
    manifest = json.load(open(os.path.join(feed, "manifest.json")))
    files = sorted(f[:-5] for f in os.listdir(feed)
                   if f.endswith(".json") and f != "manifest.json")
    if sorted(manifest) != files:
        fail(f"manifest events {sorted(manifest)} != event files {files}")
    summary = {}
    want_hashes = set()
    for uuid in files:
        ev = MISPEvent()
        ev.load_file(os.path.join(feed, uuid + ".json"))
        where = f"event {uuid}"
        if str(ev.uuid) != uuid:
            fail(f"{where}: uuid {ev.uuid} != file name")
        m = manifest.get(uuid, {})
        got = {
            "info": ev.info, "date": ev.date.isoformat(),
            "timestamp": int(ev.timestamp.timestamp()),
            "analysis": int(ev.analysis), "threat_level_id": int(ev.threat_level_id),
            "Orgc": {"name": ev.Orgc.name, "uuid": str(ev.Orgc.uuid)},
            "Tag": sorted(t.name for t in ev.tags),
        }
        exp = {
            "info": m.get("info"), "date": m.get("date"),
            "timestamp": int(m.get("timestamp", -1)),
            "analysis": int(m.get("analysis", -1)),
            "threat_level_id": int(m.get("threat_level_id", -1)),
            "Orgc": m.get("Orgc"), "Tag": sorted(t["name"] for t in m.get("Tag", [])),
        }
        if got != exp:
            fail(f"{where}: manifest entry {exp} != event {got}")
        uuids = {str(o.uuid): o.name for o in ev.objects}
        objects = [check_object(f"{where} object {o.name} {o.uuid}", o, uuids) for o in ev.objects]
        # The values as the file holds them (PyMISP parses `datetime` values, and its
        # hash_values then hashes Python's str() of them, which no MISP writes); for the
        # other types PyMISP's own hash_values must give the same lines.
        raw = json.load(open(os.path.join(feed, uuid + ".json")))["Event"]
        for a in raw.get("Attribute", []) + [a for o in raw.get("Object", []) for a in o["Attribute"]]:
            parts = a["value"].split("|") if "|" in a["type"] else [a["value"]]
            for v in parts:
                want_hashes.add(hashlib.md5(v.encode()).hexdigest() + "," + uuid)
        for a in list(ev.attributes) + [a for o in ev.objects for a in o.attributes]:
            if a.type != "datetime":
                for h in a.hash_values("md5"):
                    if f"{h},{uuid}" not in want_hashes:
                        fail(f"{where}: PyMISP hashes {a.object_relation} {a.value!r} as {h}")
        summary[uuid] = dict(got, objects=[o for o in objects if o])
    lines = [l for l in open(os.path.join(feed, "hashes.csv")).read().splitlines() if l]
    if len(lines) != len(set(lines)):
        fail("hashes.csv repeats lines")
    if set(lines) != want_hashes:
        fail(f"hashes.csv: {len(set(lines) - want_hashes)} unexpected lines, "
             f"{len(want_hashes - set(lines))} missing")
    if errors:
        print("\n".join(errors[:50]), file=sys.stderr)
        sys.exit(1)
    print(json.dumps(summary, sort_keys=True))


if __name__ == "__main__":
    main(sys.argv[1])
