//! Public keys of X25519, X448 (RFC 7748 Montgomery ladder) and Ed25519 (RFC 8032) private
//! keys, for PKCS#8 private keys that do not carry their public key (OpenSSL writes none).
//! Plain big-integer arithmetic, not constant time: this only reads keys to check them.
//! Ed448 needs SHAKE256, which the workspace does not have: such keys stay unsupported.

use rug::integer::Order;
use rug::Integer;
use sha2::{Digest, Sha512};

fn modp(v: Integer, p: &Integer) -> Integer {
    let r = v % p;
    if r < 0 {
        r + p
    } else {
        r
    }
}

fn inv(v: &Integer, p: &Integer) -> Integer {
    v.clone().invert(p).unwrap_or_default()
}

fn le_bytes(v: &Integer, len: usize) -> Vec<u8> {
    let mut out = v.to_digits::<u8>(Order::Lsf);
    out.resize(len, 0);
    out
}

/// RFC 7748's ladder on u = `base` for the clamped scalar k (`bits` long).
fn ladder(k: &Integer, base: u32, bits: u32, p: &Integer, a24: u32) -> Integer {
    let x1 = Integer::from(base);
    let (mut x2, mut z2) = (Integer::from(1), Integer::new());
    let (mut x3, mut z3) = (x1.clone(), Integer::from(1));
    let mut swap = false;
    for t in (0..bits).rev() {
        let kt = k.get_bit(t);
        if swap ^ kt {
            std::mem::swap(&mut x2, &mut x3);
            std::mem::swap(&mut z2, &mut z3);
        }
        swap = kt;
        let a = Integer::from(&x2 + &z2);
        let aa = modp(Integer::from(a.square_ref()), p);
        let b = Integer::from(&x2 - &z2);
        let bb = modp(Integer::from(b.square_ref()), p);
        let e = Integer::from(&aa - &bb);
        let c = Integer::from(&x3 + &z3);
        let d = Integer::from(&x3 - &z3);
        let da = modp(d * &a, p);
        let cb = modp(c * &b, p);
        x3 = modp(Integer::from(&da + &cb).square(), p);
        z3 = modp(Integer::from(&da - &cb).square() * &x1, p);
        x2 = modp(Integer::from(&aa * &bb), p);
        z2 = modp(Integer::from(&e * a24) + &aa, p) * &e;
        z2 = modp(z2, p);
    }
    if swap {
        std::mem::swap(&mut x2, &mut x3);
        std::mem::swap(&mut z2, &mut z3);
    }
    modp(x2 * inv(&z2, p), p)
}

/// The X25519 public key of a 32-byte private key.
pub(super) fn x25519(private: &[u8]) -> Option<Vec<u8>> {
    let mut k: [u8; 32] = private.try_into().ok()?;
    k[0] &= 248;
    k[31] &= 127;
    k[31] |= 64;
    let p = (Integer::from(1) << 255u32) - 19u32;
    let u = ladder(&Integer::from_digits(&k, Order::Lsf), 9, 255, &p, 121_665);
    Some(le_bytes(&u, 32))
}

/// The X448 public key of a 56-byte private key.
pub(super) fn x448(private: &[u8]) -> Option<Vec<u8>> {
    let mut k: [u8; 56] = private.try_into().ok()?;
    k[0] &= 252;
    k[55] |= 128;
    let p = (Integer::from(1) << 448u32) - (Integer::from(1) << 224u32) - 1u32;
    let u = ladder(&Integer::from_digits(&k, Order::Lsf), 5, 448, &p, 39_081);
    Some(le_bytes(&u, 56))
}

/// Edwards25519 (a = -1) in affine coordinates.
struct Ed {
    p: Integer,
    d: Integer,
}

impl Ed {
    fn new() -> Self {
        let p = (Integer::from(1) << 255u32) - 19u32;
        // d = -121665 / 121666
        let d = modp(
            Integer::from(-121_665) * inv(&Integer::from(121_666), &p),
            &p,
        );
        Ed { p, d }
    }

    fn add(&self, a: &(Integer, Integer), b: &(Integer, Integer)) -> (Integer, Integer) {
        let p = &self.p;
        let x1x2 = modp(Integer::from(&a.0 * &b.0), p);
        let y1y2 = modp(Integer::from(&a.1 * &b.1), p);
        let t = modp(Integer::from(&self.d * &x1x2) * &y1y2, p);
        let x = modp(Integer::from(&a.0 * &b.1) + Integer::from(&b.0 * &a.1), p);
        let y = modp(y1y2 + x1x2, p);
        let x3 = modp(x * inv(&(Integer::from(1) + &t), p), p);
        let y3 = modp(y * inv(&modp(Integer::from(1) - t, p), p), p);
        (x3, y3)
    }

    /// The base point: y = 4/5, x the even root.
    fn base(&self) -> Option<(Integer, Integer)> {
        let p = &self.p;
        let y = modp(Integer::from(4) * inv(&Integer::from(5), p), p);
        let y2 = modp(Integer::from(y.square_ref()), p);
        let u = modp(Integer::from(&y2 - 1u32), p);
        let v = modp(Integer::from(&self.d * &y2) + 1u32, p);
        let x2 = modp(u * inv(&v, p), p);
        // p ≡ 5 (mod 8): x = x2^((p+3)/8), times √-1 if needed
        let mut x = x2
            .clone()
            .pow_mod(&(Integer::from(p + 3u32) >> 3u32), p)
            .ok()?;
        if modp(Integer::from(x.square_ref()), p) != x2 {
            let i = Integer::from(2)
                .pow_mod(&(Integer::from(p - 1u32) >> 2u32), p)
                .ok()?;
            x = modp(x * i, p);
        }
        if x.is_odd() {
            x = Integer::from(p - &x);
        }
        Some((x, y))
    }
}

/// The Ed25519 public key of a 32-byte seed.
pub(super) fn ed25519(seed: &[u8]) -> Option<Vec<u8>> {
    if seed.len() != 32 {
        return None;
    }
    let h = Sha512::digest(seed);
    let mut a: [u8; 32] = h[..32].try_into().ok()?;
    a[0] &= 248;
    a[31] &= 127;
    a[31] |= 64;
    let scalar = Integer::from_digits(&a, Order::Lsf);
    let ed = Ed::new();
    let mut acc = (Integer::new(), Integer::from(1)); // the neutral point
    let mut pt = ed.base()?;
    for i in 0..scalar.significant_bits() {
        if scalar.get_bit(i) {
            acc = ed.add(&acc, &pt);
        }
        pt = ed.add(&pt, &pt);
    }
    let mut out = le_bytes(&acc.1, 32);
    if acc.0.is_odd() {
        out[31] |= 0x80;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(s: &str) -> Vec<u8> {
        hex::decode(s).unwrap()
    }

    #[test]
    fn rfc7748_x25519() {
        // RFC 7748 section 6.1, Alice
        let private = h("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a");
        let public = h("8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a");
        assert_eq!(x25519(&private), Some(public));
    }

    #[test]
    fn rfc7748_x448() {
        // RFC 7748 section 6.2, Alice
        let private = h("9a8f4925d1519f5775cf46b04b5800d4ee9ee8bae8bc5565d498c28dd9c9baf574a9419744897391006382a6f127ab1d9ac2d8c0a598726b");
        let public = h("9b08f7cc31b7e3e67d22d5aea121074a273bd2b83de09c63faa73d2c22c5d9bbc836647241d953d40c5b12da88120d53177f80e532c41fa0");
        assert_eq!(x448(&private), Some(public));
    }

    #[test]
    fn rfc8032_ed25519() {
        // RFC 8032 section 7.1, test 1
        let seed = h("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60");
        let public = h("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a");
        assert_eq!(ed25519(&seed), Some(public));
    }
}
