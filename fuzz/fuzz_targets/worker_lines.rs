//! Fuzz the line splitter of the line-based workers (types 3, 4, 6, 8 and extended
//! types): sensor bytes in arbitrary chunks. Never a panic; every line given out is at most
//! the bound; the lines and their ends are the same whatever the chunking; and they give
//! back exactly the input (lines + `\n` where a line ended by one).
#![no_main]

use d4_worker::lines::{LineEnd, LineSplitter};
use libfuzzer_sys::fuzz_target;

fn split(max: usize, input: &[u8], step: usize) -> Vec<(Vec<u8>, LineEnd)> {
    let mut s = LineSplitter::new(max);
    let mut out = Vec::new();
    for chunk in input.chunks(step.max(1)) {
        s.push(chunk, |l, e| out.push((l.to_vec(), e)));
        assert!(s.pending() <= max);
    }
    s.finish(|l, e| out.push((l.to_vec(), e)));
    out
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 2 {
        return;
    }
    let max = usize::from(data[0]) + 1;
    let step = usize::from(data[1]) + 1;
    let input = &data[2..];
    let whole = split(max, input, input.len());
    assert_eq!(split(max, input, step), whole);
    assert_eq!(split(max, input, 1), whole);
    let mut back = Vec::with_capacity(input.len());
    for (line, end) in &whole {
        assert!(line.len() <= max);
        back.extend_from_slice(line);
        if *end == LineEnd::Newline {
            back.push(b'\n');
        }
    }
    assert_eq!(back, input);
});
