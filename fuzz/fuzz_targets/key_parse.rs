//! Fuzz the key reader (`d4_keys::key`): arbitrary bytes as a key file (PEM, DER, OpenSSH),
//! as hex moduli (`rsa_moduli`) and as a `--crt-lines` line, then badkeys' default checks on
//! every key found. Checks nothing panics; a key's canonical SubjectPublicKeyInfo reads back
//! as the same public key and hashes to its `spki_sha256`; reading is deterministic.
#![no_main]

use std::sync::LazyLock;

use d4_keys::check::{check_key, Checks};
use d4_keys::key::{parse_crt_line, parse_keys, parse_spki, rsa_moduli, KeyData, Parsed};
use libfuzzer_sys::fuzz_target;
use sha2::{Digest, Sha256};

fn public(d: &KeyData) -> KeyData {
    match d {
        KeyData::Rsa { n, e, .. } => KeyData::Rsa {
            n: n.clone(),
            e: e.clone(),
            private: None,
        },
        other => other.clone(),
    }
}

/// Built once: the small-primes product and ROCA's tables are the costly part.
static CHECKS: LazyLock<Checks> = LazyLock::new(|| Checks::with_warnings(true));

fuzz_target!(|data: &[u8]| {
    let checks = &*CHECKS;
    let keys = parse_keys(data);
    assert_eq!(keys, parse_keys(data));
    for k in &keys {
        let Parsed::Key(key) = k else { continue };
        assert!(["rsa", "dsa", "ec", "dh"].contains(&key.type_name()));
        if let Some(der) = key.spki_der() {
            let digest: [u8; 32] = Sha256::digest(&der).into();
            assert_eq!(key.spki_sha256, Some(digest));
            match parse_spki(&der) {
                Parsed::Key(back) => assert_eq!(back.data, public(&key.data)),
                other => panic!("canonical SPKI of {key:?} reads as {other:?}"),
            }
        }
        // keep the arithmetic checks to sizes a fuzzer can afford per input
        if key.bits().is_none_or(|b| b <= 4096) {
            let _ = check_key(key, checks);
        }
    }
    let _ = rsa_moduli(data);
    let _ = parse_crt_line(&String::from_utf8_lossy(data));
});
