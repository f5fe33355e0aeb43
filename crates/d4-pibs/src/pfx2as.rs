//! Prefix-to-AS lookups for the backscatter pivots: which announced prefix holds a victim
//! and which AS originates it, and the reverse (every prefix of an AS).
//!
//! Input: CAIDA's `pfx2as` format (IPv4 and IPv6 files alike), one route per line,
//! `<prefix>\t<length>\t<asn>`, where `<asn>` is one AS, `a_b` (a prefix announced by
//! several origins, MOAS) or `a,b` (an AS set); `#` comments and blank lines are skipped.
//! Fields may be separated by tabs or spaces, and `<prefix>/<length>\t<asn>` (a
//! RouteViews/RIS dump turned into two columns) is accepted too. A bad line is counted in
//! [`LoadStats`] (with the first few kept for the log), never fatal. Host bits set in a
//! prefix are cleared (the route is the network). The same prefix twice: the last line
//! wins (counted as `duplicates`).
//!
//! Sans-IO: [`Pfx2As::parse`] takes bytes; [`Pfx2As::load`] reads a file (gzip by content).
//! The lookup structure is built once: per address family, one sorted array per prefix
//! length present; [`Pfx2As::lookup`] masks the address for each length, longest first,
//! and binary-searches that array (at most 33 or 129 searches, no allocation). Origins
//! live in one flat array; a route holds a range of it.

use std::io::Read;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::Path;

use ipnet::{IpNet, Ipv4Net, Ipv6Net};

/// Bad lines kept verbatim (cut at 200 bytes) in [`LoadStats::examples`].
const MAX_EXAMPLES: usize = 5;

/// Largest file [`Pfx2As::load`] reads (CAIDA's IPv4 file is ~20 MB, IPv6 ~3 MB).
pub const MAX_FILE_BYTES: u64 = 512 << 20;

/// Why a prefix-to-AS file could not be read at all (bad lines are counted, not errors).
#[derive(Debug, thiserror::Error)]
pub enum Pfx2AsError {
    #[error("cannot read the prefix-to-AS file {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("the prefix-to-AS file {path} is larger than {max} bytes")]
    TooLarge { path: String, max: u64 },
}

/// What loading found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LoadStats {
    /// Routes kept (after duplicates were merged).
    pub routes: usize,
    /// Lines that are neither a route, a comment nor blank.
    pub bad_lines: u64,
    /// Lines repeating a prefix seen before (the last one wins).
    pub duplicates: u64,
    /// Routes with more than one origin (`a_b` or `a,b`).
    pub multi_origin: u64,
    /// The first bad lines, with their 1-based line numbers.
    pub examples: Vec<(u64, String)>,
}

/// One route: a prefix and its origin AS numbers (several for MOAS and AS sets).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route<'a> {
    pub net: IpNet,
    pub origins: &'a [u32],
}

impl Route<'_> {
    /// The first origin (the one `asn` fields report).
    pub fn asn(&self) -> Option<u32> {
        self.origins.first().copied()
    }
}

/// Routes of one prefix length of one family, sorted by network address.
#[derive(Debug, Default, Clone)]
struct Level<A> {
    len: u8,
    /// (network address, index into `origins` ranges)
    nets: Vec<(A, u32)>,
}

/// The loaded table. Cheap to share behind an `Arc`; immutable once built.
#[derive(Debug, Default, Clone)]
pub struct Pfx2As {
    /// Longest prefix length first.
    v4: Vec<Level<u32>>,
    v6: Vec<Level<u128>>,
    /// Per route (the `u32` of the levels): start and count in `origins`.
    spans: Vec<(u32, u16)>,
    origins: Vec<u32>,
    /// (asn, network) for every origin of every route, sorted: the reverse pivot.
    by_asn: Vec<(u32, IpNet)>,
    stats: LoadStats,
}

fn mask4(a: u32, len: u8) -> u32 {
    if len == 0 {
        0
    } else {
        a & (u32::MAX << (32 - u32::from(len)))
    }
}

fn mask6(a: u128, len: u8) -> u128 {
    if len == 0 {
        0
    } else {
        a & (u128::MAX << (128 - u32::from(len)))
    }
}

/// One parsed line: the network (host bits cleared) and its origins.
fn parse_line(line: &str) -> Option<(IpNet, Vec<u32>)> {
    let mut fields = line.split([' ', '\t']).filter(|f| !f.is_empty());
    let first = fields.next()?;
    let (addr, len) = match first.split_once('/') {
        Some((a, l)) => (a, l),
        None => (first, fields.next()?),
    };
    let asn = fields.next()?;
    if fields.next().is_some() {
        return None;
    }
    let addr: IpAddr = addr.parse().ok()?;
    let len: u8 = len.parse().ok()?;
    let net = IpNet::new(addr, len).ok()?.trunc();
    let mut origins = Vec::new();
    for part in asn.split(['_', ',']) {
        let a = part.strip_prefix("AS").unwrap_or(part);
        let a: u32 = a.parse().ok()?;
        if !origins.contains(&a) {
            origins.push(a);
        }
    }
    if origins.is_empty() || origins.len() > usize::from(u16::MAX) {
        return None;
    }
    Some((net, origins))
}

impl Pfx2As {
    /// Reads a file: plain text, or gzip (detected by its first bytes).
    pub fn load(path: &Path) -> Result<Pfx2As, Pfx2AsError> {
        let io = |source| Pfx2AsError::Io {
            path: path.display().to_string(),
            source,
        };
        let f = std::fs::File::open(path).map_err(io)?;
        let mut raw = Vec::new();
        f.take(MAX_FILE_BYTES + 1)
            .read_to_end(&mut raw)
            .map_err(io)?;
        let mut text = Vec::new();
        if raw.starts_with(&[0x1f, 0x8b]) {
            flate2::read::MultiGzDecoder::new(raw.as_slice())
                .take(MAX_FILE_BYTES + 1)
                .read_to_end(&mut text)
                .map_err(io)?;
        } else {
            text = raw;
        }
        if text.len() as u64 > MAX_FILE_BYTES {
            return Err(Pfx2AsError::TooLarge {
                path: path.display().to_string(),
                max: MAX_FILE_BYTES,
            });
        }
        Ok(Pfx2As::parse(&text))
    }

    /// Several files merged into one table (an IPv4 and an IPv6 file, typically): later
    /// files win for a prefix present in several.
    pub fn load_all(paths: &[impl AsRef<Path>]) -> Result<Pfx2As, Pfx2AsError> {
        let mut routes = Vec::new();
        let mut stats = LoadStats::default();
        for p in paths {
            let one = Pfx2As::load(p.as_ref())?;
            routes.extend(one.dump());
            stats.bad_lines += one.stats.bad_lines;
            stats.duplicates += one.stats.duplicates;
            let room = MAX_EXAMPLES.saturating_sub(stats.examples.len());
            stats
                .examples
                .extend(one.stats.examples.into_iter().take(room));
        }
        Ok(Pfx2As::build(routes, stats))
    }

    /// Every route, as `(net, origins)`, in the order of the table.
    fn dump(&self) -> Vec<(IpNet, Vec<u32>)> {
        let mut out = Vec::with_capacity(self.stats.routes);
        for l in &self.v4 {
            for (a, i) in &l.nets {
                if let Ok(n) = Ipv4Net::new(Ipv4Addr::from(*a), l.len) {
                    out.push((IpNet::V4(n), self.origins_of(*i).to_vec()));
                }
            }
        }
        for l in &self.v6 {
            for (a, i) in &l.nets {
                if let Ok(n) = Ipv6Net::new(Ipv6Addr::from(*a), l.len) {
                    out.push((IpNet::V6(n), self.origins_of(*i).to_vec()));
                }
            }
        }
        out
    }

    /// Parses a pfx2as text (see the module doc). Never fails: bad lines are counted.
    pub fn parse(text: &[u8]) -> Pfx2As {
        let mut stats = LoadStats::default();
        let mut routes = Vec::new();
        for (i, raw) in text.split(|b| *b == b'\n').enumerate() {
            let line = String::from_utf8_lossy(raw);
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            match parse_line(line) {
                Some(r) => routes.push(r),
                None => {
                    stats.bad_lines += 1;
                    if stats.examples.len() < MAX_EXAMPLES {
                        let cut: String = line.chars().take(200).collect();
                        stats.examples.push((i as u64 + 1, cut));
                    }
                }
            }
        }
        Pfx2As::build(routes, stats)
    }

    /// The table from its routes (in input order: for a repeated prefix the last wins).
    fn build(routes: Vec<(IpNet, Vec<u32>)>, mut stats: LoadStats) -> Pfx2As {
        // Keep the last of each prefix: a stable sort by prefix, then the last of each run.
        let mut routes: Vec<(usize, IpNet, Vec<u32>)> = routes
            .into_iter()
            .enumerate()
            .map(|(i, (n, o))| (i, n, o))
            .collect();
        routes.sort_by(|a, b| {
            (a.1.prefix_len(), a.1.network(), a.0).cmp(&(b.1.prefix_len(), b.1.network(), b.0))
        });
        let mut kept: Vec<(IpNet, Vec<u32>)> = Vec::with_capacity(routes.len());
        for (_, net, origins) in routes {
            match kept.last_mut() {
                Some(last) if last.0 == net => {
                    stats.duplicates += 1;
                    last.1 = origins;
                }
                _ => kept.push((net, origins)),
            }
        }
        let mut t = Pfx2As::default();
        for (net, origins) in kept {
            let idx = t.spans.len() as u32;
            if origins.len() > 1 {
                stats.multi_origin += 1;
            }
            t.spans.push((t.origins.len() as u32, origins.len() as u16));
            for a in &origins {
                t.by_asn.push((*a, net));
            }
            t.origins.extend(origins);
            match net {
                IpNet::V4(n) => push_level(&mut t.v4, n.prefix_len(), u32::from(n.network()), idx),
                IpNet::V6(n) => push_level(&mut t.v6, n.prefix_len(), u128::from(n.network()), idx),
            }
        }
        for l in &mut t.v4 {
            l.nets.sort_unstable();
        }
        for l in &mut t.v6 {
            l.nets.sort_unstable();
        }
        t.v4.sort_by_key(|l| std::cmp::Reverse(l.len));
        t.v6.sort_by_key(|l| std::cmp::Reverse(l.len));
        t.by_asn.sort_unstable();
        stats.routes = t.spans.len();
        t.stats = stats;
        t
    }

    fn origins_of(&self, idx: u32) -> &[u32] {
        match self.spans.get(idx as usize) {
            Some(&(start, n)) => self
                .origins
                .get(start as usize..start as usize + usize::from(n))
                .unwrap_or(&[]),
            None => &[],
        }
    }

    /// The longest prefix holding `ip`, with its origins (IPv4-mapped IPv6 addresses are
    /// looked up as IPv4).
    pub fn lookup(&self, ip: IpAddr) -> Option<Route<'_>> {
        match ip.to_canonical() {
            IpAddr::V4(a) => {
                let a = u32::from(a);
                self.v4.iter().find_map(|l| {
                    let net = mask4(a, l.len);
                    let i = l.nets.binary_search_by_key(&net, |e| e.0).ok()?;
                    let n = Ipv4Net::new(Ipv4Addr::from(net), l.len).ok()?;
                    Some(Route {
                        net: IpNet::V4(n),
                        origins: self.origins_of(l.nets[i].1),
                    })
                })
            }
            IpAddr::V6(a) => {
                let a = u128::from(a);
                self.v6.iter().find_map(|l| {
                    let net = mask6(a, l.len);
                    let i = l.nets.binary_search_by_key(&net, |e| e.0).ok()?;
                    let n = Ipv6Net::new(Ipv6Addr::from(net), l.len).ok()?;
                    Some(Route {
                        net: IpNet::V6(n),
                        origins: self.origins_of(l.nets[i].1),
                    })
                })
            }
        }
    }

    /// Every prefix `asn` originates (alone or among others), in address order per length.
    pub fn prefixes_of(&self, asn: u32) -> impl Iterator<Item = IpNet> + '_ {
        let start = self.by_asn.partition_point(|e| e.0 < asn);
        self.by_asn[start..]
            .iter()
            .take_while(move |e| e.0 == asn)
            .map(|e| e.1)
    }

    /// Whether `ip`'s longest match is originated by `asn` (the exact test behind the
    /// reverse pivot: a victim in a more specific prefix of another AS is not `asn`'s).
    pub fn originated_by(&self, ip: IpAddr, asn: u32) -> bool {
        self.lookup(ip).is_some_and(|r| r.origins.contains(&asn))
    }

    /// Routes in the table.
    pub fn len(&self) -> usize {
        self.spans.len()
    }

    pub fn is_empty(&self) -> bool {
        self.spans.is_empty()
    }

    /// What loading found.
    pub fn stats(&self) -> &LoadStats {
        &self.stats
    }
}

fn push_level<A>(levels: &mut Vec<Level<A>>, len: u8, net: A, idx: u32) {
    match levels.iter_mut().find(|l| l.len == len) {
        Some(l) => l.nets.push((net, idx)),
        None => levels.push(Level {
            len,
            nets: vec![(net, idx)],
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn net(s: &str) -> IpNet {
        s.parse().unwrap()
    }

    const SAMPLE: &str = "\
# a CAIDA-style file
1.0.0.0\t24\t13335
10.0.0.0\t8\t64500
10.1.0.0\t16\t64501
10.1.2.0\t24\t64502_64503
10.1.2.128\t25\t64504,64505
192.0.2.0 24 AS64496
203.0.113.0/24\t64497
2001:db8::\t32\t64510
2001:db8:1::\t48\t64511
this is not a route
10.0.0.0\t33\t1
10.0.0.0\t8\tnot-an-asn
";

    #[test]
    fn longest_prefix_wins() {
        let t = Pfx2As::parse(SAMPLE.as_bytes());
        let r = t.lookup(ip("10.1.2.200")).unwrap();
        assert_eq!(r.net, net("10.1.2.128/25"));
        assert_eq!(r.origins, &[64504, 64505]);
        assert_eq!(r.asn(), Some(64504));
        let r = t.lookup(ip("10.1.2.5")).unwrap();
        assert_eq!(r.net, net("10.1.2.0/24"));
        assert_eq!(r.origins, &[64502, 64503]);
        assert_eq!(t.lookup(ip("10.1.3.1")).unwrap().net, net("10.1.0.0/16"));
        assert_eq!(t.lookup(ip("10.200.0.1")).unwrap().asn(), Some(64500));
        assert_eq!(t.lookup(ip("1.0.0.255")).unwrap().asn(), Some(13335));
        assert!(t.lookup(ip("1.0.1.0")).is_none());
        assert_eq!(t.lookup(ip("192.0.2.9")).unwrap().asn(), Some(64496));
        assert_eq!(t.lookup(ip("203.0.113.9")).unwrap().asn(), Some(64497));
        // IPv6, and an IPv4-mapped address looked up as IPv4
        assert_eq!(t.lookup(ip("2001:db8:1::5")).unwrap().asn(), Some(64511));
        assert_eq!(
            t.lookup(ip("2001:db8:2::5")).unwrap().net,
            net("2001:db8::/32")
        );
        assert!(t.lookup(ip("2001:db9::1")).is_none());
        assert_eq!(t.lookup(ip("::ffff:10.1.3.1")).unwrap().asn(), Some(64501));
    }

    #[test]
    fn bad_lines_are_counted() {
        let t = Pfx2As::parse(SAMPLE.as_bytes());
        assert_eq!(t.len(), 9);
        let s = t.stats();
        assert_eq!(s.bad_lines, 3);
        assert_eq!(s.multi_origin, 2);
        assert_eq!(s.examples[0], (11, "this is not a route".to_string()));
        assert_eq!(s.examples.len(), 3);
        assert_eq!(Pfx2As::parse(b"").len(), 0);
        assert!(Pfx2As::parse(b"\xff\xfe\n1.2.3.0\t24").is_empty());
        assert_eq!(Pfx2As::parse(b"\xff\xfe\n1.2.3.0\t24").stats().bad_lines, 2);
    }

    #[test]
    fn reverse_pivot() {
        let t = Pfx2As::parse(SAMPLE.as_bytes());
        assert_eq!(
            t.prefixes_of(64503).collect::<Vec<_>>(),
            vec![net("10.1.2.0/24")]
        );
        assert_eq!(
            t.prefixes_of(64500).collect::<Vec<_>>(),
            vec![net("10.0.0.0/8")]
        );
        assert_eq!(t.prefixes_of(1).count(), 0);
        assert!(t.originated_by(ip("10.9.9.9"), 64500));
        // inside 10/8 but in the more specific 10.1/16 of another AS
        assert!(!t.originated_by(ip("10.1.9.9"), 64500));
    }

    #[test]
    fn host_bits_and_duplicates() {
        let t = Pfx2As::parse(b"10.0.0.7\t24\t1\n10.0.0.0\t24\t2\n");
        assert_eq!(t.len(), 1);
        assert_eq!(t.stats().duplicates, 1);
        let r = t.lookup(ip("10.0.0.99")).unwrap();
        assert_eq!((r.net, r.asn()), (net("10.0.0.0/24"), Some(2)));
        // a default route
        let t = Pfx2As::parse(b"0.0.0.0\t0\t7\n::\t0\t8\n");
        assert_eq!(t.lookup(ip("8.8.8.8")).unwrap().asn(), Some(7));
        assert_eq!(t.lookup(ip("2001::1")).unwrap().asn(), Some(8));
    }

    #[test]
    fn files_plain_gzip_and_merged() {
        use std::io::Write;
        let dir = tempfile::tempdir().unwrap();
        let v4 = dir.path().join("v4.pfx2as");
        std::fs::write(&v4, "10.0.0.0\t8\t1\n").unwrap();
        let v6 = dir.path().join("v6.pfx2as.gz");
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(b"2001:db8::\t32\t2\n10.0.0.0\t8\t3\n")
            .unwrap();
        std::fs::write(&v6, gz.finish().unwrap()).unwrap();
        let t = Pfx2As::load_all(&[&v4, &v6]).unwrap();
        assert_eq!(t.len(), 2);
        assert_eq!(t.lookup(ip("10.1.1.1")).unwrap().asn(), Some(3));
        assert_eq!(t.lookup(ip("2001:db8::1")).unwrap().asn(), Some(2));
        let e = Pfx2As::load(&dir.path().join("missing")).unwrap_err();
        assert!(e.to_string().contains("missing"), "{e}");
    }

    /// The table against a brute-force scan of its routes, on random routes and addresses.
    #[test]
    fn matches_a_linear_scan() {
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let mut text = String::new();
        let mut routes = Vec::new();
        for i in 0..2000u32 {
            let a = Ipv4Addr::from((next() as u32) & 0xff0f_0000 | 0x0a00_0000);
            let len = 8 + (next() % 17) as u8;
            let n = Ipv4Net::new(a, len).unwrap().trunc();
            text.push_str(&format!("{}\t{}\t{}\n", n.network(), len, i + 1));
            routes.push((n, i + 1));
        }
        let t = Pfx2As::parse(text.as_bytes());
        for _ in 0..5000 {
            let a = Ipv4Addr::from((next() as u32) & 0xff0f_ffff | 0x0a00_0000);
            // the last route of the longest matching prefix
            let want = routes
                .iter()
                .filter(|(n, _)| n.contains(&a))
                .max_by_key(|(n, asn)| (n.prefix_len(), *asn))
                .map(|(_, asn)| *asn);
            assert_eq!(t.lookup(IpAddr::V4(a)).and_then(|r| r.asn()), want, "{a}");
        }
    }
}
