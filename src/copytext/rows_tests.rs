//! Unit tests of the COPY text row and field iterator.

use super::*;
use crate::copytext::escape::decoded;
use rand::RngExt;

/// Every row of `data` fed in pieces of `piece` bytes, as its raw fields.
fn rows_of(data: &[u8], piece: usize) -> (Vec<Vec<Vec<u8>>>, Rows) {
    let mut rows = Rows::new();
    let mut out = Vec::new();
    for chunk in data.chunks(piece.max(1)) {
        rows.feed(chunk, |row| {
            let fields: Vec<Vec<u8>> = row.fields().map(<[u8]>::to_vec).collect();
            assert_eq!(row.field_count(), fields.len());
            for (n, f) in fields.iter().enumerate() {
                assert_eq!(row.field(n), Some(&f[..]));
            }
            assert_eq!(row.field(fields.len()), None);
            out.push(fields);
        });
    }
    (out, rows)
}

fn fields(raw: &[&[u8]]) -> Vec<Vec<u8>> {
    raw.iter().map(|f| f.to_vec()).collect()
}

#[test]
fn rows_split_into_raw_fields() {
    let (rows, stream) = rows_of(b"1\ta\tb\n2\t\t\n", 1 << 20);
    assert_eq!(
        rows,
        vec![fields(&[b"1", b"a", b"b"]), fields(&[b"2", b"", b""])]
    );
    assert_eq!(stream.rows(), 2);
    assert!(stream.at_row_start());
}

#[test]
fn escaped_tabs_and_newlines_stay_inside_their_field() {
    let data = b"1\ta\\tb\\nc\\\\\t\\N\n";
    let (rows, _) = rows_of(data, 1 << 20);
    assert_eq!(rows, vec![fields(&[b"1", br"a\tb\nc\\", br"\N"])]);
    let mut scratch = Vec::new();
    assert_eq!(decoded(&rows[0][1], &mut scratch), Some(&b"a\tb\nc\\"[..]));
    assert_eq!(decoded(&rows[0][2], &mut scratch), None, "\\N is NULL");
    assert_eq!(decoded(b"\\\\N", &mut scratch), Some(&b"\\N"[..]));
}

#[test]
fn field_picks_one_field_or_none() {
    let mut seen = Vec::new();
    Rows::new().feed(b"a\tb\tc\n\nx\n", |row| {
        seen.push((
            row.field(0).map(<[u8]>::to_vec),
            row.field(2).map(<[u8]>::to_vec),
            row.field_count(),
            row.is_empty(),
            row.bytes().to_vec(),
        ));
    });
    assert_eq!(
        seen,
        vec![
            (
                Some(b"a".to_vec()),
                Some(b"c".to_vec()),
                3,
                false,
                b"a\tb\tc".to_vec()
            ),
            (Some(Vec::new()), None, 1, true, Vec::new()),
            (Some(b"x".to_vec()), None, 1, false, b"x".to_vec()),
        ]
    );
}

#[test]
fn rows_split_across_pieces_are_put_together() {
    let data = b"10\talpha\\tbeta\t\\N\n20\t\t\n\n30\tgamma\tdelta\n";
    let (whole, _) = rows_of(data, data.len());
    assert_eq!(whole.len(), 4);
    for piece in 1..data.len() {
        let (rows, stream) = rows_of(data, piece);
        assert_eq!(rows, whole, "pieces of {piece}");
        assert_eq!(stream.rows(), 4);
        assert!(stream.at_row_start());
    }
}

#[test]
fn a_final_row_without_newline_is_held_back() {
    for piece in [1, 3, 100] {
        let (rows, stream) = rows_of(b"1\ta\n2\tb", piece);
        assert_eq!(rows, vec![fields(&[b"1", b"a"])], "pieces of {piece}");
        assert_eq!(stream.rows(), 1);
        assert!(!stream.at_row_start(), "the stream ends inside a row");
    }
    // Its newline completes it, in the next piece.
    let mut stream = Rows::new();
    let mut seen = Vec::new();
    stream.feed(b"1\ta\n2\tb", |row| seen.push(row.bytes().to_vec()));
    stream.feed(b"", |row| seen.push(row.bytes().to_vec()));
    assert!(!stream.at_row_start());
    stream.feed(b"\n", |row| seen.push(row.bytes().to_vec()));
    assert_eq!(seen, vec![b"1\ta".to_vec(), b"2\tb".to_vec()]);
    assert!(stream.at_row_start());
    let (rows, stream) = rows_of(b"", 1);
    assert!(rows.is_empty() && stream.at_row_start());
}

#[test]
fn rows_and_fields_match_a_naive_split_on_random_text() {
    let mut rng = rand::rng();
    for len in [0, 1, 63, 64, 65, 200, 1000, 5000] {
        let mut data: Vec<u8> = (0..len)
            .map(|_| match rng.random_range(0..12) {
                0 => b'\t',
                1 => b'\n',
                2 => b'\\',
                _ => rng.random_range(b'a'..=b'z'),
            })
            .collect();
        data.push(b'\n');
        let naive: Vec<Vec<Vec<u8>>> = data[..data.len() - 1]
            .split(|&b| b == b'\n')
            .map(|line| line.split(|&b| b == b'\t').map(<[u8]>::to_vec).collect())
            .collect();
        for piece in [1, 7, 64, 100, data.len()] {
            let (rows, stream) = rows_of(&data, piece);
            assert_eq!(rows, naive, "len {len}, pieces of {piece}");
            assert_eq!(stream.rows(), naive.len() as u64);
            assert_eq!(count(&data), naive.len() as u64);
        }
    }
}

#[test]
fn row_ends_are_found() {
    assert_eq!(count(b"a\nb\n\nc"), 3);
    assert_eq!(count(b""), 0);
    assert_eq!(first_end(b"ab\ncd\n"), Some(2));
    assert_eq!(first_end(b"abc"), None);
    assert!(ends_row(b"a\n"));
    assert!(!ends_row(b"a\nb"));
    assert!(!ends_row(b""));
}
