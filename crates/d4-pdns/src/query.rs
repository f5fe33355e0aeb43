//! From what a user typed to a [`Lookup`]: names, IPs, CIDR networks, `*.suffix` wildcards,
//! `prefix*` searches; deterministic ordering and pagination of the answer (cursors that
//! stay valid while records are ingested between page requests). [`crate::page`] picks a
//! page while the records stream by.

use std::cmp::Ordering;
use std::net::IpAddr;

use ipnet::IpNet;

use crate::parse::normalize_name;
use crate::store::{Lookup, Record};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QueryError {
    #[error("empty query")]
    Empty,
    #[error("`{0}` is not a domain name, IP address, CIDR network, `*.suffix` or `prefix*`")]
    Invalid(String),
    #[error("prefix search needs at least {MIN_PREFIX} characters before `*`")]
    PrefixTooShort,
}

/// Shortest prefix accepted for `prefix*` (a one-letter prefix would scan everything).
pub const MIN_PREFIX: usize = 3;

/// `/query/<q>`: an IP → records whose rdata is that address; `a.b.c.d/n` → CIDR search;
/// `*.example.com` → every name under example.com; `www.exa*` → names starting so; else
/// the records of one name.
pub fn parse_query(q: &str) -> Result<Lookup, QueryError> {
    let q = q.trim();
    if q.is_empty() {
        return Err(QueryError::Empty);
    }
    if let Ok(ip) = q.parse::<IpAddr>() {
        return Ok(Lookup::Rdata(vec![ip.to_string()]));
    }
    if q.contains('/') {
        return q
            .parse::<IpNet>()
            .map(|n| Lookup::Cidr(n.trunc()))
            .map_err(|_| QueryError::Invalid(q.to_string()));
    }
    if let Some(suffix) = q.strip_prefix("*.") {
        let n = normalize_name(suffix).ok_or_else(|| QueryError::Invalid(q.to_string()))?;
        return Ok(Lookup::Suffix(n.into_owned()));
    }
    if let Some(prefix) = q.strip_suffix('*') {
        if prefix.len() < MIN_PREFIX {
            return Err(QueryError::PrefixTooShort);
        }
        if prefix.contains('*') || prefix.bytes().any(|b| b <= b' ') {
            return Err(QueryError::Invalid(q.to_string()));
        }
        return Ok(Lookup::Prefix(prefix.to_ascii_lowercase()));
    }
    let n = normalize_name(q).ok_or_else(|| QueryError::Invalid(q.to_string()))?;
    Ok(Lookup::Name(n.into_owned()))
}

/// `/fquery/<value>`: the records whose rdata is exactly `value` — as typed (TXT keeps its
/// case), as a normalized name, and as a canonical IP address.
pub fn parse_fquery(v: &str) -> Result<Lookup, QueryError> {
    if v.is_empty() {
        return Err(QueryError::Empty);
    }
    let mut values = vec![v.to_string()];
    if let Ok(ip) = v.trim().parse::<IpAddr>() {
        values.push(ip.to_string());
    } else if let Some(n) = normalize_name(v.trim()) {
        values.push(n.into_owned());
    }
    Ok(Lookup::Rdata(values))
}

/// The answer order: last seen, newest first; then name, type, rdata (a total order, so a
/// position in it is well defined).
pub fn sort_records(records: &mut [Record]) {
    records.sort_unstable_by(order);
}

pub(crate) fn order(a: &Record, b: &Record) -> Ordering {
    b.time_last_ms
        .cmp(&a.time_last_ms)
        .then_with(|| a.rrname.cmp(&b.rrname))
        .then_with(|| a.rrtype.cmp(&b.rrtype))
        .then_with(|| a.rdata.cmp(&b.rdata))
}

/// Longest cursor payload (bytes): 3 decimal digits per byte keeps the cursor under the
/// 4,300 digits Python's `int()` accepts (PyPDNS parses `x-dribble-cursor` with `int`).
const MAX_CURSOR_PAYLOAD: usize = 1200;
const CURSOR_VERSION: u8 = 1;
/// Longest payload [`Cursor::decode`] accepts (bounds what hostile input can make it
/// allocate): the rdata part is cut to [`MAX_CURSOR_PAYLOAD`], a name (at most
/// `parse::MAX_NAME_LEN` from the parser, at most a u16 length on the wire) is kept whole.
const MAX_CURSOR_DECODE: usize = MAX_CURSOR_PAYLOAD + u16::MAX as usize;

/// Where the next page starts: after the last record returned, by its sort key, plus the
/// store's write watermark at that request.
///
/// On the wire (`x-dribble-cursor`, `dribble-paginate-cursor`) it is a positive decimal
/// integer, as CIRCL's service and PyPDNS expect: `9` followed by 3 digits per byte of
/// `version, watermark(8), time_last_ms(8), rrtype(2), skip(4), truncated(1),
/// name length(2), rrname, rdata`. An rdata too long for the cursor is cut; the cursor
/// then counts the records of the same (time_last, rrname, rrtype) and rdata prefix
/// already returned (`skip`). A plain small integer is still accepted as an offset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor {
    /// The store's [`crate::store::RecordStore::watermark`] when the page was answered:
    /// records changed after it that moved ahead of the position are sent again.
    pub watermark: u64,
    pub time_last_ms: u64,
    pub rrname: String,
    pub rrtype: u16,
    /// The rdata of the last record returned, or its first bytes when `truncated`.
    pub rdata: String,
    pub truncated: bool,
    /// With `truncated`: records of the (time_last, rrname, rrtype, rdata prefix) group
    /// already returned.
    pub skip: u32,
}

/// A page request's position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Position {
    /// The first page.
    Start,
    /// An offset into the answer (clients that compute offsets; not stable under ingest).
    Offset(usize),
    /// After a record, from a previous answer's cursor.
    After(Cursor),
}

impl Cursor {
    /// The wire form (see [`Cursor`]).
    pub fn encode(&self) -> String {
        let mut p = Vec::with_capacity(28 + self.rrname.len() + self.rdata.len());
        p.push(CURSOR_VERSION);
        p.extend_from_slice(&self.watermark.to_be_bytes());
        p.extend_from_slice(&self.time_last_ms.to_be_bytes());
        p.extend_from_slice(&self.rrtype.to_be_bytes());
        p.extend_from_slice(&self.skip.to_be_bytes());
        p.push(u8::from(self.truncated));
        // A name longer than a u16 length (never from the parser, whose names stay under
        // MAX_NAME_LEN) is written empty rather than with a wrapped length.
        let name = match u16::try_from(self.rrname.len()) {
            Ok(n) => {
                p.extend_from_slice(&n.to_be_bytes());
                self.rrname.as_bytes()
            }
            Err(_) => {
                p.extend_from_slice(&0u16.to_be_bytes());
                &[][..]
            }
        };
        p.extend_from_slice(name);
        p.extend_from_slice(self.rdata.as_bytes());
        let mut s = String::with_capacity(1 + 3 * p.len());
        s.push('9');
        for b in p {
            s.push(char::from(b'0' + b / 100));
            s.push(char::from(b'0' + b / 10 % 10));
            s.push(char::from(b'0' + b % 10));
        }
        s
    }

    /// Parses the wire form; `None` when it is not a cursor of this server.
    pub fn decode(s: &str) -> Option<Cursor> {
        let digits = s.strip_prefix('9')?.as_bytes();
        // Hostile input: nothing longer than the longest cursor this server writes is
        // decoded.
        if digits.len() > 3 * MAX_CURSOR_DECODE
            || digits.len() % 3 != 0
            || !digits.iter().all(u8::is_ascii_digit)
        {
            return None;
        }
        let p: Vec<u8> = digits
            .chunks_exact(3)
            .map(|c| {
                let v = u16::from(c[0] - b'0') * 100
                    + u16::from(c[1] - b'0') * 10
                    + u16::from(c[2] - b'0');
                u8::try_from(v).ok()
            })
            .collect::<Option<_>>()?;
        let (&ver, rest) = p.split_first()?;
        if ver != CURSOR_VERSION || rest.len() < 25 {
            return None;
        }
        let u64_at = |i: usize| rest[i..i + 8].try_into().ok().map(u64::from_be_bytes);
        let watermark = u64_at(0)?;
        let time_last_ms = u64_at(8)?;
        let rrtype = u16::from_be_bytes([rest[16], rest[17]]);
        let skip = u32::from_be_bytes([rest[18], rest[19], rest[20], rest[21]]);
        let truncated = match rest[22] {
            0 => false,
            1 => true,
            _ => return None,
        };
        let nlen = usize::from(u16::from_be_bytes([rest[23], rest[24]]));
        let name = rest.get(25..25 + nlen)?;
        let rdata = rest.get(25 + nlen..)?;
        Some(Cursor {
            watermark,
            time_last_ms,
            rrname: String::from_utf8(name.to_vec()).ok()?,
            rrtype,
            rdata: String::from_utf8(rdata.to_vec()).ok()?,
            truncated,
            skip,
        })
    }

    /// How the cursor's key compares to a record, in answer order (`Less`: the cursor's
    /// position is before the record). A truncated rdata compares as its prefix.
    pub(crate) fn cmp_record(&self, r: &Record) -> Ordering {
        r.time_last_ms
            .cmp(&self.time_last_ms)
            .then_with(|| self.rrname.as_str().cmp(r.rrname.as_str()))
            .then_with(|| self.rrtype.cmp(&r.rrtype))
            .then_with(|| self.rdata.as_str().cmp(r.rdata.as_str()))
    }

    /// The cursor just after `records[i]` of a sorted answer.
    pub(crate) fn after(records: &[Record], i: usize, watermark: u64) -> Cursor {
        let r = &records[i];
        let room = MAX_CURSOR_PAYLOAD.saturating_sub(28 + r.rrname.len());
        let mut cut = r.rdata.len().min(room);
        while !r.rdata.is_char_boundary(cut) {
            cut -= 1;
        }
        let mut c = Cursor {
            watermark,
            time_last_ms: r.time_last_ms,
            rrname: r.rrname.clone(),
            rrtype: r.rrtype,
            rdata: r.rdata[..cut].to_string(),
            truncated: cut < r.rdata.len(),
            skip: 0,
        };
        if c.truncated {
            // Records of the group (same time, name, type, rdata prefix) up to and with `i`.
            let first = records.partition_point(|x| c.cmp_record(x) == Ordering::Greater);
            c.skip = u32::try_from(i + 1 - first.min(i + 1)).unwrap_or(u32::MAX);
        }
        c
    }
}

/// A parsed `dribble-paginate-cursor` / `?cursor=`: a cursor of this server, or a plain
/// offset (up to 19 digits). `None` when it is neither.
pub fn parse_position(s: &str) -> Option<Position> {
    let s = s.trim();
    if s.is_empty() {
        return Some(Position::Start);
    }
    if s.len() <= 19 {
        return s.parse::<usize>().ok().map(|n| match n {
            0 => Position::Start,
            n => Position::Offset(n),
        });
    }
    Cursor::decode(s).map(Position::After)
}

/// One page of a sorted answer.
#[derive(Debug, PartialEq, Eq)]
pub struct Page<'a> {
    /// Records changed (or added) since the previous page's watermark that now sort ahead
    /// of the cursor: sent again so that no record is missed (in answer order, before
    /// `records`).
    pub moved: Vec<&'a Record>,
    pub records: &'a [Record],
    /// Where the next page starts; `None` on the last page.
    pub next: Option<Cursor>,
}

/// A page of `records` (sorted with [`sort_records`]) at `pos`, at most `count` records
/// (plus the moved ones); `watermark` is the store's watermark read before the lookup.
///
/// Stable under ingest: a record present at the first request whose sort key does not
/// change is returned exactly once; a record that changes between two requests (its
/// `time_last` only grows, so it moves towards the front) is sent again in the next page
/// (`moved`) if it moved ahead of the cursor, so it is never missed but may come twice.
pub fn page_at<'a>(
    records: &'a [Record],
    pos: &Position,
    count: Option<usize>,
    watermark: u64,
) -> Page<'a> {
    let (start, moved) = match pos {
        Position::Start => (0, Vec::new()),
        Position::Offset(n) => ((*n).min(records.len()), Vec::new()),
        Position::After(c) => {
            let mut start = records.partition_point(|r| c.cmp_record(r) != Ordering::Less);
            if c.truncated {
                let first = records.partition_point(|r| c.cmp_record(r) == Ordering::Greater);
                start = first.saturating_add(c.skip as usize).min(records.len());
            }
            let moved = records[..start]
                .iter()
                .filter(|r| r.seq > c.watermark)
                .collect();
            (start, moved)
        }
    };
    let end = match count {
        Some(c) => start.saturating_add(c).min(records.len()),
        None => records.len(),
    };
    let next =
        (end < records.len() && end > start).then(|| Cursor::after(records, end - 1, watermark));
    Page {
        moved,
        records: &records[start..end],
        next,
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    #[test]
    fn targets() {
        assert_eq!(
            parse_query("WWW.Example.com.").unwrap(),
            Lookup::Name("www.example.com".into())
        );
        assert_eq!(
            parse_query("2001:DB8::0:1").unwrap(),
            Lookup::Rdata(vec!["2001:db8::1".into()])
        );
        assert_eq!(
            parse_query("10.1.2.3/8").unwrap(),
            Lookup::Cidr("10.0.0.0/8".parse().unwrap())
        );
        assert_eq!(
            parse_query("*.Example.com").unwrap(),
            Lookup::Suffix("example.com".into())
        );
        assert_eq!(
            parse_query("www.ex*").unwrap(),
            Lookup::Prefix("www.ex".into())
        );
        assert_eq!(parse_query("w*"), Err(QueryError::PrefixTooShort));
        assert!(parse_query("10.0.0.0/99").is_err());
        assert!(parse_query("a b").is_err());
        assert!(parse_query("").is_err());
    }

    pub(crate) fn rec(name: &str, last: u64, rdata: &str, seq: u64) -> Record {
        Record {
            rrname: name.into(),
            rrtype: 1,
            rdata: rdata.into(),
            time_first_ms: 0,
            time_last_ms: last,
            count: 1,
            sensors: vec![],
            seq,
        }
    }

    #[test]
    fn offsets_still_work() {
        let mut r: Vec<Record> = (0..5)
            .map(|i| rec(&format!("n{i}"), i, "1.1.1.1", 1))
            .collect();
        sort_records(&mut r);
        let p = page_at(&r, &Position::Start, Some(2), 1);
        assert_eq!(p.records, &r[..2]);
        let p = page_at(&r, &Position::Offset(4), Some(2), 1);
        assert_eq!((p.records, p.next), (&r[4..5], None));
        assert!(page_at(&r, &Position::Offset(9), Some(2), 1)
            .records
            .is_empty());
        assert_eq!(page_at(&r, &Position::Start, None, 1).records, &r[..]);
        assert_eq!(parse_position("12"), Some(Position::Offset(12)));
        assert_eq!(parse_position("0"), Some(Position::Start));
        assert_eq!(parse_position("x"), None);
        assert_eq!(parse_position("9".repeat(40).as_str()), None);
    }

    #[test]
    fn cursor_round_trip_and_python_int() {
        let c = Cursor {
            watermark: 7,
            time_last_ms: 1_600_000_000_123,
            rrname: "www.example.com".into(),
            rrtype: 16,
            rdata: "\"v=spf1 ~all\"".into(),
            truncated: false,
            skip: 0,
        };
        let s = c.encode();
        assert!(s.starts_with('9') && s.bytes().all(|b| b.is_ascii_digit()));
        assert_eq!(parse_position(&s), Some(Position::After(c)));
        // A huge rdata is cut so the cursor stays under Python's 4,300-digit int() limit.
        let mut r = vec![
            rec("a", 5, &"x".repeat(5000), 1),
            rec("a", 5, &"x".repeat(6000), 1),
            rec("b", 4, "z", 1),
        ];
        sort_records(&mut r);
        let p = page_at(&r, &Position::Start, Some(1), 1);
        let c = p.next.unwrap();
        assert!(c.truncated && c.skip == 1 && c.encode().len() < 4300);
        let p2 = page_at(&r, &Position::After(c), Some(1), 1);
        assert_eq!(p2.records, &r[1..2]);
        let c = p2.next.unwrap();
        assert_eq!(c.skip, 2);
        assert_eq!(
            page_at(&r, &Position::After(c), Some(5), 1).records,
            &r[2..]
        );
    }

    #[test]
    fn oversized_cursor_refused_before_decoding() {
        let c = Cursor {
            watermark: 1,
            time_last_ms: 2,
            rrname: "a".repeat(10),
            rrtype: 1,
            rdata: "x".repeat(MAX_CURSOR_DECODE),
            truncated: false,
            skip: 0,
        };
        // Valid digits, but longer than anything this server writes.
        assert_eq!(Cursor::decode(&c.encode()), None);
        let huge = format!("9{}", "001".repeat(1_000_000));
        assert_eq!(parse_position(&huge), None);
    }

    #[test]
    fn name_too_long_for_u16_length_is_not_wrapped() {
        let c = Cursor {
            watermark: 1,
            time_last_ms: 2,
            rrname: "a".repeat(65_536 + 3),
            rrtype: 1,
            rdata: "x".into(),
            truncated: false,
            skip: 0,
        };
        // With a wrapped length (3) the name would decode as "aaa" and the rest as rdata.
        let d = Cursor::decode(&c.encode());
        assert!(d.is_none_or(|d| d.rrname.is_empty() && d.rdata == "x"));
    }

    proptest::proptest! {
        #[test]
        fn cursor_decode_never_panics(s in "9[0-9]{0,120}|[0-9a-z]{0,40}") {
            let _ = parse_position(&s);
        }

        #[test]
        fn cursor_round_trips(w: u64, t: u64, ty: u16, skip: u32, trunc: bool,
                              name in "[a-z0-9.-]{0,40}", rdata in "\\PC{0,40}") {
            let c = Cursor { watermark: w, time_last_ms: t, rrname: name, rrtype: ty,
                             rdata, truncated: trunc, skip };
            proptest::prop_assert_eq!(Cursor::decode(&c.encode()), Some(c));
        }
    }

    #[test]
    fn stable_under_ingest() {
        // 20 records, watermark 3.
        let mut r: Vec<Record> = (0..20)
            .map(|i| rec(&format!("n{i:02}"), 100 + i % 5, "1.1.1.1", 3))
            .collect();
        sort_records(&mut r);
        let p1 = page_at(&r, &Position::Start, Some(6), 3);
        let got1: Vec<Record> = p1.records.to_vec();
        let c1 = p1.next.unwrap();
        // Between pages: new records before and after the cursor, ties with it, and an
        // unseen record updated (moved to the front).
        let mut r2 = r.clone();
        r2.push(rec("a-new-first", 1000, "2.2.2.2", 4));
        r2.push(rec("zz-new-last", 1, "2.2.2.2", 4));
        r2.push(rec(&c1.rrname, c1.time_last_ms, "0.0.0.0", 4)); // sorts just before the cursor
        r2.push(rec(&c1.rrname, c1.time_last_ms, "9.9.9.9", 4)); // just after
        let moved = r2.iter().position(|x| x.rrname == "n19").unwrap();
        r2[moved].time_last_ms = 2000;
        r2[moved].seq = 4;
        sort_records(&mut r2);
        let mut all = got1;
        let mut pos = Position::After(c1);
        for _ in 0..20 {
            let p = page_at(&r2, &pos, Some(6), 4);
            all.extend(p.moved.iter().map(|x| (*x).clone()));
            all.extend(p.records.iter().cloned());
            match p.next {
                Some(c) => pos = Position::After(c),
                None => break,
            }
        }
        for orig in &r {
            let n = all
                .iter()
                .filter(|x| x.rrname == orig.rrname && x.rdata == orig.rdata)
                .count();
            if orig.rrname == "n19" {
                assert!(n >= 1, "moved record missed");
            } else {
                assert_eq!(n, 1, "{} seen {n} times", orig.rrname);
            }
        }
    }
}
