//! Unit tests of the separator scanner against a byte-by-byte search.

use super::*;
use rand::RngExt;

fn naive(input: &[u8], pos: usize, newline_only: bool) -> Option<usize> {
    (pos..input.len()).find(|&i| input[i] == b'\n' || (!newline_only && input[i] == b'\t'))
}

#[test]
fn masks_mark_exactly_tabs_and_newlines() {
    let mut chunk = [b'a'; BLOCK];
    for (i, c) in chunk.iter_mut().enumerate() {
        *c = match i % 7 {
            0 => b'\t',
            3 => b'\n',
            5 => 0x89, // high bit set: must not confuse a sign-based compare
            _ => i as u8,
        };
    }
    let (t, n) = masks(&chunk);
    for (i, &c) in chunk.iter().enumerate() {
        assert_eq!(t >> i & 1 == 1, c == b'\t', "tab bit {i}");
        assert_eq!(n >> i & 1 == 1, c == b'\n', "newline bit {i}");
    }
}

#[test]
fn separators_match_a_naive_search_on_random_text() {
    let mut rng = rand::rng();
    for len in (0..300).chain([1000, 4096, 10_007]) {
        let input: Vec<u8> = (0..len)
            .map(|_| match rng.random_range(0..20) {
                0 => b'\t',
                1 => b'\n',
                2 => b'\\',
                _ => rng.random(),
            })
            .collect();
        // Forward walks, as the filter does, over separators and newlines.
        for newline_only in [false, true] {
            let mut s = Scanner::new(&input);
            let mut pos = 0;
            loop {
                let got = if newline_only {
                    s.next_newline(pos)
                } else {
                    s.next_separator(pos)
                };
                assert_eq!(got, naive(&input, pos, newline_only), "len {len} pos {pos}");
                match got {
                    Some(p) => {
                        pos = p + 1 + rng.random_range(0..3);
                    }
                    None => break,
                }
            }
        }
        // Arbitrary positions, including backwards jumps and past the end.
        let mut s = Scanner::new(&input);
        for _ in 0..50 {
            let pos = rng.random_range(0..len + 70);
            assert_eq!(s.next_separator(pos), naive(&input, pos, false));
        }
    }
}

#[test]
fn near_probes_match_a_naive_search_on_random_text() {
    let mut rng = rand::rng();
    for len in (0..200).chain([1000, 4096]) {
        // Sparse separators too, so the search runs past the inline probes
        // into memchr.
        let sparse = rng.random_range(0..3) == 0;
        let input: Vec<u8> = (0..len)
            .map(
                |_| match rng.random_range(0..if sparse { 400 } else { 20 }) {
                    0 => b'\t',
                    1 => b'\n',
                    _ => rng.random_range(b' '..=b'~'),
                },
            )
            .collect();
        for pos in 0..=len {
            assert_eq!(
                next_separator_near(&input, pos),
                naive(&input, pos, false),
                "separator, len {len} pos {pos}"
            );
            assert_eq!(
                next_newline_near(&input, pos),
                naive(&input, pos, true),
                "newline, len {len} pos {pos}"
            );
        }
    }
}
