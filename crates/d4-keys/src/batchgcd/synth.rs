//! Seeded random primes and RSA-like moduli for the tests and the benchmark (not for keys:
//! the generator is splitmix64, predictable by design).

use rug::integer::Order;
use rug::Integer;

use super::tree::par_map;

/// splitmix64: a small seeded generator, the same sequence on every platform.
#[derive(Debug, Clone)]
pub struct Rng(pub u64);

impl Rng {
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A prime of exactly `bits` bits (`bits` ≥ 3): the next prime after a random odd number
    /// with its two top bits set (so a product of two such primes has exactly twice the bits).
    pub fn prime(&mut self, bits: u32) -> Integer {
        loop {
            let words: Vec<u64> = (0..bits.div_ceil(64)).map(|_| self.next_u64()).collect();
            let mut x = Integer::from_digits(&words, Order::Lsf);
            x.keep_bits_mut(bits);
            x.set_bit(bits - 1, true);
            x.set_bit(bits - 2, true);
            x.set_bit(0, true);
            let p = x.next_prime();
            if p.significant_bits() == bits {
                return p;
            }
        }
    }
}

/// `n` pairs of distinct primes of `bits / 2` bits each (moduli of `bits` bits), seeded, made
/// on `threads` threads (each index has its own generator, so the result does not depend on
/// the thread count).
pub fn prime_pairs(seed: u64, n: usize, bits: u32, threads: usize) -> Vec<(Integer, Integer)> {
    par_map(n, threads, |i| {
        let mut rng = Rng(seed ^ (i as u64).wrapping_mul(0xD6E8_FEB8_6659_FD93));
        let p = rng.prime(bits / 2);
        let mut q = rng.prime(bits / 2);
        while q == p {
            q = rng.prime(bits / 2);
        }
        (p, q)
    })
}
