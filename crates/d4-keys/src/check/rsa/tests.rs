//! Each check on small numbers built by hand (or from their definition in the test), never
//! from the check's own output.

use super::*;

fn int(s: &str) -> Integer {
    Integer::from_str_radix(s, 10).unwrap()
}

/// Whether a prime ≤ 65537 divides n, by trial division (independent of the tables).
fn has_small_factor(n: &Integer) -> bool {
    (2u32..=65537)
        .any(|d| n.is_divisible_u(d) && (2..d).take_while(|k| k * k <= d).all(|k| d % k != 0))
}

#[test]
fn fermat_close_primes_and_squares() {
    // 101 * 103 = 10403; ⌊√10403⌋ = 101, 102² - 10403 = 1 = 1²
    let f = fermat(&Integer::from(10403)).unwrap();
    assert_eq!(
        (f.p, f.q, f.subtest),
        (Some(int("103")), Some(int("101")), None)
    );
    let f = fermat(&Integer::from(101 * 101)).unwrap();
    assert_eq!(f.subtest.as_deref(), Some("square"));
    assert_eq!(f.p, Some(int("101")));
    // 3 * 10007: a would have to reach 5005, far past ⌊√n⌋ + 100 = 273
    assert!(fermat(&Integer::from(3 * 10007)).is_none());
    // 61 * 53 = 3233: a = 57 = ⌊√3233⌋ + 1, b = 4
    let f = fermat(&Integer::from(3233)).unwrap();
    assert_eq!((f.p, f.q), (Some(int("61")), Some(int("53"))));
    assert!(fermat(&Integer::from(5)).is_none());
}

#[test]
fn fermat_round_limit_is_inclusive_of_100() {
    // n = a² - b² with a = ⌊√n⌋ + 100 found, + 101 not
    let find = |extra: u32| {
        // p, q = a ± b with a around 10^6; choose b so that ⌊√n⌋ = a - extra
        let a = Integer::from(1_000_000u32) + extra;
        let base = Integer::from(1_000_000u32);
        // b² = a² - n and ⌊√n⌋ = base ⇒ n ≥ base², n < (base+1)²
        let b = (Integer::from(a.square_ref()) - Integer::from(base.square_ref())).sqrt();
        let n = Integer::from(&a + &b) * Integer::from(&a - &b);
        assert_eq!(n.clone().sqrt(), base);
        fermat(&n)
    };
    assert!(find(100).is_some());
    assert!(find(101).is_none());
}

#[test]
fn roca_subgroup_membership() {
    let t = Tables::new();
    let m = Integer::from_str_radix(ROCA_MODULUS, 16).unwrap();
    // any n ≡ 65537^k (mod M) lies in the subgroup
    let n = Integer::from(65537)
        .pow_mod(&Integer::from(12345), &m)
        .unwrap()
        + &m * Integer::from(7);
    assert!(roca(&n, &t).is_some());
    assert!(roca(&(n + 2u32), &t).is_none());
    assert!(roca(&Integer::from(2), &t).is_none());
}

#[test]
fn rsainvalid_subtests() {
    let sub =
        |n: u32, e: u32| rsainvalid(&Integer::from(n), &Integer::from(e)).and_then(|f| f.subtest);
    assert_eq!(sub(35, 1).as_deref(), Some("invalid_e"));
    assert_eq!(sub(35, 35).as_deref(), Some("e_too_large"));
    assert_eq!(sub(35, 3), None);
}

#[test]
fn smallfactors_valid_and_corrupt() {
    let t = Tables::new();
    // 1000003 is prime
    let f = smallfactors(&Integer::from(3u64 * 1_000_003), &t).unwrap();
    assert_eq!(f.subtest.as_deref(), Some("valid"));
    assert_eq!((f.p, f.q), (Some(int("3")), Some(int("1000003"))));
    // 9 * 1000003: the gcd with the product of distinct primes is 3, the rest 3 * 1000003
    let f = smallfactors(&Integer::from(9u64 * 1_000_003), &t).unwrap();
    assert_eq!(f.subtest.as_deref(), Some("corrupt"));
    assert_eq!(f.q, Some(int("3000009")));
    // 65537 is the largest prime tested; 65539 (prime) is not
    assert!(smallfactors(&Integer::from(65537u64 * 1_000_003), &t).is_some());
    assert!(smallfactors(&Integer::from(65539u64 * 1_000_003), &t).is_none());
}

#[test]
fn smalld_wiener() {
    // balanced primes near 2^61, d = 65537, e = d⁻¹ mod φ
    let p = Integer::from((1u64 << 61) - 1); // a Mersenne prime
    let q = Integer::from(1u64 << 61).next_prime();
    let n = Integer::from(&p * &q);
    let phi = Integer::from(&p - 1u32) * Integer::from(&q - 1u32);
    let d = Integer::from(65537);
    let e = d.clone().invert(&phi).unwrap();
    assert!(e.significant_bits() > 32);
    let f = smalld(&n, &e).unwrap();
    assert_eq!(f.d, Some(d));
    // e = 65537 is not tested at all
    assert!(smalld(&n, &Integer::from(65537)).is_none());
}

#[test]
fn rsawarnings_in_badkeys_order() {
    let one = Integer::from(1);
    let sub = |bits: u32, e: u32| {
        rsawarnings(
            &(Integer::from(&one << (bits - 1)) + 1u32),
            &Integer::from(e),
        )
        .and_then(|f| f.subtest)
    };
    assert_eq!(sub(767, 65537).as_deref(), Some("extremely_small"));
    assert_eq!(sub(2047, 3).as_deref(), Some("too_small"));
    assert_eq!(sub(2049, 65537).as_deref(), Some("not_multiple_of_8"));
    assert_eq!(sub(2056, 65537).as_deref(), Some("unusual_keysize"));
    assert_eq!(sub(3072, 3).as_deref(), Some("exponent_3"));
    assert_eq!(sub(4096, 17).as_deref(), Some("exponent_not_65537"));
    assert_eq!(sub(2048, 65537), None);
}

/// An odd 2048-bit n with the given upper and lower halves (of 1024 bits), its lowest word
/// stepped until no prime ≤ 65537 divides it.
fn build(upper: &Integer, lower: &Integer) -> Integer {
    let mut n = Integer::from(upper << 1024u32) + lower;
    n |= 1u32;
    while has_small_factor(&n) {
        n += 2u32;
    }
    n
}

fn repeated(word: u32, words: u32) -> Integer {
    (0..words).fold(Integer::new(), |acc, _| (acc << 32u32) + word)
}

#[test]
fn rsabias_vanity() {
    let t = Tables::new();
    // upper half all ones (with the top bit), lower half 0x5555... (50 %): 75 % overall
    let upper = repeated(u32::MAX, 32);
    let n = build(&upper, &repeated(0x5555_5555, 32));
    let f = rsabias(&n, &|| smallfactors(&n, &t).is_some()).unwrap();
    assert_eq!(f.subtest.as_deref(), Some("vanity"));
    // about 75 % (the stepping of the lowest word moves a bit or two)
    assert!(matches!(f.biaspct, Some(74 | 75)), "{:?}", f.biaspct);
    // lower half biased too: a finding without subtest
    let n = build(&upper, &repeated(0xffff_fff0, 32));
    assert_eq!(
        rsabias(&n, &|| smallfactors(&n, &t).is_some()).map(|f| f.subtest),
        Some(None)
    );
    // 50 %: nothing
    let n = build(&repeated(0xaaaa_aaaa, 32), &repeated(0x5555_5555, 32));
    assert!(rsabias(&n, &|| smallfactors(&n, &t).is_some()).is_none());
}

#[test]
fn rsapoly_completeftp_and_nautilus() {
    let t = Tables::new();
    // 32-bit chunks with bits only outside 0x3ff00000: completeftp
    let mut upper = repeated(0x0001_0001, 32);
    upper |= Integer::from(1) << 1023u32;
    let n = build(&upper, &repeated(0x0001_0001, 32));
    assert_eq!(
        rsapoly(&n, &|| smallfactors(&n, &t).is_some())
            .and_then(|f| f.subtest)
            .as_deref(),
        Some("completeftp")
    );
    // 128-bit chunks with bits only in 0..16 and 64..128: nautilus
    let chunk = (Integer::from(1) << 64u32) + 0x8001u32;
    let mut upper = (0..8).fold(Integer::new(), |acc, _| (acc << 128u32) + &chunk);
    upper |= Integer::from(1) << 1023u32;
    let lower = (0..8).fold(Integer::new(), |acc, _| (acc << 128u32) + &chunk);
    let n = build(&upper, &lower);
    assert_eq!(
        rsapoly(&n, &|| smallfactors(&n, &t).is_some())
            .and_then(|f| f.subtest)
            .as_deref(),
        Some("nautilus")
    );
    // a bit of the completeftp mask set in one chunk: a finding without subtest
    let mut upper = repeated(0x0001_0001, 32);
    upper |= Integer::from(1) << 1023u32;
    upper |= Integer::from(1) << (32 * 5 + 20);
    let n = build(&upper, &repeated(0x0001_0001, 32));
    assert_eq!(
        rsapoly(&n, &|| smallfactors(&n, &t).is_some()).map(|f| f.subtest),
        Some(None)
    );
}

#[test]
fn pattern_needs_16_equal_bytes() {
    let bytes = |run: usize| {
        let mut v = vec![0x12u8];
        v.extend(std::iter::repeat_n(0x41u8, run));
        v.push(0x13);
        Integer::from_digits(&v, Order::Msf)
    };
    assert!(pattern(&bytes(16)).is_some());
    assert!(pattern(&bytes(15)).is_none());
}

#[test]
fn dsasparse_shape() {
    let top = Integer::from(1) << 1023u32;
    // bits only in the low 4 and high 8 of each 32-bit chunk past bit 168
    let p = (&top + (Integer::from(0xff00_000fu32) << 168u32)) + 12345u32;
    assert!(dsasparse(&p).is_some());
    let p = (&top + (Integer::from(1) << (168 + 4))) + 1u32;
    assert!(dsasparse(&p).is_none());
    // top 24 bits must be 0x800000
    let p = &top + (Integer::from(1) << 1010u32);
    assert!(dsasparse(&p).is_none());
}
