//! Hex moduli, one per line: the batch GCD's input format today (keys and certificates come
//! through the key parser). Sans-IO: bytes in, one result per non-empty line out.
//!
//! A line is a modulus in hex (upper or lower case, an optional `0x`, surrounding whitespace
//! ignored). Empty lines and lines starting with `#` are skipped. Anything else that is not
//! hex, or is not above 1, is an error value for that line.

use rug::Integer;

/// Why a line is not a modulus.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HexLineError {
    #[error("not hex")]
    NotHex,
    #[error("not a modulus (0 or 1)")]
    TooSmall,
}

/// One non-empty input line (1-based line number) and what it holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HexLine {
    pub line: usize,
    pub modulus: Result<Integer, HexLineError>,
}

/// Parses hex moduli, one per line.
pub fn parse_hex_moduli(bytes: &[u8]) -> Vec<HexLine> {
    bytes
        .split(|&b| b == b'\n')
        .enumerate()
        .filter_map(|(n, raw)| {
            let s = raw.trim_ascii();
            if s.is_empty() || s.starts_with(b"#") {
                return None;
            }
            Some(HexLine {
                line: n + 1,
                modulus: parse_hex(s),
            })
        })
        .collect()
}

fn parse_hex(s: &[u8]) -> Result<Integer, HexLineError> {
    let s = s
        .strip_prefix(b"0x")
        .or_else(|| s.strip_prefix(b"0X"))
        .unwrap_or(s);
    if s.is_empty() || !s.iter().all(u8::is_ascii_hexdigit) {
        return Err(HexLineError::NotHex);
    }
    let x = Integer::parse_radix(s, 16)
        .map(Integer::from)
        .map_err(|_| HexLineError::NotHex)?;
    if x <= 1 {
        return Err(HexLineError::TooSmall);
    }
    Ok(x)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn lines_are_parsed_and_bad_ones_are_errors() {
        let got = parse_hex_moduli(b"# corpus\n  0x7735 \n\nC5\r\nzz\n1\n00ff");
        let want = vec![
            HexLine {
                line: 2,
                modulus: Ok(Integer::from(0x7735)),
            },
            HexLine {
                line: 4,
                modulus: Ok(Integer::from(197)),
            },
            HexLine {
                line: 5,
                modulus: Err(HexLineError::NotHex),
            },
            HexLine {
                line: 6,
                modulus: Err(HexLineError::TooSmall),
            },
            HexLine {
                line: 7,
                modulus: Ok(Integer::from(255)),
            },
        ];
        assert_eq!(got, want);
    }
}
