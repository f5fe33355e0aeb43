//! The Redis / kvrocks backend, in analyzer-d4-passivedns's key layout, so that an existing
//! database can be served (and fed) by d4-pdns:
//!
//! * `r:<rrname>:<type number>`: set of rdata (as observed: TXT keeps its case);
//!   `v:<rdata lower-cased>:<type number>`: set of names;
//! * `s:<rrname>:<rdata lower-cased>:<type>` / `l:…` / `o:…`: first seen, last seen (epoch
//!   seconds), count — the reference lookup server (pdns-cof-server.py) builds these names
//!   from `r:` members lower-cased, so they are written lower-cased (records written by
//!   older d4-rs with the value's case are still read);
//! * `dist:type`, `dist:ttl`, `dist:class` (hashes: type / TTL / class → lines, as the
//!   reference ingester counts them), `stats:processed`.
//!
//! Writes keep first = minimum and last = maximum atomically (a small Lua script, which
//! kvrocks runs too) and add the CSV count. Expiry per rrtype sets a TTL on the keys of a
//! record when it is written (the reference's `[expiration]`). Sensor ids and rcode lines
//! have no place in this layout and are not stored. Lookups: exact names and reverse
//! (rdata/IP); wildcard, prefix and CIDR searches need the embedded store's indexes and are
//! refused (501) here.

use std::collections::{BTreeSet, HashMap};
use std::sync::Mutex;

use crate::rrtype;
use crate::store::{
    split_record_key, unreverse, Agg, Batch, CommitStats, Filter, Info, Lookup, Record,
    RecordError, RecordStore,
};

const MINMAX_LUA: &str = "\
local s = redis.call('GET', KEYS[1]) \
if (not s) or tonumber(s) > tonumber(ARGV[1]) then redis.call('SET', KEYS[1], ARGV[1]) end \
local l = redis.call('GET', KEYS[2]) \
if (not l) or tonumber(l) < tonumber(ARGV[2]) then redis.call('SET', KEYS[2], ARGV[2]) end \
return redis.call('INCRBY', KEYS[3], ARGV[3])";

fn rerr(e: redis::RedisError) -> RecordError {
    RecordError::Redis(e.to_string())
}

/// Passive DNS records in Redis/kvrocks (analyzer-d4-passivedns layout).
pub struct RedisRecordStore {
    con: Mutex<redis::Connection>,
    expire: HashMap<u16, u64>,
}

impl RedisRecordStore {
    /// Connects (`redis://host:port/db`) and checks the server answers.
    pub fn open(url: &str, expire: HashMap<u16, u64>) -> Result<RedisRecordStore, RecordError> {
        let client = redis::Client::open(url).map_err(rerr)?;
        let mut con = client.get_connection().map_err(rerr)?;
        redis::cmd("PING").query::<String>(&mut con).map_err(rerr)?;
        Ok(RedisRecordStore {
            con: Mutex::new(con),
            expire,
        })
    }

    fn con(&self) -> std::sync::MutexGuard<'_, redis::Connection> {
        match self.con.lock() {
            Ok(c) => c,
            Err(p) => p.into_inner(),
        }
    }

    /// Types to probe for a name: every named type plus those seen in `dist:type`.
    fn types(&self, con: &mut redis::Connection) -> Result<BTreeSet<u16>, RecordError> {
        let seen: Vec<String> = redis::cmd("HKEYS")
            .arg("dist:type")
            .query(con)
            .map_err(rerr)?;
        let mut t: BTreeSet<u16> = (1..=260u16)
            .filter(|t| rrtype::name(*t).is_some())
            .collect();
        t.extend([32768, 32769]);
        t.extend(seen.iter().filter_map(|s| s.parse::<u16>().ok()));
        Ok(t)
    }

    /// Builds the records of (name, type, rdata) triples from their s:/l:/o: keys.
    fn records(
        &self,
        con: &mut redis::Connection,
        triples: Vec<(String, u16, String)>,
        filter: &Filter,
        max: usize,
    ) -> Result<Vec<Record>, RecordError> {
        let mut out = Vec::new();
        for chunk in triples.chunks(1000) {
            let mut pipe = redis::pipe();
            for (n, t, v) in chunk {
                // The reference's key names (lower-cased), then those older d4-rs wrote.
                let (ln, lv) = (n.to_lowercase(), v.to_lowercase());
                pipe.cmd("MGET")
                    .arg(format!("s:{ln}:{lv}:{t}"))
                    .arg(format!("l:{ln}:{lv}:{t}"))
                    .arg(format!("o:{ln}:{lv}:{t}"))
                    .arg(format!("s:{n}:{v}:{t}"))
                    .arg(format!("l:{n}:{v}:{t}"))
                    .arg(format!("o:{n}:{v}:{t}"));
            }
            let vals: Vec<Vec<Option<String>>> = pipe.query(con).map_err(rerr)?;
            for ((n, t, v), mut got) in chunk.iter().zip(vals) {
                if got.first().is_some_and(Option::is_none) && got.len() == 6 {
                    got.drain(..3);
                }
                let num = |i: usize| {
                    got.get(i)
                        .and_then(|x| x.as_deref())
                        .and_then(|x| x.trim().split('.').next())
                        .and_then(|x| x.parse::<u64>().ok())
                };
                let (Some(first), Some(last)) = (num(0), num(1)) else {
                    continue; // expired or half-written: the reference skips these too
                };
                let a = Agg {
                    // Seconds from the database (any writer): saturating, never an
                    // overflow panic on a corrupt huge value.
                    first: first.saturating_mul(1000),
                    last: last.saturating_mul(1000),
                    count: num(2).unwrap_or(1),
                    seq: 0,
                    sensors: Vec::new(),
                };
                if !filter.keep(*t, &a) {
                    continue;
                }
                if out.len() >= max {
                    return Err(RecordError::TooManyMatches(max));
                }
                out.push(a.into_record(n.clone(), *t, v.clone()));
            }
        }
        Ok(out)
    }
}

impl RecordStore for RedisRecordStore {
    fn commit(&self, batch: &mut Batch) -> Result<CommitStats, RecordError> {
        let mut stats = CommitStats {
            lines: batch.lines,
            ..CommitStats::default()
        };
        let entries: Vec<(Vec<u8>, Agg)> = batch.records.drain().collect();
        batch.rcodes.clear();
        let mut con = self.con();
        for chunk in entries.chunks(2000) {
            let mut pipe = redis::pipe();
            for (key, agg) in chunk {
                let Some((rev, t, rdata)) = split_record_key(key) else {
                    continue;
                };
                let name = unreverse(rev);
                let rdata = String::from_utf8_lossy(rdata);
                let (lname, lrdata) = (name.to_lowercase(), rdata.to_lowercase());
                let keys = [
                    format!("r:{name}:{t}"),
                    format!("v:{lrdata}:{t}"),
                    format!("s:{lname}:{lrdata}:{t}"),
                    format!("l:{lname}:{lrdata}:{t}"),
                    format!("o:{lname}:{lrdata}:{t}"),
                ];
                pipe.cmd("SADD").arg(&keys[0]).arg(rdata.as_ref());
                pipe.cmd("SADD").arg(&keys[1]).arg(&name).ignore();
                pipe.cmd("EVAL")
                    .arg(MINMAX_LUA)
                    .arg(3)
                    .arg(&keys[2])
                    .arg(&keys[3])
                    .arg(&keys[4])
                    .arg(agg.first / 1000)
                    .arg(agg.last / 1000)
                    .arg(agg.count)
                    .ignore();
                pipe.cmd("HINCRBY")
                    .arg("dist:type")
                    .arg(t)
                    .arg(agg.count)
                    .ignore();
                if let Some(secs) = self.expire.get(&t) {
                    for k in &keys {
                        pipe.cmd("EXPIRE").arg(k).arg(*secs).ignore();
                    }
                }
            }
            let added: Vec<i64> = pipe.query(&mut *con).map_err(rerr)?;
            for a in added {
                if a > 0 {
                    stats.new_records += 1;
                } else {
                    stats.updated_records += 1;
                }
            }
        }
        let mut pipe = redis::pipe();
        pipe.cmd("INCRBY")
            .arg("stats:processed")
            .arg(batch.lines)
            .ignore();
        for (ttl, n) in batch.dist_ttl.drain() {
            pipe.cmd("HINCRBY").arg("dist:ttl").arg(ttl).arg(n).ignore();
        }
        for (class, n) in batch.dist_class.drain() {
            pipe.cmd("HINCRBY")
                .arg("dist:class")
                .arg(class)
                .arg(n)
                .ignore();
        }
        let () = pipe.query(&mut *con).map_err(rerr)?;
        batch.clear_counts();
        Ok(stats)
    }

    fn lookup(
        &self,
        lookup: &Lookup,
        filter: &Filter,
        max: usize,
    ) -> Result<Vec<Record>, RecordError> {
        let mut con = self.con();
        let types: Vec<u16> = self
            .types(&mut con)?
            .into_iter()
            .filter(|t| filter.rrtypes.is_empty() || filter.rrtypes.contains(t))
            .collect();
        let mut triples = Vec::new();
        match lookup {
            Lookup::Name(name) => {
                let mut pipe = redis::pipe();
                for t in &types {
                    pipe.cmd("SMEMBERS").arg(format!("r:{name}:{t}"));
                }
                let sets: Vec<Vec<String>> = pipe.query(&mut *con).map_err(rerr)?;
                for (t, values) in types.iter().zip(sets) {
                    for v in values {
                        triples.push((name.clone(), *t, v));
                    }
                }
            }
            Lookup::Rdata(values) => {
                let values: BTreeSet<&String> = values.iter().collect();
                for value in values {
                    // `v:` keys hold the value lower-cased (the reference's form); older
                    // d4-rs wrote the value's case.
                    let lower = value.to_lowercase();
                    let mut pipe = redis::pipe();
                    for t in &types {
                        pipe.cmd("SUNION")
                            .arg(format!("v:{lower}:{t}"))
                            .arg(format!("v:{value}:{t}"));
                    }
                    let sets: Vec<Vec<String>> = pipe.query(&mut *con).map_err(rerr)?;
                    let found: Vec<(u16, String)> = types
                        .iter()
                        .zip(sets)
                        .flat_map(|(t, names)| names.into_iter().map(move |n| (*t, n)))
                        .collect();
                    // The record's rdata as observed (its case) is the member of r:.
                    let mut pipe = redis::pipe();
                    for (t, n) in &found {
                        pipe.cmd("SMEMBERS").arg(format!("r:{n}:{t}"));
                    }
                    let members: Vec<Vec<String>> = pipe.query(&mut *con).map_err(rerr)?;
                    for ((t, n), members) in found.into_iter().zip(members) {
                        let mut matched: Vec<String> = members
                            .into_iter()
                            .filter(|m| m.to_lowercase() == lower)
                            .collect();
                        if matched.is_empty() {
                            matched.push(value.to_string());
                        }
                        for v in matched {
                            triples.push((n.clone(), t, v));
                        }
                    }
                }
            }
            Lookup::Suffix(_) => return Err(RecordError::Unsupported("wildcard search on Redis")),
            Lookup::Prefix(_) => return Err(RecordError::Unsupported("prefix search on Redis")),
            Lookup::Cidr(_) => return Err(RecordError::Unsupported("CIDR search on Redis")),
        }
        if triples.len() > max.saturating_mul(4) {
            return Err(RecordError::TooManyMatches(max));
        }
        self.records(&mut con, triples, filter, max)
    }

    /// A SCAN over the `s:<name>:<rdata>:<type>` keys (the first-seen times), in steps that
    /// never block Redis; each record first seen in the period is then read like a lookup's,
    /// its rdata in the case observed (the `r:` member).
    fn first_seen_between(
        &self,
        from_ms: u64,
        until_ms: u64,
        max_examined: usize,
        visit: &mut dyn FnMut(Record),
    ) -> Result<(), RecordError> {
        let mut con = self.con();
        let (from, until) = (from_ms / 1000, until_ms.div_ceil(1000));
        let mut cursor: u64 = 0;
        let mut examined = 0usize;
        let mut triples: Vec<(String, u16, String)> = Vec::new();
        loop {
            let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg("s:*")
                .arg("COUNT")
                .arg(10_000)
                .query(&mut *con)
                .map_err(rerr)?;
            examined += keys.len();
            if examined > max_examined {
                return Err(RecordError::TooManyExamined(max_examined));
            }
            if !keys.is_empty() {
                let firsts: Vec<Option<String>> = redis::cmd("MGET")
                    .arg(&keys)
                    .query(&mut *con)
                    .map_err(rerr)?;
                for (k, first) in keys.iter().zip(firsts) {
                    let Some(first) = first
                        .as_deref()
                        .and_then(|x| x.trim().split('.').next())
                        .and_then(|x| x.parse::<u64>().ok())
                    else {
                        continue;
                    };
                    // Names hold no `:`; rdata may (IPv6): name up to the first, type after the last.
                    let Some((name, rest)) = k.strip_prefix("s:").and_then(|r| r.split_once(':'))
                    else {
                        continue;
                    };
                    let Some((rdata, t)) = rest.rsplit_once(':') else {
                        continue;
                    };
                    let Ok(t) = t.parse::<u16>() else { continue };
                    // In seconds: a record of the period's first or last second is kept, and
                    // the exact bound (ms) is checked on the record below.
                    if first >= from && first <= until {
                        triples.push((name.to_string(), t, rdata.to_string()));
                    }
                }
            }
            if next == 0 {
                break;
            }
            cursor = next;
        }
        // The rdata as observed (its case) is the member of r:<name>:<type>.
        for chunk in triples.chunks_mut(1000) {
            let mut pipe = redis::pipe();
            for (n, t, _) in chunk.iter() {
                pipe.cmd("SMEMBERS").arg(format!("r:{n}:{t}"));
            }
            let members: Vec<Vec<String>> = pipe.query(&mut *con).map_err(rerr)?;
            for ((_, _, v), members) in chunk.iter_mut().zip(members) {
                if let Some(m) = members.into_iter().find(|m| m.to_lowercase() == *v) {
                    *v = m;
                }
            }
        }
        for r in self.records(&mut con, triples, &Filter::default(), usize::MAX)? {
            if r.time_first_ms >= from_ms && r.time_first_ms < until_ms {
                visit(r);
            }
        }
        Ok(())
    }

    fn info(&self) -> Result<Info, RecordError> {
        let mut con = self.con();
        let processed: Option<u64> = redis::cmd("GET")
            .arg("stats:processed")
            .query(&mut *con)
            .map_err(rerr)?;
        let mut info = Info {
            lines_ingested: processed.unwrap_or(0),
            ..Info::default()
        };
        // The layout keeps no record count: one `o:<name>:<rdata>:<type>` key per record,
        // counted with SCAN (a pass over the keyspace, in steps that never block Redis).
        let mut cursor: u64 = 0;
        loop {
            let (next, keys): (u64, Vec<Vec<u8>>) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg("o:*")
                .arg("COUNT")
                .arg(10_000)
                .query(&mut *con)
                .map_err(rerr)?;
            for k in keys {
                let t = k.rsplit(|b| *b == b':').next().unwrap_or_default();
                if let Some(t) = std::str::from_utf8(t)
                    .ok()
                    .and_then(|t| t.parse::<u16>().ok())
                {
                    info.records += 1;
                    *info.rrtypes.entry(t).or_default() += 1;
                }
            }
            if next == 0 {
                break;
            }
            cursor = next;
        }
        Ok(info)
    }

    fn expire(&self, _now_ms: u64, _ttl: &HashMap<u16, u64>) -> Result<u64, RecordError> {
        Ok(0) // Redis expires the keys itself (TTL set at write time).
    }
}
