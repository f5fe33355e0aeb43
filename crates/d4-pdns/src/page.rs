//! Picking one page of an answer while its records stream out of the store
//! ([`crate::store::RecordStore::scan`]), without building or sorting the whole answer:
//! the result equals [`crate::query::page_at`] over the sorted answer.

use std::cmp::Ordering;

use crate::query::{order, sort_records, Cursor, Position};
use crate::store::Record;

/// A page chosen while the matching records stream by ([`crate::store::RecordStore::scan`]):
/// only the page (plus, for offsets and truncated cursors, what precedes it on the page)
/// and the moved records are kept, never the whole answer, and nothing is sorted but
/// them. The result equals [`crate::query::page_at`] over the sorted answer.
#[derive(Debug)]
pub struct PageSelector {
    pos: Position,
    count: Option<usize>,
    keep: Option<usize>,
    heap: std::collections::BinaryHeap<Ranked>,
    moved: Vec<Record>,
    total: usize,
    candidates: usize,
}

/// A record ordered in answer order (the heap's top is the last one).
#[derive(Debug)]
struct Ranked(Record);

impl PartialEq for Ranked {
    fn eq(&self, other: &Self) -> bool {
        order(&self.0, &other.0) == Ordering::Equal
    }
}
impl Eq for Ranked {}
impl PartialOrd for Ranked {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Ranked {
    fn cmp(&self, other: &Self) -> Ordering {
        order(&self.0, &other.0)
    }
}

/// A page built by [`PageSelector::finish`].
#[derive(Debug, PartialEq, Eq)]
pub struct OwnedPage {
    pub moved: Vec<Record>,
    pub records: Vec<Record>,
    pub next: Option<Cursor>,
    /// Records matching in all.
    pub total: usize,
}

impl PageSelector {
    pub fn new(pos: Position, count: Option<usize>) -> PageSelector {
        let before = match &pos {
            Position::Offset(n) => *n,
            Position::After(c) if c.truncated => c.skip as usize,
            _ => 0,
        };
        PageSelector {
            keep: count.map(|c| c.saturating_add(before)),
            pos,
            count,
            heap: std::collections::BinaryHeap::new(),
            moved: Vec::new(),
            total: 0,
            candidates: 0,
        }
    }

    /// One matching record, in any order.
    pub fn push(&mut self, r: Record) {
        self.total += 1;
        if let Position::After(c) = &self.pos {
            let cmp = c.cmp_record(&r);
            let candidate = if c.truncated {
                cmp != Ordering::Greater
            } else {
                cmp == Ordering::Less
            };
            if !candidate {
                if r.seq > c.watermark {
                    self.moved.push(r);
                }
                return;
            }
        }
        self.candidates += 1;
        self.heap.push(Ranked(r));
        if self.keep.is_some_and(|k| self.heap.len() > k) {
            self.heap.pop();
        }
    }

    /// Records matching so far.
    pub fn total(&self) -> usize {
        self.total
    }

    /// The page; `watermark` is the store's watermark read before the scan.
    pub fn finish(self, watermark: u64) -> OwnedPage {
        let mut kept: Vec<Record> = self
            .heap
            .into_sorted_vec()
            .into_iter()
            .map(|r| r.0)
            .collect();
        let mut moved = self.moved;
        let drop = match &self.pos {
            Position::Offset(n) => (*n).min(kept.len()),
            Position::After(c) if c.truncated => {
                // The group's first `skip` records were sent: they count as moved when
                // changed since (as in `page_at`).
                let skip = (c.skip as usize).min(kept.len());
                moved.extend(kept[..skip].iter().filter(|r| r.seq > c.watermark).cloned());
                skip
            }
            _ => 0,
        };
        sort_records(&mut moved);
        let more = self.count.is_some() && self.candidates > kept.len();
        let next =
            (more && kept.len() > drop).then(|| Cursor::after(&kept, kept.len() - 1, watermark));
        let records = kept.split_off(drop);
        OwnedPage {
            moved,
            records,
            next,
            total: self.total,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::query::page_at;
    use crate::query::tests::rec;

    fn select(records: &[Record], pos: &Position, count: Option<usize>, w: u64) -> OwnedPage {
        let mut sel = PageSelector::new(pos.clone(), count);
        // Any order in: reversed and interleaved.
        for (i, r) in records.iter().enumerate().rev() {
            if i % 2 == 0 {
                sel.push(r.clone());
            }
        }
        for (i, r) in records.iter().enumerate() {
            if i % 2 == 1 {
                sel.push(r.clone());
            }
        }
        sel.finish(w)
    }

    #[test]
    fn selector_equals_page_at_without_sorting_everything() {
        let mut r: Vec<Record> = (0..40)
            .map(|i| {
                rec(
                    &format!("n{:02}", i % 13),
                    100 + i % 7,
                    &format!("10.0.0.{i}"),
                    1 + i % 4,
                )
            })
            .collect();
        r.push(rec("a", 5, &"x".repeat(5000), 1));
        r.push(rec("a", 5, &"x".repeat(6000), 3));
        r.push(rec("a", 5, &"x".repeat(7000), 1));
        sort_records(&mut r);
        for count in [Some(1), Some(3), Some(7), Some(100), None] {
            let mut positions = vec![Position::Start, Position::Offset(5), Position::Offset(99)];
            // Every cursor of a paging walk at this count (truncated ones included).
            let mut pos = Position::Start;
            for _ in 0..60 {
                let p = page_at(&r, &pos, count.or(Some(2)), 2);
                match p.next {
                    Some(c) => {
                        pos = Position::After(c);
                        positions.push(pos.clone());
                    }
                    None => break,
                }
            }
            for pos in &positions {
                let want = page_at(&r, pos, count, 3);
                let got = select(&r, pos, count, 3);
                let want_moved: Vec<Record> = want.moved.iter().map(|x| (*x).clone()).collect();
                assert_eq!(got.moved, want_moved, "{pos:?} {count:?}");
                assert_eq!(got.records, want.records, "{pos:?} {count:?}");
                assert_eq!(got.next, want.next, "{pos:?} {count:?}");
                assert_eq!(got.total, r.len());
            }
        }
    }
}
