//! Sorting a batch's byte keys (the commit's hot spot after redb itself, issue 23).
//!
//! A batch's keys tend to share a long prefix (`com.example…` reversed names, the 12 bytes
//! of an IPv4-mapped address in the `rdata` index), so a plain comparison sort spends most
//! of its time in `memcmp` walking that prefix again and again. Here the keys are sorted
//! as big-endian `u64` digits of 8 bytes (zero padded), starting after the prefix *every*
//! key of the batch shares: most-significant digit first, each run of tied keys sorted again
//! by its next digit, small runs by their remaining bytes. The result is exactly byte order.

/// Length of the prefix all `keys` share.
fn common_prefix<K: AsRef<[u8]>>(keys: &[K]) -> usize {
    let Some(first) = keys.first() else {
        return 0;
    };
    let first = first.as_ref();
    let mut lcp = first.len();
    for k in keys {
        let k = k.as_ref();
        lcp = first[..lcp]
            .iter()
            .zip(k)
            .take_while(|(a, b)| a == b)
            .count();
        if lcp == 0 {
            break;
        }
    }
    lcp
}

/// The 8 bytes of `key` from `at` on, zero padded, as a big-endian integer.
fn window(key: &[u8], at: usize) -> u64 {
    let mut w = [0u8; 8];
    if let Some(rest) = key.get(at..) {
        let n = rest.len().min(8);
        w[..n].copy_from_slice(&rest[..n]);
    }
    u64::from_be_bytes(w)
}

/// The permutation that puts `keys` in byte order: `keys[order[0]] <= keys[order[1]] <= …`.
///
/// Keys are sorted by their 8-byte window (and how many bytes they have left, so a key
/// that ends sorts before one that goes on with zero bytes); a run of keys whose windows tie
/// is sorted again by the next window (most-significant-digit first, 8 bytes a digit), so
/// key bytes are read once per level instead of once per comparison. Small runs are
/// finished by comparing the rest of the keys.
pub(super) fn sorted_order<K: AsRef<[u8]>>(keys: &[K]) -> Vec<usize> {
    let rest = |i: usize, depth: usize| keys[i].as_ref().get(depth..).unwrap_or(&[]);
    let mut order: Vec<usize> = (0..keys.len()).collect();
    let mut tagged: Vec<(u64, u8, usize)> = Vec::new();
    let mut stack = vec![(0usize, keys.len(), common_prefix(keys))];
    while let Some((lo, hi, depth)) = stack.pop() {
        let Some(run) = order.get_mut(lo..hi) else {
            continue;
        };
        if run.len() < 2 {
            continue;
        }
        if run.len() <= SMALL_RUN {
            run.sort_unstable_by(|&a, &b| rest(a, depth).cmp(rest(b, depth)));
            continue;
        }
        tagged.clear();
        tagged.extend(run.iter().map(|&i| {
            let k = keys[i].as_ref();
            // bytes left from `depth`, capped at 9: 9 means "more than the window"
            let left = k.len().saturating_sub(depth).min(9) as u8;
            (window(k, depth), left, i)
        }));
        tagged.sort_unstable();
        for (slot, t) in run.iter_mut().zip(&tagged) {
            *slot = t.2;
        }
        let mut s = 0;
        while s < tagged.len() {
            let (w, left) = (tagged[s].0, tagged[s].1);
            let e = s + tagged[s..]
                .iter()
                .take_while(|t| t.0 == w && t.1 == left)
                .count();
            // equal windows and both keys go on: the next window decides
            if e - s > 1 && left == 9 {
                stack.push((lo + s, lo + e, depth + 8));
            }
            s = e;
        }
    }
    order
}

/// Runs up to this many keys are sorted by comparing their bytes.
const SMALL_RUN: usize = 16;

/// Sorts `keys` in byte order and removes duplicates.
pub(super) fn sort_dedup(keys: &mut Vec<Vec<u8>>) {
    let order = sorted_order(keys);
    let mut out: Vec<Vec<u8>> = Vec::with_capacity(keys.len());
    for i in order {
        let k = std::mem::take(&mut keys[i]);
        if out.last() != Some(&k) {
            out.push(k);
        }
    }
    *keys = out;
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
    }

    fn check(keys: Vec<Vec<u8>>) {
        let mut want = keys.clone();
        want.sort();
        let order = sorted_order(&keys);
        let got: Vec<Vec<u8>> = order.iter().map(|&i| keys[i].clone()).collect();
        assert_eq!(got, want);
        let mut dd = keys;
        sort_dedup(&mut dd);
        want.dedup();
        assert_eq!(dd, want);
    }

    #[test]
    fn empty_and_single() {
        check(vec![]);
        check(vec![vec![]]);
        check(vec![b"abc".to_vec()]);
    }

    #[test]
    fn prefixes_zeros_and_duplicates() {
        check(vec![
            b"com.example.a".to_vec(),
            b"com.example".to_vec(),
            b"com.example\0".to_vec(),
            b"com.example\0\0\0\0\0\0\0\0\0".to_vec(),
            b"com.example\0\0\0\0\0\0\0\0".to_vec(),
            b"com.example\0\0\0\0\0\0\0\0\x01".to_vec(),
            b"com.example.a".to_vec(),
            b"com.example.b.c.d.e.f.g".to_vec(),
            b"com.example.b.c.d.e.f.a".to_vec(),
            b"com.examplf".to_vec(),
        ]);
    }

    #[test]
    fn random_keys_with_long_shared_prefixes() {
        let mut r = Rng(0x9e37_79b9_7f4a_7c15);
        for _ in 0..50 {
            let n = (r.next() % 3000) as usize;
            let shared = (r.next() % 20) as usize;
            let keys: Vec<Vec<u8>> = (0..n)
                .map(|_| {
                    let mut k = vec![b'x'; shared];
                    let len = (r.next() % 40) as usize;
                    // a small alphabet (with zero bytes) makes ties and prefixes common
                    k.extend((0..len).map(|_| (r.next() % 3) as u8));
                    k
                })
                .collect();
            check(keys);
        }
    }
}
