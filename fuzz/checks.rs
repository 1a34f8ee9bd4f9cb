//! Property checks shared by the cargo-fuzz targets (`fuzz/fuzz_targets/`)
//! and the bounded, seeded mutation tests in `cargo test`
//! (`tests/it/hostile.rs`): each takes arbitrary bytes and panics only when
//! an invariant is broken (a panic inside lethe counts as broken too).
#![allow(dead_code)]

use lethe::config::{Config, SubjectType};
use lethe::erasure::{MemSet, key_of};
use lethe::repo::manifest::Manifest;
use lethe::restore::filter::{
    Effect, FilterError, FkCheck, KeySet, Probe, Replacement, RowFilter, SetRef, TablePlan,
    decoded, run_stream, tuple_key,
};

/// Hands out at most `n` bytes per read, so rows cross buffer boundaries.
struct Dribble<'a> {
    data: &'a [u8],
    n: usize,
}

impl std::io::Read for Dribble<'_> {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        let k = self.n.min(out.len()).min(self.data.len());
        out[..k].copy_from_slice(&self.data[..k]);
        self.data = &self.data[k..];
        Ok(k)
    }
}

fn key1(v: &[u8]) -> u128 {
    let mut scratch = Vec::new();
    tuple_key(std::iter::once(v), &mut scratch)
}

/// The COPY row filter against an independent, slow oracle.
///
/// `data[0..4]` choose the subject type, the column count, the root column,
/// the foreign-key column and effect and the read size; the rest is COPY
/// text. Every third row's root value is on the erasure list and every
/// fifth row's foreign-key value is in the parent's dropped set, so drops,
/// rewrites and misses all happen.
pub fn check_filter(data: &[u8]) {
    if data.len() < 4 {
        return;
    }
    let (head, copy) = data.split_at(4);
    let t = [SubjectType::Bigint, SubjectType::Uuid, SubjectType::Text][usize::from(head[0] % 3)];
    let ncols = usize::from(head[1] % 5) + 1;
    let root = usize::from(head[2]) % ncols;
    let fk_col = usize::from(head[2] / 7) % ncols;
    let fk_mode = head[0] / 3 % 4; // 0 none, 1 drop, 2 set null, 3 set value
    let read = usize::from(head[3] % 97) + 1;

    let rows: Vec<&[u8]> = copy.split(|&b| b == b'\n').collect();
    let complete = &rows[..rows.len() - 1]; // the piece after the last '\n' is not a row
    let mut scratch = Vec::new();
    let field = |row: &[u8], c: usize| row.split(|&b| b == b'\t').nth(c).map(<[u8]>::to_vec);
    let mut listed = Vec::new();
    let mut parent = KeySet::default();
    for (i, row) in complete.iter().enumerate() {
        if i % 3 == 0
            && let Some(v) = field(row, root)
            && let Some(k) = decoded(&v, &mut scratch).and_then(|d| key_of(t, d))
        {
            listed.push(k);
        }
        if i % 5 == 1
            && let Some(v) = field(row, fk_col)
            && let Some(d) = decoded(&v, &mut scratch)
        {
            parent.insert(key1(d));
        }
    }
    let erasure = MemSet::from_keys(listed);
    let effect = match fk_mode {
        1 => Some(Effect::Hit),
        2 => Some(Effect::Rewrite(vec![(fk_col, Replacement::Null)])),
        3 => Some(Effect::Rewrite(vec![(
            fk_col,
            Replacement::Value(b"0".to_vec()),
        )])),
        _ => None,
    };
    let plan = TablePlan {
        table: "fuzz.t".into(),
        ncols,
        roots: vec![root],
        fks: effect
            .iter()
            .map(|e| FkCheck {
                name: "fk".into(),
                columns: vec![fk_col],
                set: SetRef::Dropped(vec![(0, 0)]),
                effect: e.clone(),
                path: None,
                redacts: false,
            })
            .collect(),
        records: vec![vec![root]],
        forms: Default::default(),
        rewrites: vec![],
        action: Default::default(),
        policy: None,
    };
    let probes = plan.fks.iter().map(|_| Probe::Parent(&parent)).collect();
    let mut filter = RowFilter::new(&plan, &erasure, t, probes, vec![KeySet::default()]);
    let mut out = Vec::new();
    let mut emit = |b: bytes::Bytes| {
        out.extend_from_slice(&b);
        Ok(())
    };
    let result = run_stream(
        &mut filter,
        Dribble {
            data: copy,
            n: read,
        },
        Some(&mut emit),
    );
    let (own, stats) = filter.finish();

    // The oracle: split, decode, look up, row by row.
    let max_col = if effect.is_some() {
        root.max(fk_col)
    } else {
        root
    };
    let mut want = Vec::new();
    let mut want_dropped = 0u64;
    let mut want_nulled = 0u64;
    let mut dropped_keys = std::collections::HashSet::new();
    let mut short = false;
    for row in complete {
        let fields: Vec<&[u8]> = row.split(|&b| b == b'\t').collect();
        if fields.len() <= max_col {
            short = true;
            break;
        }
        let root_hit = decoded(fields[root], &mut scratch)
            .and_then(|d| key_of(t, d))
            .is_some_and(|k| lethe::erasure::ErasureSet::contains(&erasure, k));
        let fk_hit = effect.is_some()
            && decoded(fields[fk_col], &mut scratch).is_some_and(|d| parent.contains(key1(d)));
        if root_hit || (fk_hit && effect == Some(Effect::Hit)) {
            want_dropped += 1;
            if let Some(d) = decoded(fields[root], &mut scratch) {
                dropped_keys.insert(key1(d));
            }
        } else if fk_hit {
            want_nulled += 1;
            let mut f = fields.clone();
            f[fk_col] = if fk_mode == 2 { b"\\N" } else { b"0" };
            want.extend_from_slice(&f.join(&b'\t'));
            want.push(b'\n');
        } else {
            want.extend_from_slice(row);
            want.push(b'\n');
        }
    }

    match result {
        Ok(()) => {
            assert!(!short, "a row shorter than column {max_col} was accepted");
            assert!(
                copy.is_empty() || copy.ends_with(b"\n"),
                "a truncated stream was accepted"
            );
            assert_eq!(stats.rows_read, complete.len() as u64, "rows read");
            assert_eq!(stats.rows_dropped, want_dropped, "rows dropped");
            assert_eq!(stats.rows_nulled, want_nulled, "rows rewritten");
            assert_eq!(stats.bytes_read, copy.len() as u64, "bytes read");
            let out_rows = out.iter().filter(|&&b| b == b'\n').count() as u64;
            assert_eq!(
                out_rows + stats.rows_dropped,
                stats.rows_read,
                "every row is kept or dropped"
            );
            assert!(out == want, "filter output differs from the oracle");
            assert_eq!(
                own[0].len(),
                dropped_keys.len(),
                "keys recorded for dropped rows"
            );
        }
        Err(FilterError::ShortRow { .. }) => {
            assert!(short, "ShortRow on rows that are long enough")
        }
        Err(FilterError::Truncated { .. }) => {
            assert!(
                !short && !copy.ends_with(b"\n"),
                "Truncated on a complete stream"
            )
        }
        Err(e) => panic!("unexpected filter error: {e}"),
    }
}

/// The manifest parser: never panics; what it accepts keeps every object
/// inside its own snapshot and survives a round trip.
pub fn check_manifest(data: &[u8]) {
    let Ok(m) = Manifest::from_json("snapshots/fuzz/manifest.json", data) else {
        return;
    };
    let own = format!("snapshots/{}/", m.id);
    for o in m.objects() {
        assert!(
            o.key.starts_with(&own),
            "accepted an object outside the snapshot: {:?}",
            o.key
        );
        assert!(
            lethe::storage::validate_key(&o.key).is_ok(),
            "accepted an invalid key {:?}",
            o.key
        );
        assert!(
            !o.key.split('/').any(|s| s == ".." || s == "."),
            "accepted a relative segment in {:?}",
            o.key
        );
    }
    let again = Manifest::from_json("again", &m.to_json()).expect("a manifest we wrote must parse");
    assert_eq!(again, m, "round trip changed the manifest");
    let _ = (
        m.total_rows(),
        m.stored_bytes(),
        m.raw_bytes(),
        m.id.started_at(),
    );
}

/// The config parser and validator: never panic on any text.
pub fn check_config(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(cfg) = Config::parse(text) else { return };
    for issue in cfg.validate() {
        assert!(
            !issue.key.is_empty() && !issue.message.is_empty(),
            "issue without a key or message: {issue:?}"
        );
    }
}

/// A small valid COPY stream with escapes, NULLs, uuids and text ids.
pub fn seed_copy() -> Vec<u8> {
    let mut v = vec![0u8, 2, 0, 13];
    v.extend_from_slice(
        b"1\t2\talice\n2\t1\tbob\\tthe\\nbuilder\n3\t\\N\tc\\\\d\n4\t3\t\\x41\\101\n\
          5\t5\t\\N\n6\t4\tz\n7\t7\t8\n",
    );
    v
}

/// A valid manifest naming two schema objects and one table object.
pub fn seed_manifest() -> Vec<u8> {
    br#"{
  "format": 1,
  "id": "20261122T130000Z-3f9a",
  "server_version": "17.2",
  "database": "app",
  "started_at": "2026-11-22T13:00:00Z",
  "finished_at": "2026-11-22T13:01:00Z",
  "expires_at": "2026-12-27T13:00:00Z",
  "compression": "zstd",
  "recipients": ["age1fingerprint"],
  "schema": {
    "pre": {"key": "snapshots/20261122T130000Z-3f9a/schema/pre.sql.zst.age", "size": 10, "blake3": "00", "raw_size": 20, "rows": 0},
    "post": {"key": "snapshots/20261122T130000Z-3f9a/schema/post.sql.zst.age", "size": 10, "blake3": "00", "raw_size": 20, "rows": 0}
  },
  "tables": [{
    "schema": "public", "name": "users",
    "columns": [{"name": "id", "type_name": "bigint", "default": null}, {"name": "email", "type_name": "text", "default": "''::text"}],
    "rows": 3, "raw_bytes": 30,
    "objects": [{"key": "snapshots/20261122T130000Z-3f9a/data/0000.public.users.000.copy.zst.age", "size": 40, "blake3": "ab", "raw_size": 30, "rows": 3}]
  }],
  "foreign_keys": [{"name": "orders_user_fk", "table": "public.orders", "columns": ["user_id"], "ref_table": "public.users", "ref_columns": ["id"], "on_delete": "cascade"}],
  "sequences": [{"schema": "public", "name": "users_id_seq", "last_value": 3, "is_called": true}],
  "erasure_list": {"count": 2, "digest": "ff"}
}"#
    .to_vec()
}

/// A valid config touching every section.
pub fn seed_config() -> Vec<u8> {
    br#"[source]
url = "postgres://lethe@127.0.0.1:5432/app"
jobs = 2

[storage]
url = "s3://backups/prod"
endpoint = "http://127.0.0.1:3900"
region = "garage"
allowed_regions = ["garage"]
path_style = true

[schedule]
every = "1h"

[retention]
days = 35

[snapshot]
zstd_level = 3

[encryption]
recipients = ["age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p"]

[erasure]
path = "/var/lib/lethe/erasure"
subject_type = "uuid"
subjects = [ { table = "public.users", column = "id" } ]

[api]
listen = "unix:/run/lethe/api.sock"

[log]
format = "json"
level = "info"
"#
    .to_vec()
}

/// Tokens that tend to break parsers, spliced in by [`mutate`].
const TOKENS: &[&[u8]] = &[
    b"../",
    b"/..",
    b"\\N",
    b"\\x",
    b"\\777",
    b"\\",
    b"\t",
    b"\n",
    b"\"",
    b"{",
    b"}",
    b"[",
    b"]",
    b"null",
    b"-1",
    b"18446744073709551616",
    b"4294967295",
    b"1e999",
    b"\"format\": 2,",
    b"\\u0000",
    b"=",
    b"'''",
    b"[storage]",
    b"days = 0",
    b"every = \"0s\"",
    b"\xff\xfe",
    b"\xc3",
    b"snapshots/",
    b"20261122T130000Z-0000",
];

/// One seeded mutation of `seed`: bit flips, interesting bytes, deletions,
/// duplications, token splices, truncation; 1–4 of them stacked.
pub fn mutate(seed: &[u8], rng: &mut lethe::storage::faulty::SplitMix64) -> Vec<u8> {
    let mut v = seed.to_vec();
    for _ in 0..=rng.below(4) {
        let len = v.len() as u64;
        let at = rng.below(len + 1) as usize;
        match rng.below(7) {
            0 if !v.is_empty() => {
                let i = at.min(v.len() - 1);
                v[i] ^= 1 << rng.below(8);
            }
            1 if !v.is_empty() => {
                let i = at.min(v.len() - 1);
                v[i] = *[0u8, 0xff, b'\t', b'\n', b'\\', b'"', b'/', b'.', b'9', b'N']
                    .get(rng.below(10) as usize)
                    .unwrap_or(&0);
            }
            2 => {
                let n = rng.below(16) as usize;
                let end = (at + n).min(v.len());
                v.drain(at..end);
            }
            3 => {
                let n = rng.below(64) as usize;
                let end = (at + n).min(v.len());
                let piece = v[at..end].to_vec();
                v.splice(at..at, piece);
            }
            4 | 5 => {
                let tok = TOKENS[rng.below(TOKENS.len() as u64) as usize];
                v.splice(at..at, tok.iter().copied());
            }
            _ => v.truncate(at),
        }
    }
    v
}
