//! Passive DNS lines (type 8): `timestamp||client||server||class||query||rrtype||answer||ttl||count`.
//!
//! - The client IP is kept, replaced by its Crypto-PAn pseudonym (whatever its prefix), or
//!   dropped (an empty field).
//! - Timestamps are rounded down to a multiple of `round_secs` (the fraction becomes
//!   `.000000`).
//! - With `aggregate_secs`, lines are held in windows of that many seconds (by the line's
//!   own timestamp) and identical (class, query, rrtype, answer) lines of one window leave
//!   as one line: the window's start as timestamp, the summed count, the TTL of the last
//!   line, and the client and server if all lines had the same (else empty). A window
//!   closes when the clock passes its end or `aggregate_secs` after its first line
//!   arrived (a sensor whose clock runs ahead holds nothing longer than that).
//!
//! A line that does not parse (fields, timestamp, TTL, count, and the client IP when it is
//! pseudonymised) is dropped and counted: it might carry an address in the wrong place.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;

use d4_store::{AddressAction, PdnsPrivacy};
use memchr::memmem;

use super::cryptopan::Pseudonymiser;
use super::{Position, Pushed};

/// Bound of the (query, type, answer) entries held in open windows: past it the oldest
/// window closes early.
pub const MAX_HELD_ENTRIES: usize = 100_000;

/// One parsed line (fields borrowed from it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PdnsLine<'a> {
    pub secs: u64,
    pub ts: &'a [u8],
    pub client: &'a [u8],
    pub server: &'a [u8],
    pub class: &'a [u8],
    pub query: &'a [u8],
    pub rrtype: &'a [u8],
    pub answer: &'a [u8],
    pub ttl: &'a [u8],
    pub count: u64,
}

fn digits(b: &[u8]) -> bool {
    !b.is_empty() && b.len() <= 20 && b.iter().all(u8::is_ascii_digit)
}

fn number(b: &[u8]) -> Option<u64> {
    if !digits(b) {
        return None;
    }
    std::str::from_utf8(b).ok()?.parse().ok()
}

/// Parses one line (without its `\n`): 6 fields from the left, 2 from the right, the
/// answer between (a TXT answer may hold `||`).
pub fn parse(line: &[u8]) -> Option<PdnsLine<'_>> {
    let mut left: [&[u8]; 6] = [&[]; 6];
    let mut rest = line;
    for f in left.iter_mut() {
        let at = memmem::find(rest, b"||")?;
        *f = &rest[..at];
        rest = &rest[at + 2..];
    }
    let c = memmem::rfind(rest, b"||")?;
    let count = &rest[c + 2..];
    let rest = &rest[..c];
    let t = memmem::rfind(rest, b"||")?;
    let ttl = &rest[t + 2..];
    let answer = &rest[..t];
    let ts = left[0];
    let (secs, frac) = match memchr::memchr(b'.', ts) {
        Some(d) => (&ts[..d], Some(&ts[d + 1..])),
        None => (ts, None),
    };
    let secs = number(secs)?;
    if frac.is_some_and(|f| !digits(f)) || !digits(ttl) {
        return None;
    }
    Some(PdnsLine {
        secs,
        ts,
        client: left[1],
        server: left[2],
        class: left[3],
        query: left[4],
        rrtype: left[5],
        answer,
        ttl,
        count: number(count)?,
    })
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Key {
    class: Vec<u8>,
    query: Vec<u8>,
    rrtype: Vec<u8>,
    answer: Vec<u8>,
}

#[derive(Debug, Clone)]
struct Entry {
    key: Key,
    /// `None` once two lines disagreed.
    client: Option<Vec<u8>>,
    server: Option<Vec<u8>>,
    ttl: Vec<u8>,
    count: u64,
}

#[derive(Debug, Clone, Default)]
struct Window {
    first_arrival: u64,
    /// The earliest input position of a line held here.
    held: Option<Position>,
    index: HashMap<Key, usize>,
    entries: Vec<Entry>,
}

#[derive(Debug, Clone)]
pub struct PdnsTransform {
    settings: PdnsPrivacy,
    pseudo: Option<Pseudonymiser>,
    windows: BTreeMap<u64, Window>,
    held_entries: usize,
}

impl PdnsTransform {
    /// `pseudo` is required when the client IP is pseudonymised.
    pub fn new(settings: PdnsPrivacy, pseudo: Option<Pseudonymiser>) -> PdnsTransform {
        PdnsTransform {
            settings,
            pseudo,
            windows: BTreeMap::new(),
            held_entries: 0,
        }
    }

    fn round(&self, secs: u64) -> u64 {
        match self.settings.round_secs {
            0 => secs,
            r => secs - secs % r,
        }
    }

    /// One line of the input.
    pub fn line(
        &mut self,
        line: &[u8],
        at: Position,
        now: u64,
        out: &mut Vec<u8>,
        pushed: &mut Pushed,
    ) {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.iter().all(u8::is_ascii_whitespace) {
            return;
        }
        let Some(l) = parse(line) else {
            pushed.dropped += 1;
            return;
        };
        let client: Vec<u8> = match self.settings.client_ip {
            AddressAction::Keep => l.client.to_vec(),
            AddressAction::Drop => Vec::new(),
            AddressAction::Pseudonymise if l.client.is_empty() => Vec::new(),
            AddressAction::Pseudonymise => {
                let ip = std::str::from_utf8(l.client)
                    .ok()
                    .and_then(|s| s.parse::<IpAddr>().ok());
                match (ip, self.pseudo.as_mut()) {
                    (Some(ip), Some(p)) => p.ip(ip).to_string().into_bytes(),
                    _ => {
                        pushed.dropped += 1;
                        return;
                    }
                }
            }
        };
        if self.settings.aggregate_secs == 0 {
            if self.settings.round_secs == 0 {
                out.extend_from_slice(l.ts);
            } else {
                out.extend_from_slice(format!("{}.000000", self.round(l.secs)).as_bytes());
            }
            write_rest(out, &client, &l, l.ttl, l.count);
            pushed.units += 1;
            return;
        }
        self.hold(l, client, at, now, out, pushed);
    }

    fn hold(
        &mut self,
        l: PdnsLine<'_>,
        client: Vec<u8>,
        at: Position,
        now: u64,
        out: &mut Vec<u8>,
        pushed: &mut Pushed,
    ) {
        let agg = self.settings.aggregate_secs;
        let w = l.secs - l.secs % agg;
        let win = self.windows.entry(w).or_insert_with(|| Window {
            first_arrival: now,
            ..Window::default()
        });
        win.held = Some(win.held.map_or(at, |h| h.min(at)));
        let key = Key {
            class: l.class.to_vec(),
            query: l.query.to_vec(),
            rrtype: l.rrtype.to_vec(),
            answer: l.answer.to_vec(),
        };
        match win.index.get(&key) {
            Some(&i) => {
                let e = &mut win.entries[i];
                if e.client.as_deref() != Some(client.as_slice()) {
                    e.client = None;
                }
                if e.server.as_deref() != Some(l.server) {
                    e.server = None;
                }
                e.ttl = l.ttl.to_vec();
                e.count = e.count.saturating_add(l.count);
            }
            None => {
                win.index.insert(key.clone(), win.entries.len());
                win.entries.push(Entry {
                    key,
                    client: Some(client),
                    server: Some(l.server.to_vec()),
                    ttl: l.ttl.to_vec(),
                    count: l.count,
                });
                self.held_entries += 1;
            }
        }
        while self.held_entries > MAX_HELD_ENTRIES {
            let Some((w, win)) = self.windows.pop_first() else {
                break;
            };
            self.emit(w, win, out, pushed);
        }
    }

    fn emit(&mut self, w: u64, win: Window, out: &mut Vec<u8>, pushed: &mut Pushed) {
        self.held_entries = self.held_entries.saturating_sub(win.entries.len());
        let ts = format!("{}.000000", self.round(w));
        for e in win.entries {
            out.extend_from_slice(ts.as_bytes());
            let l = PdnsLine {
                secs: w,
                ts: &[],
                client: &[],
                server: e.server.as_deref().unwrap_or_default(),
                class: &e.key.class,
                query: &e.key.query,
                rrtype: &e.key.rrtype,
                answer: &e.key.answer,
                ttl: &[],
                count: e.count,
            };
            write_rest(
                out,
                e.client.as_deref().unwrap_or_default(),
                &l,
                &e.ttl,
                e.count,
            );
            pushed.units += 1;
        }
    }

    /// Closes the windows whose time is over.
    pub fn tick(&mut self, now: u64, out: &mut Vec<u8>) -> Pushed {
        let mut pushed = Pushed::default();
        let agg = self.settings.aggregate_secs;
        let closing: Vec<u64> = self
            .windows
            .iter()
            .filter(|(w, win)| {
                now >= w.saturating_add(agg) || now >= win.first_arrival.saturating_add(agg)
            })
            .map(|(w, _)| *w)
            .collect();
        for w in closing {
            if let Some(win) = self.windows.remove(&w) {
                self.emit(w, win, out, &mut pushed);
            }
        }
        pushed
    }

    /// Closes every window.
    pub fn finish(&mut self, out: &mut Vec<u8>) -> Pushed {
        let mut pushed = Pushed::default();
        while let Some((w, win)) = self.windows.pop_first() {
            self.emit(w, win, out, &mut pushed);
        }
        pushed
    }

    /// The earliest input position of a line in an open window.
    pub fn held(&self) -> Option<Position> {
        self.windows.values().filter_map(|w| w.held).min()
    }
}

/// Everything after the timestamp, with the `\n`.
fn write_rest(out: &mut Vec<u8>, client: &[u8], l: &PdnsLine<'_>, ttl: &[u8], count: u64) {
    for f in [client, l.server, l.class, l.query, l.rrtype, l.answer, ttl] {
        out.extend_from_slice(b"||");
        out.extend_from_slice(f);
    }
    out.extend_from_slice(format!("||{count}\n").as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: [u8; 32] = [
        21, 34, 23, 141, 51, 164, 207, 128, 19, 10, 91, 22, 73, 144, 125, 16, 216, 152, 143, 131,
        121, 121, 101, 39, 98, 87, 76, 45, 42, 132, 34, 2,
    ];
    const LINE: &[u8] =
        b"1322849924.408856||10.1.1.1||8.8.8.8||IN||upload.youtube.com.||A||74.125.43.117||46587||5";

    fn at(seq: u64) -> Position {
        Position { seq, offset: 0 }
    }

    fn run(t: &mut PdnsTransform, lines: &[&[u8]], now: u64) -> (String, Pushed) {
        let mut out = Vec::new();
        let mut p = Pushed::default();
        for (i, l) in lines.iter().enumerate() {
            t.line(l, at(i as u64), now, &mut out, &mut p);
        }
        (String::from_utf8(out).unwrap(), p)
    }

    #[test]
    fn parses_the_protocol_example_and_txt_answers() {
        let l = parse(LINE).unwrap();
        assert_eq!(l.secs, 1322849924);
        assert_eq!(l.client, b"10.1.1.1");
        assert_eq!(l.answer, b"74.125.43.117");
        assert_eq!(l.count, 5);
        let txt = b"1.5||10.1.1.1||8.8.8.8||IN||x.org.||TXT||\"a||b\"||60||1";
        assert_eq!(parse(txt).unwrap().answer, b"\"a||b\"");
        for bad in [
            &b"garbage"[..],
            b"1.5||10.1.1.1||8.8.8.8||IN||x.org.||A||1.2.3.4||60",
            b"x.5||10.1.1.1||8.8.8.8||IN||x.org.||A||1.2.3.4||60||1",
            b"1.5||10.1.1.1||8.8.8.8||IN||x.org.||A||1.2.3.4||60||many",
            b"1.5||10.1.1.1||8.8.8.8||IN||x.org.||A||1.2.3.4||-1||1",
        ] {
            assert!(parse(bad).is_none(), "{}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn client_ip_keep_pseudonymise_drop() {
        let mut keep = PdnsTransform::new(PdnsPrivacy::default(), None);
        let (out, p) = run(&mut keep, &[LINE], 0);
        assert_eq!(out.as_bytes(), [LINE, b"\n"].concat());
        assert_eq!((p.units, p.dropped), (1, 0));

        let settings = PdnsPrivacy {
            client_ip: AddressAction::Pseudonymise,
            ..PdnsPrivacy::default()
        };
        let mut ps = PdnsTransform::new(settings, Some(Pseudonymiser::new(&KEY)));
        let line = b"1.5||128.11.68.132||8.8.8.8||IN||x.org.||A||1.2.3.4||60||1";
        let (out, _) = run(
            &mut ps,
            &[
                line,
                b"1.5||not-an-ip||8.8.8.8||IN||x.org.||A||1.2.3.4||60||1",
            ],
            0,
        );
        assert_eq!(
            out,
            "1.5||135.242.180.132||8.8.8.8||IN||x.org.||A||1.2.3.4||60||1\n"
        );

        let settings = PdnsPrivacy {
            client_ip: AddressAction::Drop,
            round_secs: 60,
            ..PdnsPrivacy::default()
        };
        let mut d = PdnsTransform::new(settings, None);
        let (out, p) = run(&mut d, &[LINE, b"bad line"], 0);
        assert_eq!(
            out,
            "1322849880.000000||||8.8.8.8||IN||upload.youtube.com.||A||74.125.43.117||46587||5\n"
        );
        assert_eq!((p.units, p.dropped), (1, 1));
    }

    #[test]
    fn aggregation_windows() {
        let settings = PdnsPrivacy {
            client_ip: AddressAction::Keep,
            round_secs: 0,
            aggregate_secs: 60,
        };
        let mut t = PdnsTransform::new(settings, None);
        let lines: [&[u8]; 5] = [
            b"120.1||10.0.0.1||9.9.9.9||IN||a.org.||A||1.2.3.4||60||2",
            b"130.1||10.0.0.2||9.9.9.9||IN||a.org.||A||1.2.3.4||30||3",
            b"131.0||10.0.0.1||9.9.9.9||IN||b.org.||A||1.2.3.4||60||1",
            b"185.0||10.0.0.1||9.9.9.9||IN||a.org.||A||1.2.3.4||60||1",
            b"170.0||10.0.0.1||9.9.9.9||IN||a.org.||A||5.6.7.8||60||1",
        ];
        let (out, p) = run(&mut t, &lines, 150);
        assert_eq!((out.as_str(), p.units), ("", 0));
        assert_eq!(t.held(), Some(at(0)));
        let mut out = Vec::new();
        // 180: window [120, 180) closes
        let p = t.tick(180, &mut out);
        assert_eq!(p.units, 3);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "120.000000||||9.9.9.9||IN||a.org.||A||1.2.3.4||30||5\n\
             120.000000||10.0.0.1||9.9.9.9||IN||b.org.||A||1.2.3.4||60||1\n\
             120.000000||10.0.0.1||9.9.9.9||IN||a.org.||A||5.6.7.8||60||1\n"
        );
        assert_eq!(t.held(), Some(at(3)));
        let mut out = Vec::new();
        assert_eq!(t.finish(&mut out).units, 1);
        assert_eq!(t.held(), None);
    }

    #[test]
    fn a_window_is_held_no_longer_than_its_length_after_arrival() {
        let settings = PdnsPrivacy {
            aggregate_secs: 10,
            ..PdnsPrivacy::default()
        };
        let mut t = PdnsTransform::new(settings, None);
        // the sensor's clock is far ahead
        run(&mut t, &[b"9000.0||c||s||IN||a.||A||1||1||1"], 100);
        let mut out = Vec::new();
        assert_eq!(t.tick(105, &mut out).units, 0);
        assert_eq!(t.tick(110, &mut out).units, 1);
    }

    #[test]
    fn held_entries_are_bounded() {
        let settings = PdnsPrivacy {
            aggregate_secs: 10,
            ..PdnsPrivacy::default()
        };
        let mut t = PdnsTransform::new(settings, None);
        let mut out = Vec::new();
        let mut p = Pushed::default();
        for i in 0..(MAX_HELD_ENTRIES as u64 + 5) {
            let line = format!("{}.0||c||s||IN||q{i}.||A||1||1||1", i / 1000 * 10);
            t.line(line.as_bytes(), at(i), 0, &mut out, &mut p);
        }
        assert!(t.held_entries <= MAX_HELD_ENTRIES);
        assert_eq!(p.units, 1000);
    }
}
