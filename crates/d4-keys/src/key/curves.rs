//! The Weierstrass curves whose points are read: y² = x³ + ax + b over GF(p), with the
//! constants OpenSSL prints (`openssl ecparam -name NAME -param_enc explicit -text`).
//! Used to reject points that are not on their curve (as `cryptography` does) and to
//! decompress compressed points (every curve here but P-224 has p ≡ 3 mod 4, where the
//! square root is one exponentiation), so the `spkisha256` is that of the uncompressed
//! point, as badkeys prints it.

use rug::Integer;

/// badkeys' name, p, a, b (hex).
const PARAMS: &[(&str, &str, &str, &str)] = &[
    (
        "p192",
        "fffffffffffffffffffffffffffffffeffffffffffffffff",
        "fffffffffffffffffffffffffffffffefffffffffffffffc",
        "64210519e59c80e70fa7e9ab72243049feb8deecc146b9b1",
    ),
    (
        "p224",
        "ffffffffffffffffffffffffffffffff000000000000000000000001",
        "fffffffffffffffffffffffffffffffefffffffffffffffffffffffe",
        "b4050a850c04b3abf54132565044b0b7d7bfd8ba270b39432355ffb4",
    ),
    (
        "p256",
        "ffffffff00000001000000000000000000000000ffffffffffffffffffffffff",
        "ffffffff00000001000000000000000000000000fffffffffffffffffffffffc",
        "5ac635d8aa3a93e7b3ebbd55769886bc651d06b0cc53b0f63bce3c3e27d2604b",
    ),
    (
        "p384",
        "fffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffeffffffff0000000000000000ffffffff",
        "fffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffeffffffff0000000000000000fffffffc",
        "b3312fa7e23ee7e4988e056be3f82d19181d9c6efe8141120314088f5013875ac656398d8a2ed19d2a85c8edd3ec2aef",
    ),
    (
        "p521",
        "1ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
        "1fffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffc",
        "51953eb9618e1c9a1f929a21a0b68540eea2da725b99b315f3b8b489918ef109e156193951ec7e937b1652c0bd3bb1bf073573df883d2c34f1ef451fd46b503f00",
    ),
    (
        "secp256k1",
        "fffffffffffffffffffffffffffffffffffffffffffffffffffffffefffffc2f",
        "0",
        "7",
    ),
    (
        "brainpoolP256r1",
        "a9fb57dba1eea9bc3e660a909d838d726e3bf623d52620282013481d1f6e5377",
        "7d5a0975fc2c3057eef67530417affe7fb8055c126dc5c6ce94a4b44f330b5d9",
        "26dc5c6ce94a4b44f330b5d9bbd77cbf958416295cf7e1ce6bccdc18ff8c07b6",
    ),
    (
        "brainpoolP384r1",
        "8cb91e82a3386d280f5d6f7e50e641df152f7109ed5456b412b1da197fb71123acd3a729901d1a71874700133107ec53",
        "7bc382c63d8c150c3c72080ace05afa0c2bea28e4fb22787139165efba91f90f8aa5814a503ad4eb04a8c7dd22ce2826",
        "04a8c7dd22ce28268b39b55416f0447c2fb77de107dcd2a62e880ea53eeb62d57cb4390295dbc9943ab78696fa504c11",
    ),
    (
        "brainpoolP512r1",
        "aadd9db8dbe9c48b3fd4e6ae33c9fc07cb308db3b3c9d20ed6639cca703308717d4d9b009bc66842aecda12ae6a380e62881ff2f2d82c68528aa6056583a48f3",
        "7830a3318b603b89e2327145ac234cc594cbdd8d3df91610a83441caea9863bc2ded5d5aa8253aa10a2ef1c98b9ac8b57f1117a72bf2c7b9e7c1ac4d77fc94ca",
        "3df91610a83441caea9863bc2ded5d5aa8253aa10a2ef1c98b9ac8b57f1117a72bf2c7b9e7c1ac4d77fc94cadc083e67984050b75ebae5dd2809bd638016f723",
    ),
];

struct Curve {
    p: Integer,
    a: Integer,
    b: Integer,
}

fn curve(name: &str) -> Option<Curve> {
    let &(_, p, a, b) = PARAMS.iter().find(|c| c.0 == name)?;
    let h = |s: &str| Integer::from_str_radix(s, 16).ok();
    Some(Curve {
        p: h(p)?,
        a: h(a)?,
        b: h(b)?,
    })
}

/// v mod p in [0, p).
fn modp(v: Integer, p: &Integer) -> Integer {
    let r = v % p;
    if r < 0 {
        r + p
    } else {
        r
    }
}

/// x³ + ax + b mod p.
fn rhs(c: &Curve, x: &Integer) -> Integer {
    let x3 = Integer::from(x * x) * x;
    let ax = Integer::from(&c.a * x);
    modp(x3 + ax + &c.b, &c.p)
}

/// Whether (x, y) is on the named curve (`true` for curves not in the table).
pub(super) fn on_curve(name: &str, x: &Integer, y: &Integer) -> bool {
    let Some(c) = curve(name) else {
        return true;
    };
    if *x < 0 || *x >= c.p || *y < 0 || *y >= c.p {
        return false;
    }
    modp(Integer::from(y * y), &c.p) == rhs(&c, x)
}

/// The y of a compressed point (`odd`: the prefix was 3); `None` when x is not on the
/// curve or the curve's square roots are not computed here (P-224).
pub(super) fn decompress(name: &str, x: &Integer, odd: bool) -> Option<Integer> {
    let c = curve(name)?;
    if c.p.mod_u(4) != 3 || *x < 0 || *x >= c.p {
        return None;
    }
    let r = rhs(&c, x);
    let exp = Integer::from(&c.p + 1u32) >> 2u32;
    let y = r.clone().pow_mod(&exp, &c.p).ok()?;
    if modp(Integer::from(&y * &y), &c.p) != r {
        return None;
    }
    Some(if y.is_odd() == odd || y == 0 {
        y
    } else {
        Integer::from(&c.p - &y)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn p256_generator() {
        // SEC 2 / FIPS 186-4: the P-256 base point
        let gx = Integer::from_str_radix(
            "6b17d1f2e12c4247f8bce6e563a440f277037d812deb33a0f4a13945d898c296",
            16,
        )
        .unwrap();
        let gy = Integer::from_str_radix(
            "4fe342e2fe1a7f9b8ee7eb4a7c0f9e162bce33576b315ececbb6406837bf51f5",
            16,
        )
        .unwrap();
        assert!(on_curve("p256", &gx, &gy));
        assert!(!on_curve("p256", &gx, &Integer::from(&gy + 1u32)));
        assert_eq!(decompress("p256", &gx, gy.is_odd()), Some(gy));
    }
}
