//! Unit tests of the COPY row filter on in-memory input.

use super::*;
use crate::erasure::config::SubjectType;
use crate::erasure::{ErasureSet, key_of};
use std::collections::HashSet;

/// A plain in-memory erasure set for tests.
pub struct MemSet(pub HashSet<u128>);

impl MemSet {
    pub fn of(t: SubjectType, ids: &[&str]) -> MemSet {
        MemSet(
            ids.iter()
                .map(|s| key_of(t, s.as_bytes()).unwrap())
                .collect(),
        )
    }
}

impl ErasureSet for MemSet {
    fn contains(&self, key: u128) -> bool {
        self.0.contains(&key)
    }
    fn len(&self) -> usize {
        self.0.len()
    }
}

/// A reader that hands out at most `n` bytes per call, to cross every
/// buffer boundary.
struct Dribble<'a> {
    data: &'a [u8],
    n: usize,
}

impl Read for Dribble<'_> {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        let k = self.n.min(out.len()).min(self.data.len());
        out[..k].copy_from_slice(&self.data[..k]);
        self.data = &self.data[k..];
        Ok(k)
    }
}

fn run_all(
    f: &mut RowFilter<'_>,
    input: &[u8],
    dribble: Option<usize>,
) -> Result<Vec<u8>, FilterError> {
    let mut got = Vec::new();
    let mut emit = |b: Bytes| {
        got.extend_from_slice(&b);
        Ok(())
    };
    match dribble {
        Some(n) => run_stream(f, Dribble { data: input, n }, Some(&mut emit))?,
        None => run_stream(f, input, Some(&mut emit))?,
    }
    Ok(got)
}

fn users_plan() -> TablePlan {
    TablePlan {
        table: "public.users".into(),
        ncols: 3,
        roots: vec![0],
        fks: vec![],
        records: vec![vec![0]],
        forms: Default::default(),
        rewrites: vec![],
        action: Default::default(),
        policy: None,
    }
}

#[test]
fn decodes_every_copy_escape() {
    let mut out = Vec::new();
    decode_escapes(br"a\\b\tc\nd\re\bf\fg\vh", &mut out);
    assert_eq!(out, b"a\\b\tc\nd\re\x08f\x0cg\x0bh");
    decode_escapes(br"\101\1012\7\0x", &mut out);
    assert_eq!(out, b"AA2\x07\x00x");
    decode_escapes(br"\x41\x4g\xZ\q", &mut out);
    assert_eq!(out, b"A\x04gxZq");
    decode_escapes(b"plain", &mut out);
    assert_eq!(out, b"plain");
    let mut s = Vec::new();
    assert_eq!(decoded(br"\N", &mut s), None);
    assert_eq!(decoded(br"\\N", &mut s), Some(&b"\\N"[..]));
    assert_eq!(
        encode_copy_text(b"a\tb\\c\nd\re"),
        br"a\tb\\c\nd\re".to_vec()
    );
    let mut back = Vec::new();
    decode_escapes(&encode_copy_text(b"x\ty\\z"), &mut back);
    assert_eq!(back, b"x\ty\\z");
}

#[test]
fn drops_listed_bigint_subjects_and_records_their_keys() {
    let erasure = MemSet::of(SubjectType::Bigint, &["2", "4"]);
    let plan = users_plan();
    let mut f = RowFilter::new(
        &plan,
        &erasure,
        SubjectType::Bigint,
        vec![],
        vec![KeySet::default()],
    );
    let input = b"1\talice\t\\N\n2\tbob\t1\n3\tcarol\t2\n4\tdan\t\\N\n";
    let out = run_all(&mut f, input, None).unwrap();
    assert_eq!(out, b"1\talice\t\\N\n3\tcarol\t2\n");
    let (sets, stats) = f.finish();
    assert_eq!(
        stats,
        TableStats {
            rows_read: 4,
            rows_dropped: 2,
            rows_nulled: 0,
            bytes_read: input.len() as u64,
            ..TableStats::default()
        }
    );
    assert_eq!(sets[0].len(), 2);
    assert!(sets[0].contains(value_key(b"2")));
    assert!(sets[0].contains(value_key(b"4")));
}

#[test]
fn uuid_subjects_match_whatever_the_case() {
    let id = "0b6e6f3c-5c1a-4d2e-9f00-aa11bb22cc33";
    let erasure = MemSet::of(SubjectType::Uuid, &[id]);
    let plan = TablePlan {
        table: "public.people".into(),
        ncols: 2,
        roots: vec![1],
        fks: vec![],
        records: vec![],
        forms: Default::default(),
        rewrites: vec![],
        action: Default::default(),
        policy: None,
    };
    let mut f = RowFilter::new(&plan, &erasure, SubjectType::Uuid, vec![], vec![]);
    let input = format!(
        "a\t{}\nb\t{id}\nc\t0b6e6f3c-5c1a-4d2e-9f00-aa11bb22cc34\nd\t\\N\n",
        id.to_uppercase()
    );
    let out = run_all(&mut f, input.as_bytes(), None).unwrap();
    assert_eq!(out, b"c\t0b6e6f3c-5c1a-4d2e-9f00-aa11bb22cc34\nd\t\\N\n");
}

#[test]
fn text_subjects_are_compared_after_decoding_escapes() {
    // The listed id holds a tab and a backslash; COPY writes them escaped.
    let erasure = MemSet::of(SubjectType::Text, &["ab\tc\\d", "Émile"]);
    let plan = TablePlan {
        table: "public.accounts".into(),
        ncols: 2,
        roots: vec![0],
        fks: vec![],
        records: vec![],
        forms: Default::default(),
        rewrites: vec![],
        action: Default::default(),
        policy: None,
    };
    let mut f = RowFilter::new(&plan, &erasure, SubjectType::Text, vec![], vec![]);
    let input =
        "ab\\tc\\\\d\tx\nab\tc\\d\ty\n\\x41b\tz\n\\311mile\tlatin1?\nÉmile\tw\nab\\tc\\\\d \tv\n";
    let out = run_all(&mut f, input.as_bytes(), None).unwrap();
    // Row 2 is not valid COPY for a 2-column table but the filter only looks
    // at column 0 (`ab`), which is not listed.
    assert_eq!(
        out,
        "ab\tc\\d\ty\n\\x41b\tz\n\\311mile\tlatin1?\nab\\tc\\\\d \tv\n".as_bytes()
    );
    assert_eq!(f.stats().rows_dropped, 2);
}

#[test]
fn cascade_child_is_dropped_and_null_reference_is_kept() {
    let erasure = MemSet(HashSet::new());
    let mut users = KeySet::default();
    users.insert(value_key(b"7"));
    let plan = TablePlan {
        table: "public.orders".into(),
        ncols: 3,
        roots: vec![],
        fks: vec![FkCheck {
            name: "orders_user_fk".into(),
            columns: vec![1],
            set: SetRef::Dropped(vec![(0, 0)]),
            effect: Effect::Hit,
            path: None,
            redacts: false,
        }],
        records: vec![vec![0]],
        forms: Default::default(),
        rewrites: vec![],
        action: Default::default(),
        policy: None,
    };
    let mut f = RowFilter::new(
        &plan,
        &erasure,
        SubjectType::Bigint,
        vec![Probe::Parent(&users)],
        vec![KeySet::default()],
    );
    let out = run_all(
        &mut f,
        b"10\t7\t9.50\n11\t8\t1.00\n12\t\\N\t2.00\n13\t7\t3.00\n",
        Some(3),
    )
    .unwrap();
    assert_eq!(out, b"11\t8\t1.00\n12\t\\N\t2.00\n");
    let (sets, stats) = f.finish();
    assert_eq!(stats.rows_dropped, 2);
    // The dropped orders' ids are recorded for order_items.
    assert!(sets[0].contains(value_key(b"10")));
    assert!(sets[0].contains(value_key(b"13")));
}

#[test]
fn composite_keys_hash_as_one_tuple() {
    let mut scratch = Vec::new();
    let k = |a: &[u8], b: &[u8], s: &mut Vec<u8>| tuple_key([a, b].into_iter(), s);
    assert_ne!(k(b"ab", b"c", &mut scratch), k(b"a", b"bc", &mut scratch));

    // Parent (tenant, id) rows dropped by root on column 2 (owner).
    let erasure = MemSet::of(SubjectType::Bigint, &["5"]);
    let parent = TablePlan {
        table: "public.docs".into(),
        ncols: 3,
        roots: vec![2],
        fks: vec![],
        records: vec![vec![0, 1]],
        forms: Default::default(),
        rewrites: vec![],
        action: Default::default(),
        policy: None,
    };
    let mut f = RowFilter::new(
        &parent,
        &erasure,
        SubjectType::Bigint,
        vec![],
        vec![KeySet::default()],
    );
    run_all(&mut f, b"t1\t1\t5\nt1\t2\t6\nt2\t1\t6\n", None).unwrap();
    let (sets, _) = f.finish();
    assert_eq!(sets[0].len(), 1);

    // Child (x, tenant, doc_id) references (tenant, id); escapes decoded first.
    let child = TablePlan {
        table: "public.doc_tags".into(),
        ncols: 3,
        roots: vec![],
        fks: vec![FkCheck {
            name: "fk".into(),
            columns: vec![1, 2],
            set: SetRef::Dropped(vec![(0, 0)]),
            effect: Effect::Hit,
            path: None,
            redacts: false,
        }],
        records: vec![],
        forms: Default::default(),
        rewrites: vec![],
        action: Default::default(),
        policy: None,
    };
    let mut f = RowFilter::new(
        &child,
        &erasure,
        SubjectType::Bigint,
        vec![Probe::Parent(&sets[0])],
        vec![],
    );
    let out = run_all(
        &mut f,
        b"a\tt1\t1\nb\t\\x741\t1\nc\tt1\t2\nd\tt2\t1\ne\t\\N\t1\n",
        None,
    )
    .unwrap();
    assert_eq!(out, b"c\tt1\t2\nd\tt2\t1\ne\t\\N\t1\n");
}

#[test]
fn set_null_and_set_default_rewrite_only_the_referencing_fields() {
    let erasure = MemSet(HashSet::new());
    let mut users = KeySet::default();
    users.insert(value_key(b"7"));
    let plan = TablePlan {
        table: "public.comments".into(),
        ncols: 4,
        roots: vec![],
        fks: vec![
            FkCheck {
                name: "author_fk".into(),
                columns: vec![1],
                set: SetRef::Dropped(vec![(0, 0)]),
                effect: Effect::Rewrite(vec![(1, Replacement::Null)]),
                path: None,
                redacts: false,
            },
            FkCheck {
                name: "editor_fk".into(),
                columns: vec![2],
                set: SetRef::Dropped(vec![(0, 0)]),
                effect: Effect::Rewrite(vec![(2, Replacement::Value(b"0".to_vec()))]),
                path: None,
                redacts: false,
            },
        ],
        records: vec![],
        forms: Default::default(),
        rewrites: vec![],
        action: Default::default(),
        policy: None,
    };
    let probes = vec![Probe::Parent(&users), Probe::Parent(&users)];
    let mut f = RowFilter::new(&plan, &erasure, SubjectType::Bigint, probes, vec![]);
    let input = b"1\t7\t8\thi\\tthere\n2\t8\t7\tyo\n3\t7\t7\t\\N\n4\t8\t8\tkeep\n";
    let out = run_all(&mut f, input, Some(5)).unwrap();
    assert_eq!(
        out,
        b"1\t\\N\t8\thi\\tthere\n2\t8\t0\tyo\n3\t\\N\t0\t\\N\n4\t8\t8\tkeep\n"
    );
    assert_eq!(f.stats().rows_nulled, 3);
    assert_eq!(f.stats().rows_dropped, 0);
}

#[test]
fn unresolved_default_counts_in_a_dry_run_but_refuses_to_write() {
    let erasure = MemSet(HashSet::new());
    let mut users = KeySet::default();
    users.insert(value_key(b"7"));
    let plan = TablePlan {
        table: "public.t".into(),
        ncols: 2,
        roots: vec![],
        fks: vec![FkCheck {
            name: "fk".into(),
            columns: vec![1],
            set: SetRef::Dropped(vec![(0, 0)]),
            effect: Effect::Rewrite(vec![(1, Replacement::Unresolved("f()".into()))]),
            path: None,
            redacts: false,
        }],
        records: vec![],
        forms: Default::default(),
        rewrites: vec![],
        action: Default::default(),
        policy: None,
    };
    let mut f = RowFilter::new(
        &plan,
        &erasure,
        SubjectType::Bigint,
        vec![Probe::Parent(&users)],
        vec![],
    );
    run_stream(&mut f, &b"1\t7\n"[..], None).unwrap();
    assert_eq!(f.stats().rows_nulled, 1);
    let mut f = RowFilter::new(
        &plan,
        &erasure,
        SubjectType::Bigint,
        vec![Probe::Parent(&users)],
        vec![],
    );
    assert!(matches!(
        run_all(&mut f, b"1\t7\n", None),
        Err(FilterError::UnresolvedDefault { .. })
    ));
}

#[test]
fn self_reference_to_the_root_column_checks_the_list() {
    // users(id, invited_by → users.id SET NULL): the inviter may come later.
    let erasure = MemSet::of(SubjectType::Bigint, &["3"]);
    let plan = TablePlan {
        table: "public.users".into(),
        ncols: 2,
        roots: vec![0],
        fks: vec![FkCheck {
            name: "invited_by_fk".into(),
            columns: vec![1],
            set: SetRef::Root,
            effect: Effect::Rewrite(vec![(1, Replacement::Null)]),
            path: None,
            redacts: false,
        }],
        records: vec![vec![0]],
        forms: Default::default(),
        rewrites: vec![],
        action: Default::default(),
        policy: None,
    };
    let mut f = RowFilter::new(
        &plan,
        &erasure,
        SubjectType::Bigint,
        vec![Probe::Root],
        vec![KeySet::default()],
    );
    let out = run_all(&mut f, b"1\t3\n2\t\\N\n3\t1\n4\t3\n", None).unwrap();
    assert_eq!(out, b"1\t\\N\n2\t\\N\n4\t\\N\n");
}

#[test]
fn self_referencing_cascade_reaches_a_fixpoint_over_passes() {
    // nodes(id, parent → nodes.id CASCADE); listed root 1; children appear
    // before their parents, so each pass finds one more level.
    let erasure = MemSet::of(SubjectType::Bigint, &["1"]);
    let plan = TablePlan {
        table: "public.nodes".into(),
        ncols: 2,
        roots: vec![0],
        fks: vec![FkCheck {
            name: "parent_fk".into(),
            columns: vec![1],
            set: SetRef::Dropped(vec![(0, 0)]),
            effect: Effect::Hit,
            path: None,
            redacts: false,
        }],
        records: vec![vec![0]],
        forms: Default::default(),
        rewrites: vec![],
        action: Default::default(),
        policy: None,
    };
    let input = b"4\t3\n3\t2\n2\t1\n1\t\\N\n5\t\\N\n6\t5\n";
    let mut own = vec![KeySet::default()];
    let mut passes = 0;
    loop {
        passes += 1;
        let before = own[0].len();
        let mut f = RowFilter::new(
            &plan,
            &erasure,
            SubjectType::Bigint,
            vec![Probe::Own(0)],
            own,
        );
        run_stream(&mut f, &input[..], None).unwrap();
        own = f.finish().0;
        if own[0].len() == before {
            break;
        }
    }
    assert_eq!(own[0].len(), 4);
    assert!(passes <= 5, "{passes}");
    let mut f = RowFilter::new(
        &plan,
        &erasure,
        SubjectType::Bigint,
        vec![Probe::Own(0)],
        own,
    );
    let out = run_all(&mut f, input, None).unwrap();
    assert_eq!(out, b"5\t\\N\n6\t5\n");
}

#[test]
fn truncated_and_short_rows_fail_by_name() {
    let erasure = MemSet(HashSet::new());
    let plan = users_plan();
    let mut f = RowFilter::new(
        &plan,
        &erasure,
        SubjectType::Bigint,
        vec![],
        vec![KeySet::default()],
    );
    let err = run_all(&mut f, b"1\ta\t\\N\n2\tb", None).unwrap_err();
    assert!(
        err.to_string().contains("public.users") && err.to_string().contains("truncated"),
        "{err}"
    );

    let plan = TablePlan {
        table: "public.t".into(),
        ncols: 3,
        roots: vec![2],
        fks: vec![],
        records: vec![],
        forms: Default::default(),
        rewrites: vec![],
        action: Default::default(),
        policy: None,
    };
    let mut f = RowFilter::new(&plan, &erasure, SubjectType::Bigint, vec![], vec![]);
    let err = run_all(&mut f, b"1\t2\t3\n1\t2\n", None).unwrap_err();
    assert!(
        matches!(
            err,
            FilterError::ShortRow {
                row: 2,
                found: 2,
                needed: 3,
                ..
            }
        ),
        "{err}"
    );

    // Passthrough tables catch truncation too.
    let plan = TablePlan {
        table: "public.p".into(),
        ncols: 1,
        ..Default::default()
    };
    let mut f = RowFilter::new(&plan, &erasure, SubjectType::Bigint, vec![], vec![]);
    assert!(matches!(
        run_all(&mut f, b"a\nb", Some(1)),
        Err(FilterError::Truncated { .. })
    ));
}

#[test]
fn passthrough_counts_rows_and_copies_bytes_exactly() {
    let erasure = MemSet(HashSet::new());
    let plan = TablePlan {
        table: "public.p".into(),
        ncols: 2,
        ..Default::default()
    };
    let input: Vec<u8> = (0..100_000)
        .flat_map(|i| format!("{i}\tv\\t{i}\n").into_bytes())
        .collect();
    let mut f = RowFilter::new(&plan, &erasure, SubjectType::Bigint, vec![], vec![]);
    let out = run_all(&mut f, &input, Some(70_001)).unwrap();
    assert_eq!(out, input);
    assert_eq!(f.stats().rows_read, 100_000);
    let mut f = RowFilter::new(&plan, &erasure, SubjectType::Bigint, vec![], vec![]);
    assert_eq!(run_all(&mut f, b"", None).unwrap(), b"");
    assert_eq!(f.stats().rows_read, 0);
}

#[test]
fn rows_longer_than_the_buffer_and_big_streams_filter_exactly() {
    let erasure = MemSet::of(SubjectType::Bigint, &["2"]);
    let plan = users_plan();
    let long = "x".repeat(3 * READ_BUF);
    let input = format!("1\t{long}\t\\N\n2\t{long}\t\\N\n3\ty\t\\N\n");
    let mut f = RowFilter::new(
        &plan,
        &erasure,
        SubjectType::Bigint,
        vec![],
        vec![KeySet::default()],
    );
    let out = run_all(&mut f, input.as_bytes(), None).unwrap();
    assert_eq!(out, format!("1\t{long}\t\\N\n3\ty\t\\N\n").as_bytes());

    let ids: Vec<String> = (0..50_000)
        .filter(|i| i % 20 == 0)
        .map(|i| i.to_string())
        .collect();
    let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
    let erasure = MemSet::of(SubjectType::Bigint, &refs);
    let input: Vec<u8> = (0..50_000)
        .flat_map(|i| format!("{i}\tname {i}\t\\N\n").into_bytes())
        .collect();
    let want: Vec<u8> = (0..50_000)
        .filter(|i| i % 20 != 0)
        .flat_map(|i| format!("{i}\tname {i}\t\\N\n").into_bytes())
        .collect();
    let mut f = RowFilter::new(
        &plan,
        &erasure,
        SubjectType::Bigint,
        vec![],
        vec![KeySet::default()],
    );
    assert_eq!(run_all(&mut f, &input, Some(4093)).unwrap(), want);
    assert_eq!(f.stats().rows_dropped, 2500);
}

#[test]
fn plain_integers_are_keyed_by_value_and_other_spellings_by_hash() {
    assert_eq!(decimal(b"0"), Some(0));
    assert_eq!(decimal(b"123456"), Some(123_456));
    assert_eq!(decimal(b"-42"), Some((-42i64) as u64));
    assert_eq!(
        decimal(b"999999999999999999"),
        Some(999_999_999_999_999_999)
    );
    // Spellings PostgreSQL does not write for an integer stay text.
    for v in [
        &b""[..],
        b"-",
        b"-0",
        b"007",
        b"+1",
        b" 1",
        b"1 ",
        b"1.0",
        b"12a",
        b"1000000000000000000",
        b"\\N",
    ] {
        assert_eq!(decimal(v), None, "{:?}", String::from_utf8_lossy(v));
    }
    // Distinct values, distinct keys; text and integer spellings differ.
    let keys: std::collections::HashSet<u128> = [
        &b"7"[..],
        b"-7",
        b"07",
        b"70",
        b"0",
        b"-0",
        b"x",
        b"9223372036854775807",
    ]
    .iter()
    .map(|v| value_key(v))
    .collect();
    assert_eq!(keys.len(), 8);
    assert_eq!(value_key(b"07"), xxhash_rust::xxh3::xxh3_128(b"07"));
    // The row filter's raw-field path gives the parent's key.
    let mut s = Vec::new();
    assert_eq!(
        tuple_key([&b"31"[..]].into_iter(), &mut s),
        value_key(b"31")
    );
}

#[test]
fn a_set_default_pointing_at_a_dropped_row_stops_the_filter() {
    let erasure = MemSet(HashSet::new());
    let mut users = KeySet::default();
    users.insert(value_key(b"7"));
    users.insert(value_key(b"0"));
    let plan = |default: &[u8]| TablePlan {
        table: "public.posts".into(),
        ncols: 2,
        roots: vec![],
        fks: vec![FkCheck {
            name: "posts_author_fk".into(),
            columns: vec![1],
            set: SetRef::Dropped(vec![(0, 0)]),
            effect: Effect::Rewrite(vec![(1, Replacement::Value(default.to_vec()))]),
            path: None,
            redacts: false,
        }],
        records: vec![],
        forms: Default::default(),
        rewrites: vec![],
        action: Default::default(),
        policy: None,
    };
    // Default 1 is kept: the row moves to user 1.
    let ok = plan(b"1");
    let mut f = RowFilter::new(
        &ok,
        &erasure,
        SubjectType::Bigint,
        vec![Probe::Parent(&users)],
        vec![],
    );
    assert_eq!(
        run_all(&mut f, b"10\t7\n11\t8\n", None).unwrap(),
        b"10\t1\n11\t8\n"
    );
    // Default 0 is dropped too: PostgreSQL would refuse the delete.
    let bad = plan(b"0");
    let mut f = RowFilter::new(
        &bad,
        &erasure,
        SubjectType::Bigint,
        vec![Probe::Parent(&users)],
        vec![],
    );
    let err = run_all(&mut f, b"11\t8\n10\t7\n", None).unwrap_err();
    assert!(matches!(err, FilterError::DefaultDropped { .. }), "{err}");
    assert!(err.to_string().contains("posts_author_fk"), "{err}");
}

#[test]
fn numeric_padded_and_case_folded_keys_meet_their_parents() {
    use crate::restore::keys::KeyForm;
    let erasure = MemSet(HashSet::new());
    let mut parent = KeySet::default();
    // The parent recorded these in its own forms: 3.00 as 3, 'C3  ' as C3.
    let mut canon = Vec::new();
    parent.insert(value_key(crate::restore::keys::canonical(
        KeyForm::Numeric,
        b"3.00",
        &mut canon,
    )));
    parent.insert(value_key(crate::restore::keys::canonical(
        KeyForm::Trim,
        b"C3      ",
        &mut canon,
    )));
    parent.insert(value_key(crate::restore::keys::canonical(
        KeyForm::Lower,
        b"Ann@X.DK",
        &mut canon,
    )));
    let plan = TablePlan {
        table: "public.c".into(),
        ncols: 3,
        roots: vec![],
        fks: ["n", "t", "l"]
            .iter()
            .enumerate()
            .map(|(i, n)| FkCheck {
                name: n.to_string(),
                columns: vec![i],
                set: SetRef::Dropped(vec![(0, 0)]),
                effect: Effect::Hit,
                path: None,
                redacts: false,
            })
            .collect(),
        records: vec![],
        forms: KeyForms {
            fks: vec![
                vec![KeyForm::Numeric],
                vec![KeyForm::Trim],
                vec![KeyForm::Lower],
            ],
            ..Default::default()
        },
        rewrites: vec![],
        action: Default::default(),
        policy: None,
    };
    let probes = vec![Probe::Parent(&parent); 3];
    let mut f = RowFilter::new(&plan, &erasure, SubjectType::Bigint, probes, vec![]);
    let out = run_all(
        &mut f,
        b"3\tx\tx\n3.0\tx\tx\n4\tC3\tx\n4\tC3 \tx\n4\tc3\tx\n4\tx\tann@x.dk\n4\tx\tANN@x.dk\n4\tx\tann@y.dk\n",
        None,
    )
    .unwrap();
    assert_eq!(out, b"4\tc3\tx\n4\tx\tann@y.dk\n");
}
