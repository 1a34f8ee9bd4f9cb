use super::*;
use crate::repo::changes::manifest::RelColumn;
use crate::repo::manifest::Column;
use crate::restore::pitr::merge::{MergeCounts, MergedReader};
use std::io::Read;
use std::sync::Arc;

fn col(name: &str, key: bool) -> RelColumn {
    RelColumn {
        name: name.into(),
        type_oid: 25,
        typmod: -1,
        type_name: Some("text".into()),
        base_type: None,
        attnum: None,
        key,
    }
}

fn entry(cols: &[&str], rows: u64) -> TableEntry {
    TableEntry {
        schema: "public".into(),
        name: "t".into(),
        columns: cols
            .iter()
            .map(|c| Column {
                name: (*c).into(),
                type_name: "text".into(),
                default: None,
                base_type: None,
                nondeterministic: false,
                generated: false,
            })
            .collect(),
        rows,
        raw_bytes: 0,
        objects: Vec::new(),
        parents: Vec::new(),
        extension_config: false,
        large_objects: false,
    }
}

fn rel(replident: &str, cols: &[(&str, bool)]) -> RelationDesc {
    RelationDesc {
        relid: 1,
        schema: "public".into(),
        name: "t".into(),
        replident: replident.into(),
        columns: cols.iter().map(|(n, k)| col(n, *k)).collect(),
    }
}

fn t(s: &str) -> Value {
    match s {
        "NULL" => Value::Null,
        "TOAST" => Value::Unchanged,
        s => Value::Text(s.as_bytes().to_vec()),
    }
}

fn row(vals: &[&str]) -> Vec<Value> {
    vals.iter().map(|v| t(v)).collect()
}

/// The merged stream of `base` (COPY text) and `d`, and its counts.
fn merge(base: &str, rows: u64, d: TableDelta) -> Result<(String, MergeCounts), std::io::Error> {
    let mut r = MergedReader::new(base.as_bytes(), Arc::new(d.seal()), rows, "public.t".into());
    let mut out = String::new();
    r.read_to_string(&mut out)?;
    Ok((out, r.counts))
}

fn sorted(s: &str) -> Vec<&str> {
    let mut v: Vec<&str> = s.lines().collect();
    v.sort_unstable();
    v
}

/// A delta of table 0 in a store of its own.
fn delta(shape: Shape) -> TableDelta {
    let db = Arc::new(crate::restore::pitr::store::DeltaDb::create(None).unwrap());
    TableDelta::new(shape, db, 0)
}

fn keyed() -> TableDelta {
    let e = entry(&["id", "owner", "body"], 3);
    delta(
        Shape::of(
            &rel("d", &[("id", true), ("owner", false), ("body", false)]),
            &e,
        )
        .unwrap(),
    )
}

const BASE: &str = "1\ta\tx\n2\tb\ty\n3\tc\tz\n";

#[test]
fn insert_update_delete_give_the_table_at_the_point() {
    let mut d = keyed();
    d.insert(&row(&["4", "d", "w"])).unwrap();
    d.update(None, &row(&["2", "B", "y2"])).unwrap();
    d.delete(OldKind::Key, &row(&["3", "NULL", "NULL"]))
        .unwrap();
    let (out, c) = merge(BASE, 3, d).unwrap();
    assert_eq!(sorted(&out), vec!["1\ta\tx", "2\tB\ty2", "4\td\tw"]);
    assert_eq!(
        c,
        MergeCounts {
            base_rows: 3,
            base_replaced: 2,
            delta_rows: 2
        }
    );
}

#[test]
fn a_key_change_moves_the_row_and_an_insert_after_a_delete_brings_it_back() {
    let mut d = keyed();
    d.update(
        Some((OldKind::Key, &row(&["1", "NULL", "NULL"]))),
        &row(&["10", "a", "x"]),
    )
    .unwrap();
    d.delete(OldKind::Key, &row(&["2", "NULL", "NULL"]))
        .unwrap();
    d.insert(&row(&["2", "b2", "new"])).unwrap();
    let (out, _) = merge(BASE, 3, d).unwrap();
    assert_eq!(sorted(&out), vec!["10\ta\tx", "2\tb2\tnew", "3\tc\tz"]);
}

#[test]
fn unchanged_toast_values_come_from_the_base_row_or_the_earlier_version() {
    let mut d = keyed();
    // Row 1: owner changes, body not sent: the base's body.
    d.update(None, &row(&["1", "A", "TOAST"])).unwrap();
    // Row 4: inserted, then updated without its body: the inserted body.
    d.insert(&row(&["4", "d", "long"])).unwrap();
    d.update(None, &row(&["4", "D", "TOAST"])).unwrap();
    // Row 2: its key changes and its body is not sent: base row 2's body.
    d.update(
        Some((OldKind::Key, &row(&["2", "NULL", "NULL"]))),
        &row(&["20", "b", "TOAST"]),
    )
    .unwrap();
    let (out, _) = merge(BASE, 3, d).unwrap();
    assert_eq!(
        sorted(&out),
        vec!["1\tA\tx", "20\tb\ty", "3\tc\tz", "4\tD\tlong"]
    );
    assert!(!out.contains("\\u"), "{out}");
}

#[test]
fn a_value_kept_from_a_base_row_that_does_not_exist_is_refused() {
    let mut d = keyed();
    d.update(None, &row(&["9", "x", "TOAST"])).unwrap();
    let e = merge(BASE, 3, d).unwrap_err();
    assert!(
        e.to_string().contains("which the base does not hold"),
        "{e}"
    );
}

#[test]
fn truncate_drops_the_base_and_what_came_before_it() {
    let mut d = keyed();
    d.insert(&row(&["4", "d", "w"])).unwrap();
    d.truncate().unwrap();
    d.insert(&row(&["5", "e", "v"])).unwrap();
    let (out, c) = merge(BASE, 3, d).unwrap();
    assert_eq!(sorted(&out), vec!["5\te\tv"]);
    assert_eq!(c.base_replaced, 3);
}

#[test]
fn whole_row_tables_count_equal_rows_apart() {
    let e = entry(&["a", "b"], 3);
    let shape = Shape::of(&rel("f", &[("a", true), ("b", true)]), &e).unwrap();
    assert!(shape.whole_row());
    let mut d = delta(shape);
    // Base holds (x,1) twice and (y,2) once; delete one (x,1), update
    // (y,2) to (y,3), insert (z,4) twice and delete it once.
    d.delete(OldKind::Full, &row(&["x", "1"])).unwrap();
    d.update(Some((OldKind::Full, &row(&["y", "2"]))), &row(&["y", "3"]))
        .unwrap();
    d.insert(&row(&["z", "4"])).unwrap();
    d.insert(&row(&["z", "4"])).unwrap();
    d.delete(OldKind::Full, &row(&["z", "4"])).unwrap();
    let (out, _) = merge("x\t1\nx\t1\ny\t2\n", 3, d).unwrap();
    assert_eq!(sorted(&out), vec!["x\t1", "y\t3", "z\t4"]);
}

#[test]
fn a_delete_of_a_row_the_base_does_not_hold_is_refused() {
    let e = entry(&["a", "b"], 1);
    let mut d = delta(Shape::of(&rel("f", &[("a", true), ("b", true)]), &e).unwrap());
    d.delete(OldKind::Full, &row(&["q", "9"])).unwrap();
    let e = merge("x\t1\n", 1, d).unwrap_err();
    assert!(
        e.to_string()
            .contains("deletes a row the base does not hold"),
        "{e}"
    );
}

#[test]
fn the_base_row_count_is_checked_against_the_manifest() {
    let d = keyed();
    let e = merge(BASE, 4, d).unwrap_err();
    assert!(
        e.to_string().contains("says 4 rows but its objects hold 3"),
        "{e}"
    );
}

#[test]
fn values_are_escaped_as_copy_writes_them() {
    let mut d = keyed();
    d.insert(&row(&["5", "tab\there", "line\nbreak\\"]))
        .unwrap();
    let (out, _) = merge("", 0, d).unwrap();
    assert_eq!(out, "5\ttab\\there\tline\\nbreak\\\\\n");
}

#[test]
fn a_shape_other_than_the_bases_is_refused() {
    let e = entry(&["id", "owner"], 0);
    let err = Shape::of(
        &rel("d", &[("id", true), ("owner", false), ("extra", false)]),
        &e,
    )
    .unwrap_err();
    assert!(err.to_string().contains("changed shape"), "{err}");
    let err = Shape::of(&rel("d", &[("id", true), ("renamed", false)]), &e).unwrap_err();
    assert!(err.to_string().contains("renamed"), "{err}");
}

#[test]
fn columns_map_by_name_when_the_order_differs() {
    let e = entry(&["id", "owner"], 1);
    let mut d = delta(Shape::of(&rel("d", &[("owner", false), ("id", true)]), &e).unwrap());
    d.update(None, &row(&["z", "1"])).unwrap();
    let (out, _) = merge("1\ta\n", 1, d).unwrap();
    assert_eq!(out, "1\tz\n");
}

#[test]
fn nothing_of_a_row_is_readable_in_the_store_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let db = Arc::new(crate::restore::pitr::store::DeltaDb::create(Some(tmp.path())).unwrap());
    let e = entry(&["id", "owner", "body"], 0);
    let shape = Shape::of(
        &rel("d", &[("id", true), ("owner", false), ("body", false)]),
        &e,
    )
    .unwrap();
    let mut d = TableDelta::new(shape, db.clone(), 0);
    for i in 0..2000 {
        d.insert(&row(&[
            &format!("id-{i}"),
            "erased-subject@example.eu",
            "secret body",
        ]))
        .unwrap();
    }
    let sealed = Arc::new(d.seal());
    // Force what RocksDB holds in memory onto disk, then read every file.
    drop(sealed);
    db.flush().unwrap();
    let mut files = vec![tmp.path().to_path_buf()];
    let mut found = 0;
    while let Some(p) = files.pop() {
        if p.is_dir() {
            for e in std::fs::read_dir(&p).unwrap() {
                files.push(e.unwrap().path());
            }
        } else {
            let bytes = std::fs::read(&p).unwrap();
            for needle in [&b"erased-subject"[..], b"secret body", b"id-1999"] {
                assert!(
                    !bytes.windows(needle.len()).any(|w| w == needle),
                    "{} holds {}",
                    p.display(),
                    String::from_utf8_lossy(needle)
                );
            }
            found += 1;
        }
    }
    let sst = std::fs::read_dir(tmp.path())
        .unwrap()
        .flat_map(|d| std::fs::read_dir(d.unwrap().path()).unwrap())
        .filter(|f| {
            f.as_ref()
                .unwrap()
                .path()
                .extension()
                .is_some_and(|x| x == "sst")
        })
        .count();
    assert!(
        found > 0 && sst > 0,
        "the store wrote no table file ({found} files)"
    );
    drop(db);
    assert_eq!(
        std::fs::read_dir(tmp.path()).unwrap().count(),
        0,
        "the store's directory is left behind"
    );
}

/// Columns appended mid-window (`ALTER TABLE … ADD COLUMN`, replayed): the
/// delta takes the longer shape, and every row stored before, in the base
/// or in the delta, takes the column's value for old rows.
#[test]
fn rows_stored_before_columns_were_appended_take_their_value_for_old_rows() {
    use crate::restore::pitr::merge::Padded;
    let mut d = keyed();
    // Before the ALTER: three fields.
    d.update(None, &row(&["2", "B", "y2"])).unwrap();
    d.insert(&row(&["4", "d", "w"])).unwrap();
    // After it: the relation has a fourth column.
    let e = entry(&["id", "owner", "body", "tier"], 3);
    let longer = Shape::of(
        &rel(
            "d",
            &[
                ("id", true),
                ("owner", false),
                ("body", false),
                ("tier", false),
            ],
        ),
        &e,
    )
    .unwrap();
    assert!(d.shape.extended_by(&longer));
    assert!(!longer.extended_by(&d.shape));
    d.shape = longer;
    d.insert(&row(&["5", "e", "v", "gold"])).unwrap();
    // An unchanged TOAST value in an old column still comes from the base
    // row, which the padding completed first.
    d.update(None, &row(&["3", "C", "TOAST", "silver"]))
        .unwrap();
    let fills = vec![b"7".to_vec()];
    let base = Padded::new(BASE.as_bytes(), fills.clone(), 4);
    let merged = MergedReader::new(base, Arc::new(d.seal()), 3, "public.t".into());
    let mut out = String::new();
    Padded::new(merged, fills, 4)
        .read_to_string(&mut out)
        .unwrap();
    assert_eq!(
        sorted(&out),
        vec![
            "1\ta\tx\t7",
            "2\tB\ty2\t7",
            "3\tC\tz\tsilver",
            "4\td\tw\t7",
            "5\te\tv\tgold",
        ]
    );
}

#[test]
fn a_row_with_more_fields_than_the_table_or_fewer_than_the_base_is_an_error() {
    use crate::restore::pitr::merge::Padded;
    for input in ["1\ta\tx\t7\textra\n", "1\ta\n"] {
        let mut out = String::new();
        let e = Padded::new(input.as_bytes(), vec![b"\\N".to_vec()], 4)
            .read_to_string(&mut out)
            .unwrap_err();
        assert!(
            e.to_string().contains("fields where the table has 4"),
            "{e}"
        );
    }
}
