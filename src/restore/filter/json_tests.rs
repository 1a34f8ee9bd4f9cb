//! Declared references at a JSON path, through the row filter.

use super::tests::MemSet;
use super::*;
use crate::erasure::config::SubjectType;

/// `events (id, payload jsonb)` with a check at `$.actor.id` against the
/// dropped keys of users.
fn events_plan() -> TablePlan {
    TablePlan {
        table: "public.events".into(),
        ncols: 2,
        roots: vec![],
        fks: vec![FkCheck {
            name: "declared reference public.events.payload $.actor.id -> public.users.id".into(),
            columns: vec![1],
            set: SetRef::Dropped(vec![(0, 0)]),
            effect: Effect::Hit,
            path: Some(crate::jsonpath::JsonPath::parse("$.actor.id").unwrap()),
            redacts: false,
        }],
        records: vec![],
        forms: Default::default(),
        rewrites: vec![],
        action: Default::default(),
        policy: None,
    }
}

fn users_dropped(ids: &[&str]) -> KeySet {
    let mut s = KeySet::default();
    for id in ids {
        s.insert(value_key(id.as_bytes()));
    }
    s
}

#[test]
fn a_subject_id_at_the_path_drops_the_row_wherever_it_is_spelled() {
    let plan = events_plan();
    let dropped = users_dropped(&["5"]);
    let list = MemSet::of(SubjectType::Bigint, &[]);
    // COPY text: a backslash in the document is written `\\`.
    let input = concat!(
        "1\t{\"actor\": {\"id\": 5}}\n",
        "2\t{\"actor\": {\"id\": \"5\"}}\n",
        "3\t{\"note\": \"a \\\\\\\"b\\\\\\\" \\\\\\\\\", \"actor\": {\"id\": 5}}\n",
        "4\t{\"id\": 5, \"actor\": {\"id\": 55}}\n",
        "5\t{\"actor\": null}\n",
        "6\t\\N\n",
        "7\t{\"actor\": {\"id\": 4}, \"target\": {\"id\": 5}}\n",
    );
    let mut f = RowFilter::new(
        &plan,
        &list,
        SubjectType::Bigint,
        vec![Probe::Parent(&dropped)],
        vec![],
    );
    let mut out = Vec::new();
    f.filter_rows(input.as_bytes(), Some(&mut out)).unwrap();
    let kept: Vec<&str> = std::str::from_utf8(&out)
        .unwrap()
        .lines()
        .map(|l| l.split('\t').next().unwrap())
        .collect();
    assert_eq!(kept, ["4", "5", "6", "7"]);
    assert_eq!(f.stats().rows_dropped, 3);
}

#[test]
fn a_document_that_is_not_json_stops_the_pass_naming_its_row() {
    let plan = events_plan();
    let dropped = users_dropped(&["5"]);
    let list = MemSet::of(SubjectType::Bigint, &[]);
    // The bad document is the last row: it must not slip out unchecked.
    let input =
        "1\t{\"actor\": {\"id\": 4}}\n2\t{\"actor\": {\"id\": 6}}\n3\t{\"actor\": {\"id\": 5}\n";
    let mut f = RowFilter::new(
        &plan,
        &list,
        SubjectType::Bigint,
        vec![Probe::Parent(&dropped)],
        vec![],
    );
    let mut out = Vec::new();
    let err = f.filter_rows(input.as_bytes(), Some(&mut out)).unwrap_err();
    assert!(matches!(&err, FilterError::BadJson { row: 3, .. }), "{err}");
}
