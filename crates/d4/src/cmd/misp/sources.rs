//! Reading the findings of a period from the analyzers' stores (opened with `d4 pdns`'s and
//! `d4 pssl`'s openers) into `d4-misp`'s values, and building their events:
//! passive DNS (records new in the period, or those of the watch lists), passive SSL (the
//! period's sessions and their leaf certificates), weak keys (found in the period, with
//! the certificates holding them). An embedded store file that does not exist is skipped
//! (nothing to report), never created.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::IpAddr;
use std::path::Path;

use anyhow::Context;
use chrono::NaiveDate;
use d4_misp::objects::dns::{DnsOptions, DnsRecord};
use d4_misp::objects::tls::{TlsCertificate, TlsSession};
use d4_misp::objects::weak::WeakKeyFinding;
use d4_misp::{Event, EventSettings};
use d4_pdns::store::{Filter, Lookup};
use d4_pdns::{Record, RecordError, RecordStore};
use d4_pssl::{CertView, Page, PsslStore};

use super::config::FeedConfig;
use super::FeedArgs;

/// The events of the period and what the bounds left out.
pub struct Found {
    pub events: Vec<Event>,
    pub dropped: usize,
    pub per_analyzer: BTreeMap<String, usize>,
}

/// Unix seconds of the start of a day (UTC).
fn start(day: NaiveDate) -> i64 {
    day.and_hms_opt(0, 0, 0)
        .map(|t| t.and_utc().timestamp())
        .unwrap_or(0)
}

pub fn collect(
    args: &FeedArgs,
    cfg: &FeedConfig,
    settings: &EventSettings,
    since: NaiveDate,
    until: NaiveDate,
) -> anyhow::Result<Found> {
    let (from, to) = (start(since), start(until) + 86_400);
    let mut found = Found {
        events: Vec::new(),
        dropped: 0,
        per_analyzer: BTreeMap::new(),
    };
    let mut add = |name: &str, (events, dropped): (Vec<Event>, usize)| {
        found.per_analyzer.insert(name.into(), events.len());
        found.events.extend(events);
        found.dropped += dropped;
    };
    if cfg.passive_dns.enabled {
        let db = args
            .pdns_db
            .clone()
            .unwrap_or_else(|| args.data_dir.join("pdns.redb"));
        if args.pdns_redis.is_some() || exists(&db, "passive DNS") {
            let store =
                crate::cmd::pdns::open_store(args.pdns_redis.as_deref(), &db, HashMap::new())?;
            let records = dns_records(&*store, cfg, from, to)?;
            let opts = DnsOptions {
                max_per_event: cfg.passive_dns.max_objects,
                origin: cfg.passive_dns.origin.clone(),
            };
            add(
                "passive-dns",
                d4_misp::objects::dns::events(settings, records, &opts),
            );
        }
    }
    if cfg.passive_ssl.enabled || cfg.weak_keys.enabled {
        let db = args
            .pssl_db
            .clone()
            .unwrap_or_else(|| args.data_dir.join("pssl.redb"));
        if args.pssl_postgres.is_some() || exists(&db, "passive SSL") {
            let store = crate::cmd::pssl::open_store(args.pssl_postgres.as_deref(), &db)?;
            if cfg.passive_ssl.enabled {
                let (sessions, certs) = tls(&*store, cfg.passive_ssl.max_sessions, from, to)?;
                add(
                    "passive-ssl",
                    d4_misp::objects::tls::events(
                        settings,
                        &sessions,
                        &certs,
                        cfg.passive_ssl.max_objects,
                    ),
                );
            }
            if cfg.weak_keys.enabled {
                let findings = weak(&*store, from, to)?;
                add(
                    "weak-keys",
                    d4_misp::objects::weak::events(
                        settings,
                        findings,
                        cfg.weak_keys.include_factors,
                        cfg.weak_keys.max_objects,
                    ),
                );
            }
        }
    }
    if cfg.backscatter.enabled {
        let db = args
            .pibs_db
            .clone()
            .unwrap_or_else(|| args.data_dir.join("pibs.redb"));
        if exists(&db, "backscatter") {
            let store = match d4_pibs::store::open_embedded(&db) {
                Ok(s) => s,
                Err(e @ d4_pibs::store::PibsStoreError::Locked { .. }) => {
                    // a long-running `d4 pibs ingest --queue` holds it: the other analyzers'
                    // events are still written, backscatter waits for the next run
                    tracing::warn!(
                        file = %db.display(),
                        "backscatter skipped this run: {e} (stop `d4 pibs ingest`/`serve` \
                         on it, or run the feed between its runs)"
                    );
                    return Ok(found);
                }
                Err(e) => {
                    return Err(anyhow::Error::new(e)
                        .context(format!("opening the backscatter store {}", db.display())))
                }
            };
            // attacks overlapping the period, bounded like the other analyzers' objects
            // (one more than a full event so that the bound is reported)
            let max = cfg
                .backscatter
                .max_objects
                .saturating_mul(days(since, until))
                + 1;
            let attacks = d4_pibs::store::PibsStore::attacks_in(
                &store,
                u64::try_from(from).unwrap_or(0),
                u64::try_from(to).unwrap_or(0),
                max,
            )
            .context("reading the backscatter store")?;
            let findings: Vec<_> = attacks
                .iter()
                .filter(|a| i64::try_from(a.start).is_ok_and(|s| s >= from && s < to))
                .map(ddos_finding)
                .collect();
            add(
                "backscatter",
                d4_misp::objects::ddos::events(settings, findings, cfg.backscatter.max_objects),
            );
        }
    }
    Ok(found)
}

/// Days in [since, until].
fn days(since: NaiveDate, until: NaiveDate) -> usize {
    usize::try_from((until - since).num_days() + 1)
        .unwrap_or(1)
        .max(1)
}

// ---- backscatter

/// Most attacked ports listed in one `ddos` object (the busiest first).
const MAX_DDOS_PORTS: usize = 64;

/// An attack of the backscatter store as a `ddos` finding: the protocol attacked most, its
/// busiest ports, the packets and peak packets/s seen, and the attack type when the replies
/// say it (SYN/ACKs answer a SYN flood).
fn ddos_finding(a: &d4_pibs::store::Attack) -> d4_misp::objects::ddos::DdosFinding {
    use d4_misp::objects::ddos::{DdosFinding, Protocol};
    let top = |m: &BTreeMap<String, u64>| {
        m.iter()
            .max_by_key(|(name, n)| (**n, std::cmp::Reverse((*name).clone())))
            .map(|(name, _)| name.clone())
    };
    let protocol = match top(&a.protocols).as_deref() {
        Some("tcp") => Protocol::Tcp,
        Some("udp") => Protocol::Udp,
        Some("icmp" | "icmp6") => Protocol::Icmp,
        _ => Protocol::Ip,
    };
    let kind = match (protocol, top(&a.kinds).as_deref()) {
        (Protocol::Tcp, Some("syn-ack")) => Some("tcp-syn".to_string()),
        (Protocol::Udp, _) => Some("udp".to_string()),
        (Protocol::Icmp, _) => Some("icmp".to_string()),
        _ => None,
    };
    let mut ports: Vec<(u16, u64)> = a.ports.iter().map(|(p, n)| (*p, *n)).collect();
    ports.sort_by_key(|(p, n)| (std::cmp::Reverse(*n), *p));
    ports.truncate(MAX_DDOS_PORTS);
    DdosFinding {
        victim: a.victim,
        first_seen: i64::try_from(a.start).unwrap_or(i64::MAX),
        last_seen: i64::try_from(a.end).unwrap_or(i64::MAX),
        protocol,
        ports: ports
            .into_iter()
            .map(|(p, _)| p)
            .filter(|p| *p != 0)
            .collect(),
        packets: a.packets,
        pps: a.peak_pps.round().max(0.0) as u64,
        kind,
    }
}

fn exists(db: &Path, what: &str) -> bool {
    let ok = db.exists();
    if !ok {
        tracing::info!(file = %db.display(), "no {what} database: skipped");
    }
    ok
}

// ---- passive DNS

fn dns_record(r: Record) -> DnsRecord {
    DnsRecord {
        rrtype: d4_pdns::rrtype::name(r.rrtype)
            .map(str::to_string)
            .unwrap_or_else(|| format!("TYPE{}", r.rrtype)),
        rrname: r.rrname,
        rdata: r.rdata,
        time_first: (r.time_first_ms / 1000) as i64,
        time_last: (r.time_last_ms / 1000) as i64,
        count: r.count,
        sensors: r.sensors,
    }
}

/// A watch list pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Pattern {
    /// The name and every name under it.
    Domain(String),
    /// Only names under it (`*.example.com`).
    Under(String),
    /// A glob over the whole name (`*` any run, `?` one character).
    Glob(String),
}

impl Pattern {
    fn parse(line: &str) -> Option<Pattern> {
        let l = line.trim().trim_end_matches('.').to_ascii_lowercase();
        if l.is_empty() || l.starts_with('#') {
            return None;
        }
        if let Some(rest) = l.strip_prefix("*.") {
            if !rest.contains(['*', '?']) {
                return Some(Pattern::Under(rest.to_string()));
            }
        }
        if l.contains(['*', '?']) {
            return Some(Pattern::Glob(l));
        }
        Some(Pattern::Domain(l.trim_start_matches('.').to_string()))
    }

    fn matches(&self, name: &str) -> bool {
        let name = name.trim_end_matches('.').to_ascii_lowercase();
        let under = |d: &str| {
            name.len() > d.len() + 1
                && name.ends_with(d)
                && name[..name.len() - d.len()].ends_with('.')
        };
        match self {
            Pattern::Domain(d) => name == *d || under(d),
            Pattern::Under(d) => under(d),
            Pattern::Glob(g) => glob(g.as_bytes(), name.as_bytes()),
        }
    }
}

/// `*` matches any run of characters, `?` one.
fn glob(p: &[u8], s: &[u8]) -> bool {
    let (mut pi, mut si, mut star, mut mark) = (0, 0, None, 0);
    while si < s.len() {
        if pi < p.len() && (p[pi] == b'?' || p[pi] == s[si]) {
            pi += 1;
            si += 1;
        } else if pi < p.len() && p[pi] == b'*' {
            star = Some(pi);
            mark = si;
            pi += 1;
        } else if let Some(st) = star {
            pi = st + 1;
            mark += 1;
            si = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == b'*')
}

fn watch_patterns(files: &[std::path::PathBuf]) -> anyhow::Result<Vec<Pattern>> {
    let mut out = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(f).with_context(|| {
            format!("cannot read the watch list {} (--pdns-watch)", f.display())
        })?;
        out.extend(text.lines().filter_map(Pattern::parse));
    }
    Ok(out)
}

fn dns_records(
    store: &dyn RecordStore,
    cfg: &FeedConfig,
    from: i64,
    to: i64,
) -> anyhow::Result<Vec<DnsRecord>> {
    let ms = |t: i64| u64::try_from(t).unwrap_or(0).saturating_mul(1000);
    let (from_ms, to_ms) = (ms(from), ms(to));
    let max = cfg.passive_dns.max_examined;
    let mut out = Vec::new();
    let new_in_period = |r: &Record| r.time_first_ms >= from_ms && r.time_first_ms < to_ms;
    if cfg.passive_dns.watch.is_empty() {
        store
            .first_seen_between(from_ms, to_ms, max, &mut |r| out.push(dns_record(r)))
            .context("reading the passive DNS records new in the period")?;
        return Ok(out);
    }
    let patterns = watch_patterns(&cfg.passive_dns.watch)?;
    let filter = Filter {
        rrtypes: Vec::new(),
        since: Some(from as u64),
        until: Some(to as u64),
    };
    let mut scan_all = false;
    for p in &patterns {
        let lookups = match p {
            Pattern::Domain(d) => vec![Lookup::Name(d.clone()), Lookup::Suffix(d.clone())],
            Pattern::Under(d) => vec![Lookup::Suffix(d.clone())],
            Pattern::Glob(_) => {
                scan_all = true;
                continue;
            }
        };
        for l in lookups {
            match store.scan(&l, &filter, max, &mut |r| {
                if new_in_period(&r) {
                    out.push(dns_record(r));
                }
            }) {
                Ok(()) => {}
                // Redis has no suffix search: a scan of the period below instead.
                Err(RecordError::Unsupported(_)) => scan_all = true,
                Err(e) => return Err(e).context("reading the passive DNS watch list records"),
            }
        }
    }
    if scan_all {
        out.clear();
        store
            .first_seen_between(from_ms, to_ms, max, &mut |r| {
                if patterns.iter().any(|p| p.matches(&r.rrname)) {
                    out.push(dns_record(r));
                }
            })
            .context("reading the passive DNS records new in the period")?;
    }
    Ok(out)
}

// ---- passive SSL

fn tls_certificate(v: CertView) -> TlsCertificate {
    let c = v.certificate;
    let k = v.key;
    TlsCertificate {
        dns_names: c
            .sans
            .iter()
            .filter(|n| n.parse::<IpAddr>().is_err())
            .cloned()
            .collect(),
        sha1: c.sha1,
        sha256: c.sha256,
        subject: c.subject,
        issuer: c.issuer,
        serial: c.serial,
        not_before: c.not_before,
        not_after: c.not_after,
        key_algorithm: k.as_ref().map(|k| k.key_type.clone()).unwrap_or_default(),
        key_bits: k.as_ref().map_or(0, |k| k.bits),
        modulus: k.as_ref().and_then(|k| k.modulus.clone()),
        exponent: k.as_ref().and_then(|k| k.exponent),
        is_ca: c.is_ca,
        self_signed: c.self_signed,
        der: c.der,
    }
}

type Certs = HashMap<String, TlsCertificate>;

fn tls(
    store: &dyn PsslStore,
    max_sessions: usize,
    from: i64,
    to: i64,
) -> anyhow::Result<(Vec<TlsSession>, Certs)> {
    let mut sessions = Vec::new();
    let mut page = Page::first(1000);
    loop {
        let p = store
            .sessions_between(from, to, &page)
            .context("reading the passive SSL sessions of the period")?;
        for s in p.items {
            sessions.push(TlsSession {
                ts: s.ts,
                client_ip: s.client_ip,
                server_ip: s.server_ip,
                server_port: s.server_port,
                ja3: s.ja3,
                ja3_raw: s.ja3_raw,
                ja3s: s.ja3s,
                ja4: s.ja4,
                sni: s.sni,
                leaf: s.chain.first().cloned(),
            });
        }
        if sessions.len() > max_sessions {
            anyhow::bail!(
                "more than {max_sessions} passive SSL sessions in the period: narrow \
                 --since/--until or raise [passive_ssl] max_sessions"
            );
        }
        match p.next {
            Some(c) => page = Page::after(c, 1000),
            None => break,
        }
    }
    let leaves: HashSet<&String> = sessions.iter().filter_map(|s| s.leaf.as_ref()).collect();
    let mut certs = Certs::new();
    for sha1 in leaves {
        if let Some(v) = store.certificate(sha1).context("reading a certificate")? {
            certs.insert(sha1.clone(), tls_certificate(v));
        }
    }
    Ok((sessions, certs))
}

// ---- weak keys

fn weak(store: &dyn PsslStore, from: i64, to: i64) -> anyhow::Result<Vec<WeakKeyFinding>> {
    let mut by_key: BTreeMap<String, WeakKeyFinding> = BTreeMap::new();
    let mut page = Page::first(1000);
    loop {
        let p = store.weak_keys(&page).context("reading the weak keys")?;
        for w in p.items {
            let f = by_key
                .entry(w.spki_sha256.clone())
                .or_insert_with(|| WeakKeyFinding {
                    spki_sha256: w.spki_sha256.clone(),
                    found: w.found,
                    ..WeakKeyFinding::default()
                });
            f.found = f.found.min(w.found);
            let mut check = w.check.clone();
            if let Some(s) = &w.subtest {
                check = format!("{check}/{s}");
            }
            f.checks.push(format!("{check} ({})", w.how));
            if f.p.is_none() && w.p.is_some() && w.q.is_some() {
                (f.p, f.q) = (w.p.clone(), w.q.clone());
            }
        }
        match p.next {
            Some(c) => page = Page::after(c, 1000),
            None => break,
        }
    }
    by_key.retain(|_, f| f.found >= from && f.found < to);
    let mut keyless = Vec::new();
    for f in by_key.values_mut() {
        let mut page = Page::first(1000);
        loop {
            let p = store
                .key_certificates(&f.spki_sha256, &page)
                .context("reading the certificates of a weak key")?;
            for sha1 in p.items {
                if let Some(v) = store.certificate(&sha1).context("reading a certificate")? {
                    if let Some(k) = &v.key {
                        f.key_type = k.key_type.clone();
                        f.bits = k.bits;
                        f.modulus = k.modulus.clone();
                        f.exponent = k.exponent;
                    }
                    f.certificates.push(tls_certificate(v));
                }
            }
            match p.next {
                Some(c) => page = Page::after(c, 1000),
                None => break,
            }
        }
        if f.key_type.is_empty() {
            keyless.push(f.spki_sha256.clone());
        }
    }
    // Keys held by no stored certificate: their modulus from the RSA key list.
    if !keyless.is_empty() {
        let want: HashSet<String> = keyless.into_iter().collect();
        let mut page = Page::first(10_000);
        loop {
            let p = store.rsa_moduli(&page).context("reading the RSA keys")?;
            for (spki, n) in p.items {
                if let Some(f) = want
                    .contains(&spki)
                    .then(|| by_key.get_mut(&spki))
                    .flatten()
                {
                    f.key_type = "RSA".into();
                    f.modulus = Some(n);
                }
            }
            match p.next {
                Some(c) => page = Page::after(c, 10_000),
                None => break,
            }
        }
    }
    Ok(by_key.into_values().collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn watch_patterns_match_by_hand() {
        let d = Pattern::parse("Example.COM.").unwrap();
        assert_eq!(d, Pattern::Domain("example.com".into()));
        assert!(d.matches("example.com") && d.matches("www.example.com"));
        assert!(!d.matches("badexample.com"));
        let u = Pattern::parse("*.example.com").unwrap();
        assert!(u.matches("a.b.example.com") && !u.matches("example.com"));
        let g = Pattern::parse("login-*.example.?rg").unwrap();
        assert!(g.matches("login-bank.example.org"));
        assert!(!g.matches("login.example.org"));
        assert_eq!(Pattern::parse("# comment"), None);
        assert_eq!(Pattern::parse("   "), None);
    }
}
