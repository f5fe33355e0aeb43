//! Known-bad primes for `sharedprimes`: badkeys' `primes<bits>.dat` files, each the
//! product of primes found in moduli of that size, written by gmpy2's `to_binary`: a type
//! byte (1, mpz, or 2, xmpz), a sign byte (1 positive; 0 for zero) and the magnitude in
//! little-endian bytes.

use std::path::Path;

use rug::integer::{IsPrime, Order};
use rug::Integer;

use super::{Check, CheckError, Finding};

/// A non-negative integer in gmpy2's binary format; `None` when the bytes are not one.
pub fn read_gmpy2_integer(bytes: &[u8]) -> Option<Integer> {
    match bytes {
        [1 | 2, 0] => Some(Integer::new()),
        [1 | 2, 1, magnitude @ ..] => Some(Integer::from_digits(magnitude, Order::Lsf)),
        _ => None,
    }
}

/// Every `primes<bits>.dat` of a folder as (bits, product).
pub(super) fn load_dir(dir: &Path) -> Result<Vec<(u32, Integer)>, CheckError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| CheckError::Io { path, source }
    };
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io(dir))? {
        let entry = entry.map_err(io(dir))?;
        let name = entry.file_name();
        let Some(bits) = name
            .to_str()
            .and_then(|n| n.strip_prefix("primes"))
            .and_then(|n| n.strip_suffix(".dat"))
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let path = entry.path();
        let bytes = std::fs::read(&path).map_err(io(&path))?;
        let product =
            read_gmpy2_integer(&bytes).ok_or(CheckError::BadPrimesFormat { path: path.clone() })?;
        out.push((bits, product));
    }
    if out.is_empty() {
        return Err(CheckError::NoBadPrimes(dir.to_path_buf()));
    }
    out.sort_by_key(|(bits, _)| *bits);
    Ok(out)
}

/// `product mod n` for each modulus, through one product and remainder tree over them: one
/// division of the (large) product by the moduli's product, then divisions down the tree,
/// instead of one division of the whole product per modulus. gcd(n, product mod n) =
/// gcd(n, product), so [`sharedprimes`] finds the same with either.
pub(super) fn residues(moduli: &[&Integer], product: &Integer) -> Vec<Integer> {
    if moduli.is_empty() {
        return Vec::new();
    }
    // the tree: levels[0] the moduli, each level the pairwise products of the one below
    let mut levels: Vec<Vec<Integer>> = vec![moduli.iter().map(|&n| n.clone()).collect()];
    while let Some(top) = levels.last().filter(|l| l.len() > 1) {
        let next = top
            .chunks(2)
            .map(|c| match c {
                [a, b] => Integer::from(a * b),
                [a] => a.clone(),
                _ => Integer::new(),
            })
            .collect();
        levels.push(next);
    }
    let mut rems: Vec<Integer> = match levels.pop() {
        Some(root) => root.iter().map(|r| Integer::from(product % r)).collect(),
        None => return Vec::new(),
    };
    while let Some(level) = levels.pop() {
        rems = level
            .iter()
            .enumerate()
            .map(|(i, n)| Integer::from(&rems[i / 2] % n))
            .collect();
    }
    rems
}

/// gcd(n, product of bad primes of n's size) — `product` may be that product reduced mod n
/// ([`residues`]): p and q when the gcd is a prime dividing n into two, a bare finding when
/// the factoring fails (as badkeys).
pub(super) fn sharedprimes(n: &Integer, product: &Integer) -> Option<Finding> {
    let g = Integer::from(n.gcd_ref(product));
    if g == 1 {
        return None;
    }
    let f = Finding::new(Check::SharedPrimes);
    if g.is_probably_prime(25) != IsPrime::No {
        let (q, r) = n.clone().div_rem(g.clone());
        if r == 0 {
            return Some(f.factors(g, q));
        }
    }
    Some(f)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn residues_are_the_product_mod_each_modulus() {
        let product = Integer::from(101u32 * 103 * 107 * 109) * 1_000_003u32;
        let moduli: Vec<Integer> = [3233u32, 11_021, 5, 77, 1_000_003 * 7, 999_999_937]
            .into_iter()
            .map(Integer::from)
            .collect();
        let refs: Vec<&Integer> = moduli.iter().collect();
        for k in 0..=refs.len() {
            let got = residues(&refs[..k], &product);
            let want: Vec<Integer> = refs[..k]
                .iter()
                .map(|&n| Integer::from(&product % n))
                .collect();
            assert_eq!(got, want, "first {k} moduli");
        }
    }

    #[test]
    fn gmpy2_format() {
        // gmpy2.to_binary(mpz(0x0102)) == b'\x01\x01\x02\x01'
        assert_eq!(
            read_gmpy2_integer(&[1, 1, 2, 1]),
            Some(Integer::from(0x0102))
        );
        assert_eq!(read_gmpy2_integer(&[1, 0]), Some(Integer::new()));
        assert_eq!(read_gmpy2_integer(&[1, 2, 5]), None); // negative
        assert_eq!(read_gmpy2_integer(b"xx"), None);
    }

    #[test]
    fn shared_prime_found() {
        // bad primes 101 and 103; n = 101 * 107
        let product = Integer::from(101 * 103);
        let f = sharedprimes(&Integer::from(101 * 107), &product).unwrap();
        assert_eq!(
            (f.p, f.q),
            (Some(Integer::from(101)), Some(Integer::from(107)))
        );
        // n = 101 * 103: the gcd is n itself, not prime: detected without factors
        let f = sharedprimes(&Integer::from(101 * 103), &product).unwrap();
        assert_eq!(f.p, None);
        assert!(sharedprimes(&Integer::from(107 * 109), &product).is_none());
    }
}
