//! Blocked sorted sets: the `name_blocks` and `rdata_blocks` index tables (layout 3).
//!
//! A set of byte strings (index keys) is kept as blocks of ~1 KiB, each block one redb
//! entry: key = the block's last (greatest) member, value = its members in order, each
//! `varint(bytes shared with the previous member) varint(rest length) rest` (prefix
//! compression: neighbouring index keys share most of their bytes). The block holding `m`
//! is the first entry whose key is `>= m` (one range seek); a member greater than every
//! key goes to the last block.
//!
//! Why: a redb insert costs a tree descent, a page copy-on-write and a leaf rebuild
//! whatever the entry's size, so one entry per index key made an all-new record cost two
//! index inserts. A batch's index keys are sorted, so merging them block by block costs
//! one seek and one write per block touched, however many keys land in it.

use std::ops::Bound;

use redb::{ReadableTable, Table};

/// A block is split once its members' bytes reach this much.
pub(super) const MAX_BLOCK: usize = 2048;
/// The size the pieces of a split block aim at.
const TARGET_BLOCK: usize = 1024;

fn put_varint(mut n: usize, out: &mut Vec<u8>) {
    while n >= 0x80 {
        out.push((n as u8) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

fn get_varint(b: &[u8], pos: &mut usize) -> Option<usize> {
    let mut n = 0usize;
    for shift in (0..35).step_by(7) {
        let byte = *b.get(*pos)?;
        *pos += 1;
        n |= usize::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Some(n);
        }
    }
    None
}

/// Calls `visit` with every member of an encoded block, in order, until it returns
/// `Ok(false)`. Returns `Ok(false)` when stopped early. A damaged block ends the walk.
pub(super) fn for_each<E>(
    block: &[u8],
    cur: &mut Vec<u8>,
    visit: &mut dyn FnMut(&[u8]) -> Result<bool, E>,
) -> Result<bool, E> {
    cur.clear();
    let mut pos = 0;
    while pos < block.len() {
        let (Some(shared), Some(len)) = (get_varint(block, &mut pos), get_varint(block, &mut pos))
        else {
            break;
        };
        let Some(rest) = block.get(pos..pos + len) else {
            break;
        };
        pos += len;
        cur.truncate(shared);
        cur.extend_from_slice(rest);
        if !visit(cur)? {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Members decoded into one buffer (no allocation per member).
#[derive(Default)]
pub(super) struct Members {
    bytes: Vec<u8>,
    ends: Vec<usize>,
}

impl Members {
    fn clear(&mut self) {
        self.bytes.clear();
        self.ends.clear();
    }
    fn push(&mut self, m: &[u8]) {
        self.bytes.extend_from_slice(m);
        self.ends.push(self.bytes.len());
    }
    fn len(&self) -> usize {
        self.ends.len()
    }
    fn get(&self, i: usize) -> &[u8] {
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        &self.bytes[start..self.ends[i]]
    }
    fn decode(&mut self, block: &[u8]) {
        self.clear();
        let mut cur = Vec::new();
        let _ = for_each::<()>(block, &mut cur, &mut |m| {
            self.push(m);
            Ok(true)
        });
    }
}

/// Encodes `members[range]` as one block.
fn encode(members: &Members, from: usize, to: usize, out: &mut Vec<u8>) {
    out.clear();
    let mut prev: &[u8] = &[];
    for i in from..to {
        let m = members.get(i);
        let shared = prev.iter().zip(m).take_while(|(a, b)| a == b).count();
        put_varint(shared, out);
        put_varint(m.len() - shared, out);
        out.extend_from_slice(&m[shared..]);
        prev = m;
    }
}

/// Writes `members` (sorted, distinct) as one or more blocks (split evenly when they are
/// more than [`MAX_BLOCK`] bytes).
fn write_blocks(
    table: &mut Table<&[u8], &[u8]>,
    members: &Members,
    buf: &mut Vec<u8>,
) -> Result<(), redb::StorageError> {
    let n = members.len();
    if n == 0 {
        return Ok(());
    }
    let bytes = members.bytes.len() + 2 * n;
    let pieces = if bytes <= MAX_BLOCK {
        1
    } else {
        bytes.div_ceil(TARGET_BLOCK)
    }
    .min(n);
    for p in 0..pieces {
        let (from, to) = (p * n / pieces, (p + 1) * n / pieces);
        encode(members, from, to, buf);
        table.insert(members.get(to - 1), buf.as_slice())?;
    }
    Ok(())
}

/// A block read for a merge: (key, value, whether it is the last block reached because
/// the member is past every key).
type Found = Option<(Vec<u8>, Vec<u8>, bool)>;

/// The block holding `m` (first key `>= m`), or the last block when `m` is past every key.
fn find(table: &Table<&[u8], &[u8]>, m: &[u8]) -> Result<Found, redb::StorageError> {
    if let Some(item) = table
        .range::<&[u8]>((Bound::Included(m), Bound::Unbounded))?
        .next()
    {
        let (k, v) = item?;
        return Ok(Some((k.value().to_vec(), v.value().to_vec(), false)));
    }
    Ok(table
        .last()?
        .map(|(k, v)| (k.value().to_vec(), v.value().to_vec(), true)))
}

/// Adds `members` (sorted, distinct) to the set; returns how many were not in it yet.
pub(super) fn insert_sorted(
    table: &mut Table<&[u8], &[u8]>,
    members: &[Vec<u8>],
) -> Result<u64, redb::StorageError> {
    let (mut old, mut merged, mut buf) = (Members::default(), Members::default(), Vec::new());
    let mut added = 0u64;
    let mut i = 0;
    while i < members.len() {
        let found = find(table, &members[i])?;
        // the run of members that belong to this block
        let j = match &found {
            Some((key, _, false)) => {
                i + members[i..].partition_point(|m| m.as_slice() <= key.as_slice())
            }
            _ => members.len(),
        };
        match &found {
            Some((_, value, _)) => old.decode(value),
            None => old.clear(),
        }
        merged.clear();
        let (mut a, mut new) = (0, 0u64);
        for m in &members[i..j] {
            while a < old.len() && old.get(a) < m.as_slice() {
                merged.push(old.get(a));
                a += 1;
            }
            if a < old.len() && old.get(a) == m.as_slice() {
                continue;
            }
            merged.push(m);
            new += 1;
        }
        while a < old.len() {
            merged.push(old.get(a));
            a += 1;
        }
        if new > 0 {
            if let Some((key, _, true)) = &found {
                // the last block grows past its key: it is stored under its new last member
                table.remove(key.as_slice())?;
            }
            write_blocks(table, &merged, &mut buf)?;
            added += new;
        }
        i = j;
    }
    Ok(added)
}

/// Removes `members` (sorted, distinct) from the set; returns how many were in it.
pub(super) fn remove_sorted(
    table: &mut Table<&[u8], &[u8]>,
    members: &[Vec<u8>],
) -> Result<u64, redb::StorageError> {
    let (mut old, mut kept, mut buf) = (Members::default(), Members::default(), Vec::new());
    let mut removed = 0u64;
    let mut i = 0;
    while i < members.len() {
        let Some((key, value, false)) = find(table, &members[i])? else {
            break; // past every block: none of the rest is in the set
        };
        let j = i + members[i..].partition_point(|m| m.as_slice() <= key.as_slice());
        old.decode(&value);
        kept.clear();
        let mut b = i;
        for a in 0..old.len() {
            let m = old.get(a);
            while b < j && members[b].as_slice() < m {
                b += 1;
            }
            if b < j && members[b].as_slice() == m {
                removed += 1;
                continue;
            }
            kept.push(m);
        }
        if kept.len() != old.len() {
            table.remove(key.as_slice())?;
            write_blocks(table, &kept, &mut buf)?;
        }
        i = j;
    }
    Ok(removed)
}

/// Visits the members `>= start` in order until `visit` returns `Ok(false)`.
pub(super) fn scan_from<T, E>(
    table: &T,
    start: &[u8],
    visit: &mut dyn FnMut(&[u8]) -> Result<bool, E>,
) -> Result<(), E>
where
    T: ReadableTable<&'static [u8], &'static [u8]>,
    E: From<redb::StorageError>,
{
    let mut cur = Vec::new();
    for item in table.range::<&[u8]>((Bound::Included(start), Bound::Unbounded))? {
        let (_, v) = item?;
        let go = for_each(v.value(), &mut cur, &mut |m| {
            if m < start {
                return Ok(true);
            }
            visit(m)
        })?;
        if !go {
            break;
        }
    }
    Ok(())
}

/// Builds blocks from members arriving in order (the migration from one entry per key).
#[derive(Default)]
pub(super) struct Builder {
    members: Members,
    buf: Vec<u8>,
}

impl Builder {
    pub(super) fn push(
        &mut self,
        table: &mut Table<&[u8], &[u8]>,
        m: &[u8],
    ) -> Result<(), redb::StorageError> {
        self.members.push(m);
        if self.members.bytes.len() + 2 * self.members.len() >= TARGET_BLOCK {
            self.finish(table)?;
        }
        Ok(())
    }
    pub(super) fn finish(
        &mut self,
        table: &mut Table<&[u8], &[u8]>,
    ) -> Result<(), redb::StorageError> {
        write_blocks(table, &self.members, &mut self.buf)?;
        self.members.clear();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use redb::{Database, TableDefinition};
    use std::collections::BTreeSet;

    const T: TableDefinition<&[u8], &[u8]> = TableDefinition::new("t");

    fn all(db: &Database) -> Vec<Vec<u8>> {
        let tx = db.begin_read().unwrap();
        let t = tx.open_table(T).unwrap();
        let mut out = Vec::new();
        scan_from::<_, redb::StorageError>(&t, b"", &mut |m| {
            out.push(m.to_vec());
            Ok(true)
        })
        .unwrap();
        out
    }

    #[test]
    fn sets_match_a_btreeset_through_inserts_and_removals() {
        let dir = tempfile::tempdir().unwrap();
        let db = Database::create(dir.path().join("b.redb")).unwrap();
        let mut model = BTreeSet::new();
        let mut x = 12345u64;
        for round in 0..30 {
            let mut batch = BTreeSet::new();
            for _ in 0..(1 + round * 37 % 400) {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                batch.insert(format!(
                    "k{:05}.{}",
                    x % 20_000,
                    "x".repeat((x % 40) as usize)
                ));
            }
            let batch: Vec<Vec<u8>> = batch.into_iter().map(String::into_bytes).collect();
            let tx = db.begin_write().unwrap();
            {
                let mut t = tx.open_table(T).unwrap();
                if round % 4 == 3 {
                    let n = remove_sorted(&mut t, &batch).unwrap();
                    let before = model.len();
                    for m in &batch {
                        model.remove(m);
                    }
                    assert_eq!(n as usize, before - model.len());
                } else {
                    let n = insert_sorted(&mut t, &batch).unwrap();
                    let before = model.len();
                    model.extend(batch.iter().cloned());
                    assert_eq!(n as usize, model.len() - before);
                }
            }
            tx.commit().unwrap();
            assert_eq!(all(&db), model.iter().cloned().collect::<Vec<_>>());
        }
        // blocks stay small, their keys are their last members
        let tx = db.begin_read().unwrap();
        let t = tx.open_table(T).unwrap();
        let mut cur = Vec::new();
        for item in t.iter().unwrap() {
            let (k, v) = item.unwrap();
            assert!(v.value().len() <= MAX_BLOCK + 64);
            let mut last = Vec::new();
            for_each::<()>(v.value(), &mut cur, &mut |m| {
                last = m.to_vec();
                Ok(true)
            })
            .unwrap();
            assert_eq!(last, k.value());
        }
        // a scan from the middle starts at the first member >= start
        let from: Vec<Vec<u8>> = model.range(b"k10000".to_vec()..).take(5).cloned().collect();
        let mut got = Vec::new();
        scan_from::<_, redb::StorageError>(&t, b"k10000", &mut |m| {
            got.push(m.to_vec());
            Ok(got.len() < 5)
        })
        .unwrap();
        assert_eq!(got, from);
    }

    #[test]
    fn damaged_blocks_end_the_walk_without_panic() {
        let mut cur = Vec::new();
        for bad in [
            &[0xffu8, 0xff, 0xff, 0xff, 0xff, 0xff][..],
            &[0, 9, b'a'],
            &[5, 1, b'a'],
        ] {
            let mut n = 0;
            for_each::<()>(bad, &mut cur, &mut |_| {
                n += 1;
                Ok(true)
            })
            .unwrap();
            assert!(n <= 1);
        }
    }
}
