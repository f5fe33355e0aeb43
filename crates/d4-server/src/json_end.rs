//! Where a JSON value arriving in pieces ends (the type-2 meta header): depth counting
//! outside strings, linear in the bytes fed whatever their chunking, so the session parses
//! the header once, when it is complete.

/// Finds the end of a JSON object arriving in pieces (depth counting outside strings):
/// linear in the bytes fed, whatever their chunking. Fires once.
#[derive(Debug, Default)]
pub(crate) struct JsonEnd {
    depth: u32,
    in_str: bool,
    escaped: bool,
    started: bool,
    done: bool,
}

impl JsonEnd {
    /// Feeds bytes; true once, when the outermost object or array closes within them.
    pub(crate) fn feed(&mut self, bytes: &[u8]) -> bool {
        if self.done {
            return false;
        }
        for &b in bytes {
            if self.in_str {
                match b {
                    _ if self.escaped => self.escaped = false,
                    b'\\' => self.escaped = true,
                    b'"' => self.in_str = false,
                    _ => {}
                }
                continue;
            }
            match b {
                b'"' => self.in_str = true,
                b'{' | b'[' => {
                    self.started = true;
                    self.depth = self.depth.saturating_add(1);
                }
                b'}' | b']' => {
                    self.depth = self.depth.saturating_sub(1);
                    if self.started && self.depth == 0 {
                        self.done = true;
                        return true;
                    }
                }
                _ => {}
            }
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_end_is_found_once() {
        let mut j = JsonEnd::default();
        assert!(!j.feed(b"  {\"a\": [1, {\"b\": \"]}\"}"));
        assert!(j.feed(b"]}  "));
        assert!(!j.feed(b"}"));
    }
}
