use super::*;

fn entry(raw: u64, rows: u64) -> ObjectEntry {
    ObjectEntry {
        key: "k".into(),
        size: 0,
        blake3: String::new(),
        raw_size: raw,
        rows,
    }
}

fn run(data: &'static [u8], columns: usize, rows: u64) -> (u64, Vec<Problem>) {
    parse(
        Box::new(data),
        &entry(data.len() as u64, rows),
        Payload::Copy { columns },
    )
    .unwrap()
}

#[test]
fn copy_rows_and_fields_are_counted() {
    let (rows, p) = run(b"1\ta\\tb\t\\N\n2\t\t\n", 3, 2);
    assert_eq!(rows, 2);
    assert!(p.is_empty(), "{p:?}");
    let (_, p) = run(b"1\ta\n2\n", 2, 2);
    assert_eq!(p.len(), 1, "{p:?}");
    assert!(p[0].to_string().contains("row 2 has 1"), "{}", p[0]);
    let (_, p) = run(b"1\ta\n2\tb", 2, 2);
    assert!(
        p.iter().any(|p| p.to_string().contains("inside a row")),
        "{p:?}"
    );
}

#[test]
fn zero_column_tables_have_empty_lines() {
    let (rows, p) = run(b"\n\n\n", 0, 3);
    assert_eq!(rows, 3);
    assert!(p.is_empty(), "{p:?}");
    let (_, p) = run(b"\nx\n", 0, 2);
    assert_eq!(p.len(), 1, "{p:?}");
}
