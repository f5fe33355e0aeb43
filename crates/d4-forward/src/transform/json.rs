//! JSON lines (type 6, extended types `ja3-jl` and `filewatcherjson`): fields dropped or
//! pseudonymised by name.
//!
//! A field is named by a top-level key or a dotted path `a.b.c`; an array on the way
//! applies the rest of the path to each element (`certs.subject`). A key that itself holds
//! dots is found too (the whole rest of the path is tried as a key first). Drops apply
//! before pseudonyms. A pseudonymised string that is an IP address becomes its Crypto-PAn
//! pseudonym (same family); any other string, number or boolean becomes the hex of
//! HMAC-SHA256(key, its text) cut to 16 bytes; arrays are pseudonymised element by
//! element, objects as their compact JSON text; `null` stays.
//!
//! A line whose fields changed is written back compactly (keys in sorted order); a line
//! with nothing to change leaves as it came. A line that is not JSON is dropped and
//! counted.

use serde_json::{Map, Value};

use super::cryptopan::Pseudonymiser;
use super::Pushed;

#[derive(Clone)]
pub struct JsonTransform {
    drop: Vec<String>,
    pseudonymise: Vec<String>,
    pseudo: Option<Pseudonymiser>,
}

impl JsonTransform {
    /// `pseudo` is required when `pseudonymise` is not empty.
    pub fn new(
        drop: Vec<String>,
        pseudonymise: Vec<String>,
        pseudo: Option<Pseudonymiser>,
    ) -> JsonTransform {
        JsonTransform {
            drop,
            pseudonymise,
            pseudo,
        }
    }

    pub fn line(&mut self, line: &[u8], out: &mut Vec<u8>, pushed: &mut Pushed) {
        let trimmed = line.trim_ascii();
        if trimmed.is_empty() {
            return;
        }
        let Ok(mut v) = serde_json::from_slice::<Value>(trimmed) else {
            pushed.dropped += 1;
            return;
        };
        let mut changed = false;
        for path in &self.drop {
            changed |= walk(&mut v, path, &mut |m, key| m.remove(key).is_some());
        }
        if let Some(p) = self.pseudo.as_mut() {
            for path in &self.pseudonymise {
                changed |= walk(&mut v, path, &mut |m, key| {
                    m.get_mut(key).is_some_and(|x| pseudonymise(p, x))
                });
            }
        }
        if changed {
            if serde_json::to_writer(&mut *out, &v).is_err() {
                pushed.dropped += 1;
                return;
            }
        } else {
            out.extend_from_slice(trimmed);
        }
        out.push(b'\n');
        pushed.units += 1;
    }
}

/// Applies `leaf` to every object that holds the field named by `path`; whether anything
/// changed.
fn walk(
    v: &mut Value,
    path: &str,
    leaf: &mut dyn FnMut(&mut Map<String, Value>, &str) -> bool,
) -> bool {
    match v {
        Value::Object(m) => {
            let mut changed = leaf(m, path);
            if let Some((head, tail)) = path.split_once('.') {
                if let Some(child) = m.get_mut(head) {
                    changed |= walk(child, tail, leaf);
                }
            }
            changed
        }
        Value::Array(a) => {
            let mut changed = false;
            for x in a {
                changed |= walk(x, path, leaf);
            }
            changed
        }
        _ => false,
    }
}

fn pseudonymise(p: &mut Pseudonymiser, x: &mut Value) -> bool {
    match x {
        Value::Null => false,
        Value::String(s) => {
            *s = p.text(s);
            true
        }
        Value::Array(a) => {
            let mut changed = false;
            for e in a {
                changed |= pseudonymise(p, e);
            }
            changed
        }
        Value::Bool(_) | Value::Number(_) | Value::Object(_) => {
            *x = Value::String(p.token(x.to_string().as_bytes()));
            true
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(drop: &[&str], pseudo: &[&str]) -> JsonTransform {
        JsonTransform::new(
            drop.iter().map(|s| s.to_string()).collect(),
            pseudo.iter().map(|s| s.to_string()).collect(),
            Some(Pseudonymiser::new(&[
                21, 34, 23, 141, 51, 164, 207, 128, 19, 10, 91, 22, 73, 144, 125, 16, 216, 152,
                143, 131, 121, 121, 101, 39, 98, 87, 76, 45, 42, 132, 34, 2,
            ])),
        )
    }

    fn run(t: &mut JsonTransform, line: &str) -> (String, Pushed) {
        let mut out = Vec::new();
        let mut p = Pushed::default();
        t.line(line.as_bytes(), &mut out, &mut p);
        (String::from_utf8(out).unwrap(), p)
    }

    #[test]
    fn drops_and_pseudonymises_by_path() {
        let mut x = t(&["secret", "a.b"], &["src", "dst.ip", "user", "n"]);
        let (out, p) = run(
            &mut x,
            r#"{"secret":1,"a":{"b":2,"c":3},"src":"128.11.68.132","dst":[{"ip":"2001:db8::1"},{"ip":null}],"user":"alice","n":7,"keep":"x"}"#,
        );
        assert_eq!(p.units, 1);
        let v: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v.get("secret"), None);
        assert_eq!(v["a"], serde_json::json!({"c": 3}));
        assert_eq!(v["src"], "135.242.180.132");
        assert_eq!(v["dst"][0]["ip"], "4401:2bc:603f:d91d:27f:ff8e:e6f1:dc1e");
        assert_eq!(v["dst"][1]["ip"], Value::Null);
        assert_eq!(v["user"].as_str().unwrap().len(), 32);
        assert_ne!(v["user"], "alice");
        assert_eq!(v["n"].as_str().unwrap().len(), 32);
        assert_eq!(v["keep"], "x");
        // the same key gives the same pseudonym
        let (again, _) = run(&mut x, r#"{"user":"alice"}"#);
        assert_eq!(
            serde_json::from_str::<Value>(&again).unwrap()["user"],
            v["user"]
        );
    }

    #[test]
    fn dotted_keys_unchanged_lines_and_garbage() {
        let mut x = t(&["misp.org"], &[]);
        let (out, _) = run(&mut x, r#"{"misp.org":"x","y":1}"#);
        assert_eq!(out, "{\"y\":1}\n");
        // nothing to change: the line leaves as it came (key order kept)
        let (out, _) = run(&mut x, "  {\"z\": 1, \"a\": 2}\r");
        assert_eq!(out, "{\"z\": 1, \"a\": 2}\n");
        let (out, p) = run(&mut x, "{not json");
        assert_eq!((out.as_str(), p.units, p.dropped), ("", 0, 1));
        let (out, p) = run(&mut x, "   ");
        assert_eq!((out.as_str(), p.units, p.dropped), ("", 0, 0));
    }
}
