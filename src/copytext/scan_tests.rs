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

/// `len` random bytes with a tab and a newline each about once in `dense`
/// bytes, or (one time in three) once in `sparse` bytes.
fn random_text(rng: &mut impl rand::Rng, len: usize, sparse: u32, dense: u32) -> Vec<u8> {
    let every = if rng.random_range(0..3) == 0 {
        sparse
    } else {
        dense
    };
    (0..len)
        .map(|_| match rng.random_range(0..every) {
            0 => b'\t',
            1 => b'\n',
            _ => rng.random(),
        })
        .collect()
}

#[test]
fn near_probes_match_a_naive_search_on_random_text() {
    let mut rng = rand::rng();
    for len in (0..200).chain([1000, 4096]) {
        // Sparse separators too, so the search runs past the inline probes
        // into memchr.
        let input = random_text(&mut rng, len, 400, 20);
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

/// The first `width` fields of the row at `start`, split byte by byte.
fn naive_fields(input: &[u8], start: usize, width: usize) -> (Fields, Vec<(usize, usize)>) {
    let mut spans = Vec::new();
    let mut field = start;
    for (i, &byte) in input.iter().enumerate().skip(start) {
        if spans.len() == width {
            break;
        }
        match byte {
            b'\t' | b'\n' => {
                spans.push((field, i));
                if byte == b'\n' {
                    let verdict = if spans.len() < width {
                        Fields::Short(spans.len())
                    } else {
                        Fields::Row(i)
                    };
                    return (verdict, spans);
                }
                field = i + 1;
            }
            _ => {}
        }
    }
    if spans.len() < width {
        return (Fields::Incomplete, spans);
    }
    match naive(input, field, true) {
        Some(p) => (Fields::Row(p), spans),
        None => (Fields::Incomplete, spans),
    }
}

#[test]
fn row_splits_match_a_naive_split_on_random_text() {
    let mut rng = rand::rng();
    for len in (0..300).chain([1000, 4096, 10_007]) {
        let input = random_text(&mut rng, len, 300, 12);
        for width in [1, 2, 3, 4, 7, 11, 70] {
            // Row by row, as the filter walks them (after a short row, on
            // from its newline).
            let mut scanner = Scanner::new(&input);
            let mut start = 0;
            while start <= len {
                let (want, want_spans) = naive_fields(&input, start, width);
                let mut spans = vec![(usize::MAX, usize::MAX); width];
                let got = scanner.fields(start, &mut spans);
                let n = want_spans.len();
                assert_eq!(got, want, "masks: len {len} width {width} start {start}");
                assert_eq!(spans[..n], want_spans[..], "masks spans at {start}");
                let mut spans = vec![(usize::MAX, usize::MAX); width];
                let got = fields_near(&input, start, &mut spans);
                assert_eq!(got, want, "near: len {len} width {width} start {start}");
                assert_eq!(spans[..n], want_spans[..], "near spans at {start}");
                start = match want {
                    Fields::Row(p) => p + 1,
                    Fields::Short(_) => want_spans[n - 1].1 + 1,
                    Fields::Incomplete => break,
                };
            }
        }
    }
}
