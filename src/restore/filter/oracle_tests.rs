//! The block filter against a plain row-at-a-time oracle on random data.

use super::tests::MemSet;
use super::*;
use crate::erasure::config::SubjectType;
use crate::erasure::{ErasureSet, key_of};
use std::collections::HashSet;

/// What a check probes in `oracle`: the list, a parent set, or the table's
/// own record slot.
#[derive(Clone, Copy)]
enum OracleProbe<'a> {
    Root,
    Parent(&'a KeySet),
    Own(usize),
}

/// A row-at-a-time filter written as plainly as possible: split on every
/// tab, decode, look up one key at a time. The block filter must agree with
/// it on output, counts and recorded keys.
/// Output, counts and record sets; or the (row, fields) of a short row.
type OracleResult = Result<(Vec<u8>, TableStats, Vec<HashSet<u128>>), (u64, usize)>;

fn oracle(
    plan: &TablePlan,
    erasure: &dyn ErasureSet,
    t: SubjectType,
    probes: &[OracleProbe<'_>],
    input: &[u8],
) -> OracleResult {
    let mut scratch = Vec::new();
    let mut own = vec![HashSet::new(); plan.records.len()];
    let mut out = Vec::new();
    let mut stats = TableStats::default();
    let width = plan.max_col().map_or(0, |m| m + 1);
    let key = |fields: &[&[u8]], cols: &[usize], s: &mut Vec<u8>| -> Option<u128> {
        let mut values = Vec::new();
        for &c in cols {
            values.push(decoded(fields[c], s)?.to_vec());
        }
        Some(tuple_key(values.iter().map(Vec::as_slice), s))
    };
    let end = input.iter().rposition(|&b| b == b'\n').map_or(0, |p| p + 1);
    for row in input[..end]
        .split(|&b| b == b'\n')
        .take(input[..end].iter().filter(|&&b| b == b'\n').count())
    {
        stats.rows_read += 1;
        let fields: Vec<&[u8]> = row.split(|&b| b == b'\t').collect();
        if !plan.is_passthrough() && fields.len() < width {
            return Err((stats.rows_read, fields.len()));
        }
        let listed = |c: usize, s: &mut Vec<u8>| {
            decoded(fields[c], s)
                .and_then(|v| key_of(t, v))
                .is_some_and(|k| erasure.contains(k))
        };
        let hit = |f: usize, s: &mut Vec<u8>, own: &Vec<HashSet<u128>>| {
            let fk = &plan.fks[f];
            match probes[f] {
                OracleProbe::Root => listed(fk.columns[0], s),
                OracleProbe::Parent(set) => {
                    key(&fields, &fk.columns, s).is_some_and(|k| set.contains(k))
                }
                OracleProbe::Own(slot) => {
                    key(&fields, &fk.columns, s).is_some_and(|k| own[slot].contains(&k))
                }
            }
        };
        let hit_row = plan.roots.iter().any(|&c| listed(c, &mut scratch))
            || (0..plan.fks.len())
                .any(|f| plan.fks[f].effect == Effect::Hit && hit(f, &mut scratch, &own));
        let mut new: Vec<Vec<u8>> = fields.iter().map(|f| f.to_vec()).collect();
        let put = |new: &mut Vec<Vec<u8>>, c: usize, r: &Replacement| {
            new[c] = match r {
                Replacement::Null => b"\\N".to_vec(),
                Replacement::Value(v) => v.clone(),
                Replacement::Unresolved(_) | Replacement::Pseudonym(_) => {
                    unreachable!("not generated")
                }
            };
        };
        let mut redacted = false;
        if hit_row {
            for (slot, cols) in plan.records.iter().enumerate() {
                if let Some(k) = key(&fields, cols, &mut scratch) {
                    own[slot].insert(k);
                }
            }
            match &plan.action {
                Action::Drop => {
                    stats.rows_dropped += 1;
                    continue;
                }
                Action::Keep => stats.rows_kept += 1,
                Action::Redact(entries) => {
                    redacted = true;
                    for (c, r) in entries {
                        put(&mut new, *c, r);
                    }
                }
            }
        }
        let mut rewritten = false;
        for f in 0..plan.fks.len() {
            if let Effect::Rewrite(cols) = &plan.fks[f].effect
                && hit(f, &mut scratch, &own)
            {
                rewritten = true;
                redacted |= plan.fks[f].redacts && !hit_row;
                for (c, r) in cols {
                    put(&mut new, *c, r);
                }
            }
        }
        if redacted {
            stats.rows_redacted += 1;
        } else if rewritten && !hit_row {
            stats.rows_nulled += 1;
        }
        out.extend_from_slice(&new.join(&b'\t'));
        out.push(b'\n');
    }
    stats.bytes_read = end as u64;
    Ok((out, stats, own))
}

/// A random field: ids (some listed, some in dropped sets), their escaped
/// and non-canonical spellings, NULL, `\\N` (a backslash and an N, not
/// NULL), text with escapes.
fn random_field(rng: &mut impl rand::Rng) -> String {
    use rand::RngExt;
    let id = rng.random_range(0..40u32);
    match rng.random_range(0..12) {
        0 | 1 => "\\N".into(),
        2 => format!("\\x3{}", id % 10), // an escaped digit
        3 => format!("0{id}"),           // the same bigint, other text
        4 => "\\\\N".into(),
        5 => format!("a\\tb{id}\\\\"),
        6 => format!("{}", -(id as i64)),
        7 => String::new(),
        _ => id.to_string(),
    }
}

#[test]
fn block_filter_matches_a_row_at_a_time_oracle_on_random_data() {
    use rand::RngExt;
    let mut rng = rand::rng();
    let (mut dropped, mut nulled, mut redacted, mut kept) = (0, 0, 0, 0);
    for round in 0..300 {
        let ncols = rng.random_range(3..7usize);
        let rows = rng.random_range(0..400usize);
        let mut input = String::new();
        for _ in 0..rows {
            let fields: Vec<String> = (0..ncols).map(|_| random_field(&mut rng)).collect();
            input.push_str(&fields.join("\t"));
            input.push('\n');
        }
        if rng.random_bool(0.3) {
            input.push_str("7\t1"); // an incomplete last row: not consumed
        }
        let listed: Vec<String> = (0..40)
            .filter(|i| i % 3 == 0)
            .map(|i| i.to_string())
            .collect();
        let refs: Vec<&str> = listed.iter().map(String::as_str).collect();
        let small = MemSet::of(SubjectType::Bigint, &refs);
        let big = crate::erasure::MemSet::from_keys(
            refs.iter()
                .map(|s| key_of(SubjectType::Bigint, s.as_bytes()).unwrap())
                .chain((0..100_000).map(|i| 1_000_000 + i as u128))
                .collect(),
        );
        let mut parent = KeySet::default();
        for i in (0..40).filter(|i| i % 5 == 1) {
            parent.insert(tuple_key(
                std::iter::once(i.to_string().as_bytes()),
                &mut Vec::new(),
            ));
            parent.insert(tuple_key(
                [i.to_string().as_bytes(), b"\\N".as_slice()].into_iter(),
                &mut Vec::new(),
            ));
        }
        let mut c = |n: usize| rng.random_range(0..n);
        let (c1, c2, c3) = (c(ncols), c(ncols), c(ncols));
        let (c4, c5, c6) = (c(ncols), c(ncols), c(ncols));
        let redacts = rng.random_bool(0.2);
        let effect = |rng: &mut rand::rngs::ThreadRng, col: usize| match rng.random_range(0..3) {
            0 => Effect::Hit,
            1 => Effect::Rewrite(vec![(col, Replacement::Null)]),
            // A default no row holds: one that points at a dropped row
            // stops the restore (tested on its own).
            _ => Effect::Rewrite(vec![(col, Replacement::Value(b"999999".to_vec()))]),
        };
        let plan = TablePlan {
            table: "public.t".into(),
            ncols,
            roots: if round % 4 == 3 { vec![] } else { vec![c1] },
            fks: vec![
                FkCheck {
                    name: "self_root".into(),
                    columns: vec![c2],
                    set: SetRef::Root,
                    effect: effect(&mut rng, c2),
                    path: None,
                    redacts,
                },
                FkCheck {
                    name: "parent".into(),
                    columns: vec![c3],
                    set: SetRef::Dropped(vec![(1, 0)]),
                    effect: effect(&mut rng, c3),
                    path: None,
                    redacts: false,
                },
                FkCheck {
                    name: "composite".into(),
                    columns: vec![c4, c5],
                    set: SetRef::Dropped(vec![(1, 0)]),
                    effect: effect(&mut rng, c4),
                    path: None,
                    redacts: false,
                },
                FkCheck {
                    name: "own".into(),
                    columns: vec![c5],
                    set: SetRef::Dropped(vec![(0, 0)]),
                    effect: effect(&mut rng, c5),
                    path: None,
                    redacts: false,
                },
            ],
            records: vec![vec![c1], vec![c4, c5]],
            forms: Default::default(),
            rewrites: vec![],
            // Every action of a policy: drop, keep, redact a column.
            action: match round % 3 {
                0 => Action::Drop,
                1 => Action::Keep,
                _ => Action::Redact(vec![(
                    c6,
                    if round % 2 == 0 {
                        Replacement::Null
                    } else {
                        Replacement::Value(b"[erased]".to_vec())
                    },
                )]),
            },
            policy: None,
        };
        let oracle_probes = [
            OracleProbe::Root,
            OracleProbe::Parent(&parent),
            OracleProbe::Parent(&parent),
            OracleProbe::Own(0),
        ];
        let want = oracle(
            &plan,
            &small,
            SubjectType::Bigint,
            &oracle_probes,
            input.as_bytes(),
        );
        for erasure in [&small as &dyn ErasureSet, &big] {
            let probes = vec![
                Probe::Root,
                Probe::Parent(&parent),
                Probe::Parent(&parent),
                Probe::Own(0),
            ];
            let own = vec![KeySet::default(), KeySet::default()];
            let mut f = RowFilter::new(&plan, erasure, SubjectType::Bigint, probes, own);
            let mut out = Vec::new();
            let got = f.filter_rows(input.as_bytes(), Some(&mut out));
            let (sets, stats) = f.finish();
            match (&want, got) {
                (Ok((want_out, want_stats, want_own)), Ok(used)) => {
                    assert_eq!(used as u64, want_stats.bytes_read, "round {round}");
                    assert_eq!(
                        String::from_utf8_lossy(&out),
                        String::from_utf8_lossy(want_out),
                        "round {round}"
                    );
                    assert_eq!(stats, *want_stats, "round {round}");
                    dropped += stats.rows_dropped;
                    nulled += stats.rows_nulled;
                    redacted += stats.rows_redacted;
                    kept += stats.rows_kept;
                    for (slot, set) in want_own.iter().enumerate() {
                        assert_eq!(sets[slot].len(), set.len(), "round {round} slot {slot}");
                        assert!(set.iter().all(|k| sets[slot].contains(*k)), "round {round}");
                    }
                }
                (Err(_), _) | (_, Err(_)) => {
                    panic!("round {round}: no short rows generated")
                }
            }
        }
    }
    // The random data exercised both outcomes, not only "keep".
    assert!(
        dropped > 1000 && nulled > 1000 && redacted > 1000 && kept > 1000,
        "{dropped} dropped, {nulled} nulled, {redacted} redacted, {kept} kept"
    );
}

#[test]
fn short_row_in_a_later_block_names_its_row_number() {
    let erasure = MemSet::of(SubjectType::Bigint, &["5"]);
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
    let mut input: Vec<u8> = (0..150)
        .flat_map(|i| format!("{i}\tx\t{i}\n").into_bytes())
        .collect();
    input.extend_from_slice(b"150\tx\n151\tx\t1\n");
    let mut f = RowFilter::new(&plan, &erasure, SubjectType::Bigint, vec![], vec![]);
    let mut out = Vec::new();
    let err = f.filter_rows(&input, Some(&mut out)).unwrap_err();
    assert!(
        matches!(
            err,
            FilterError::ShortRow {
                row: 151,
                found: 2,
                needed: 3,
                ..
            }
        ),
        "{err}"
    );
    // The rows before it were decided (row 5 dropped) before the error.
    assert_eq!(f.stats().rows_read, 150);
    assert_eq!(f.stats().rows_dropped, 1);
}
