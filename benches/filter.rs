//! Throughput of the restore's COPY row filter and COPY text parsing, on
//! rows shaped like `scripts/bench/gen.sql`'s tables, with a 10,000,000-id
//! erasure list (1% of the users listed, the rest ids no row has).
//!
//! `cargo bench --bench filter`. With `LETHE_BENCH_COPY_DIR` set to a
//! directory of `<table>.copy` files (`COPY <table> TO STDOUT` of the
//! generated database, see scripts/bench/run.sh) the first
//! `LETHE_BENCH_COPY_MB` (default 64) MB of each are used instead of
//! synthetic rows.
//!
//! The filter group measures the benchmark thread's CPU time
//! (`CLOCK_THREAD_CPUTIME_ID`), not wall time: the target is per core, and
//! on a shared machine wall time mostly measures the other processes. Set
//! `LETHE_BENCH_WALL=1` for wall time.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use lethe::config::SubjectType;
use lethe::erasure::{ErasureSet, MemSet, key_of};
use lethe::restore::filter::{
    Action, Effect, FkCheck, KeySet, Probe, Replacement, RowFilter, SetRef, TablePlan,
    decode_escapes,
};
use std::hint::black_box;

#[path = "common/cpu_time.rs"]
mod cpu_time;
use cpu_time::timed;

/// Ids in the erasure list (`LETHE_BENCH_LIST` overrides it, e.g. a small
/// list for a run under callgrind, whose setup of 10M ids takes minutes).
fn list_len() -> u64 {
    std::env::var("LETHE_BENCH_LIST")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000_000)
        .max(USERS / 100)
}
/// Users in the synthetic data; 1% of them are listed.
const USERS: u64 = 500_000;

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        // xorshift64*
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

const WORDS: &[&str] = &[
    "the", "of", "and", "to", "order", "delivery", "refund", "package", "arrived", "thanks",
    "please", "customer", "support", "quality", "price", "great", "late", "broken", "replace",
    "account", "password", "again", "today", "water", "people", "sound", "number", "because",
    "between", "mountain", "together", "children", "question",
];

fn words(r: &mut Rng, n: u64, out: &mut String) {
    for i in 0..n {
        if i > 0 {
            out.push(' ');
        }
        out.push_str(
            WORDS[(r.below(WORDS.len() as u64 * WORDS.len() as u64) as f64).sqrt() as usize],
        );
    }
}

fn ts(r: &mut Rng) -> String {
    format!(
        "2023-{:02}-{:02} {:02}:{:02}:{:02}.{:06}+00",
        1 + r.below(12),
        1 + r.below(28),
        r.below(24),
        r.below(60),
        r.below(60),
        r.below(1_000_000)
    )
}

/// Synthetic COPY text of about `bytes` bytes for one table.
fn synth(table: &str, bytes: usize) -> Vec<u8> {
    let mut r = Rng(0x9e37_79b9_7f4a_7c15 ^ table.len() as u64);
    let mut s = String::with_capacity(bytes + 4096);
    let mut id = 0u64;
    while s.len() < bytes {
        id += 1;
        let user = 1 + r.below(USERS);
        match table {
            "users" => {
                let invited = if r.below(10) < 3 { (1 + r.below(id)).to_string() } else { "\\N".into() };
                s.push_str(&format!(
                    "{id}\t{:016x}-{:04x}-4{:03x}-a{:03x}-{:012x}\tanna.muller{id}@example.org\tAnna Muller\tDE\tde-DE\tf\t{}\t{}\t{invited}\t",
                    r.next(), r.below(0xffff), r.below(0xfff), r.below(0xfff), r.below(1 << 48), ts(&mut r), ts(&mut r)
                ));
                if r.below(2) == 0 {
                    let n = 5 + r.below(25);
                    words(&mut r, n, &mut s);
                } else {
                    s.push_str("\\N");
                }
            }
            "sessions" => s.push_str(&format!(
                "{id}\t{user}\t{:016x}{:016x}\t10.1.2.3\tMozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0\t{}\t{}\t\\N",
                r.next(), r.next(), ts(&mut r), ts(&mut r)
            )),
            "orders" => {
                s.push_str(&format!("{id}\t{user}\tdelivered\tEUR\t{}\t{}\t{}\t12 Oak Road\\n10115 Berlin\t", r.below(50000), ts(&mut r), ts(&mut r)));
                s.push_str("\\N");
            }
            "order_items" => s.push_str(&format!(
                "{id}\t{}\tSKU-5D4095-{}\tMost Answer Moon\t{}\t{}",
                1 + r.below(USERS * 5 / 3), r.below(5000), 1 + r.below(4), 199 + r.below(20000)
            )),
            "events" => s.push_str(&format!(
                "{id}\t{{\"at\": \"{}\", \"kind\": \"page_view\", \"actor\": {{\"id\": {user}, \"name\": \"Anna Muller\"}}, \"target\": {{\"id\": {}, \"url\": \"/orders/{}\"}}}}\t{}",
                ts(&mut r), r.below(USERS * 5 / 3), r.below(USERS * 5 / 3), ts(&mut r)
            )),
            "comments" => {
                let order = if r.below(10) < 6 { (1 + r.below(USERS * 5 / 3)).to_string() } else { "\\N".into() };
                s.push_str(&format!("{id}\t{user}\t{order}\t"));
                let n = 8 + r.below(60);
                words(&mut r, n, &mut s);
                s.push_str(&format!("\t{}\t\\N", ts(&mut r)));
            }
            _ => unreachable!("no synthetic data for {table}"),
        }
        s.push('\n');
    }
    s.into_bytes()
}

fn input(table: &str) -> Vec<u8> {
    let mb: usize = std::env::var("LETHE_BENCH_COPY_MB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(64);
    // No table of the benchmark database holds json documents.
    // The policy plans read their table's data.
    let table = ["_redact", "_keep", "_jsonpath"]
        .iter()
        .fold(table, |t, suffix| t.strip_suffix(suffix).unwrap_or(t));
    if let Ok(dir) = std::env::var("LETHE_BENCH_COPY_DIR")
        && table != "events"
    {
        let path = std::path::Path::new(&dir).join(format!("{table}.copy"));
        let mut data =
            std::fs::read(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
        data.truncate(mb << 20);
        let end = memchr::memrchr(b'\n', &data).map_or(0, |p| p + 1);
        data.truncate(end);
        return data;
    }
    synth(table, mb << 20)
}

/// 10M ids: every 100th user (1%), the rest far above any user id.
fn erasure_list() -> MemSet {
    let hits = USERS / 100;
    let keys = (0..hits)
        .map(|i| 1 + i * 100)
        .chain((0..(list_len() - hits)).map(|i| 1_000_000_000_000 + i * 7))
        .map(|id| key_of(SubjectType::Bigint, id.to_string().as_bytes()).expect("bigint"))
        .collect();
    MemSet::from_keys(keys)
}

fn fk(name: &str, col: usize, set: SetRef, effect: Effect) -> FkCheck {
    FkCheck {
        name: name.into(),
        columns: vec![col],
        set,
        effect,
        path: None,
        redacts: false,
    }
}

fn null(col: usize) -> Effect {
    Effect::Rewrite(vec![(col, Replacement::Null)])
}

fn parent() -> SetRef {
    SetRef::Dropped(vec![(0, 0)])
}

/// The plans `RestorePlan::build` makes for these tables: users rows drop
/// only for being listed, so references to users ask the list (`Root`);
/// references to orders test orders' dropped keys.
fn plans() -> Vec<(&'static str, TablePlan)> {
    let t = |name: &str, ncols, roots, fks, records| TablePlan {
        table: format!("public.{name}"),
        ncols,
        roots,
        fks,
        records,
        forms: Default::default(),
        rewrites: vec![],
        action: Default::default(),
        policy: None,
    };
    vec![
        (
            "users",
            t(
                "users",
                11,
                vec![0],
                vec![fk("users_invited_by_fkey", 9, SetRef::Root, null(9))],
                vec![vec![0]],
            ),
        ),
        (
            "orders",
            t(
                "orders",
                9,
                vec![],
                vec![fk("orders_user_id_fkey", 1, SetRef::Root, Effect::Hit)],
                vec![vec![0]],
            ),
        ),
        (
            "sessions",
            t(
                "sessions",
                8,
                vec![],
                vec![fk("sessions_user_id_fkey", 1, SetRef::Root, Effect::Hit)],
                vec![],
            ),
        ),
        (
            "order_items",
            t(
                "order_items",
                6,
                vec![],
                vec![fk("order_items_order_id_fkey", 1, parent(), Effect::Hit)],
                vec![],
            ),
        ),
        (
            "comments",
            t(
                "comments",
                6,
                vec![],
                vec![
                    fk("comments_user_id_fkey", 1, SetRef::Root, null(1)),
                    fk("comments_order_id_fkey", 2, parent(), null(2)),
                ],
                vec![],
            ),
        ),
        // Policies (issue 18): the users root redacted instead of dropped
        // (e-mail to a literal, name to NULL), orders kept by a keep policy,
        // and a declared reference into a jsonb document.
        ("users_redact", {
            let mut p = t(
                "users",
                11,
                vec![0],
                vec![fk("users_invited_by_fkey", 9, SetRef::Root, null(9))],
                vec![vec![0]],
            );
            p.action = Action::Redact(vec![
                (2, Replacement::Value(b"erased@invalid".to_vec())),
                (3, Replacement::Null),
            ]);
            p
        }),
        ("orders_keep", {
            let mut p = t(
                "orders",
                9,
                vec![],
                vec![fk("orders_user_id_fkey", 1, SetRef::Root, Effect::Hit)],
                vec![vec![0]],
            );
            p.action = Action::Keep;
            p
        }),
        ("events_jsonpath", {
            let mut check = fk(
                "declared reference public.events.payload $.actor.id -> public.users.id",
                1,
                SetRef::Dropped(vec![(0, 0)]),
                Effect::Hit,
            );
            check.path = Some(lethe::jsonpath::JsonPath::parse("$.actor.id").expect("path"));
            t("events", 3, vec![], vec![check], vec![])
        }),
    ]
}

fn bench(c: &mut Criterion) {
    let list = erasure_list();
    let plans = plans();
    // Dropped-key sets of users and orders, from a first pass over the data
    // (what the restore's plan does in foreign-key order).
    let mut dropped_users = KeySet::default();
    let mut dropped_orders = KeySet::default();
    // One pass per table and no timing: for counting instructions with
    // `valgrind --tool=callgrind --toggle-collect='*filter_rows*'`.
    let once = std::env::var_os("LETHE_BENCH_ONCE").is_some();
    let mut g = c.benchmark_group("filter");
    g.sample_size(10);
    for (table, plan) in &plans {
        let data = input(table);
        let probes: Vec<Probe<'_>> = plan
            .fks
            .iter()
            .map(|f| match (&f.set, f.name.as_str()) {
                (SetRef::Root, _) => Probe::Root,
                (_, n) if n.starts_with("declared") => Probe::Parent(&dropped_users),
                (_, "order_items_order_id_fkey" | "comments_order_id_fkey") => {
                    Probe::Parent(&dropped_orders)
                }
                _ => Probe::Parent(&dropped_users),
            })
            .collect();
        let own = || vec![KeySet::default(); plan.sets()];
        let mut out = Vec::with_capacity(data.len() + 4096);
        g.throughput(Throughput::Bytes(data.len() as u64));
        // One pass with output; its dropped keys are what the children are
        // tested against.
        let mut pass = || {
            let mut f = RowFilter::new(plan, &list, SubjectType::Bigint, probes.clone(), own());
            out.clear();
            f.filter_rows(black_box(&data), Some(&mut out))
                .expect("filter");
            f.finish()
        };
        if !once {
            g.bench_function(*table, |b| b.iter_custom(|iters| timed(iters, &mut pass)));
        }
        let (mut sets, stats) = pass();
        eprintln!(
            "{table}: {} rows, {} dropped, {} nulled",
            stats.rows_read, stats.rows_dropped, stats.rows_nulled
        );
        match *table {
            "users" => dropped_users = sets.remove(0),
            "orders" => dropped_orders = sets.remove(0),
            _ => {}
        }
    }
    g.finish();
    if once {
        return;
    }

    let mut g = c.benchmark_group("copy");
    let text = input("comments");
    g.throughput(Throughput::Bytes(text.len() as u64));
    g.bench_function("newline_scan", |b| {
        b.iter(|| memchr::memchr_iter(b'\n', black_box(&text)).count())
    });
    let escaped: Vec<u8> = text
        .iter()
        .flat_map(|&b| {
            if b == b' ' {
                vec![b'\\', b't']
            } else {
                vec![b]
            }
        })
        .collect();
    let mut dec = Vec::with_capacity(escaped.len());
    g.throughput(Throughput::Bytes(escaped.len() as u64));
    g.bench_function("decode_escapes", |b| {
        b.iter(|| {
            decode_escapes(black_box(&escaped), &mut dec);
            dec.len()
        })
    });
    g.finish();

    let mut g = c.benchmark_group("erasure_set");
    let keys: Vec<u128> = (0..1_000_000u64)
        .map(|i| key_of(SubjectType::Bigint, (1 + i * 37).to_string().as_bytes()).expect("bigint"))
        .collect();
    g.throughput(Throughput::Elements(keys.len() as u64));
    g.bench_function("contains_10M_list", |b| {
        b.iter_custom(|iters| timed(iters, || keys.iter().filter(|&&k| list.contains(k)).count()))
    });
    // As the filter calls it: a block's worth of keys at a time.
    let mut hits = vec![false; 128];
    g.bench_function("contains_batch_10M_list", |b| {
        b.iter_custom(|iters| {
            timed(iters, || {
                let mut n = 0;
                for ks in keys.chunks(128) {
                    list.contains_batch(ks, &mut hits);
                    n += hits[..ks.len()].iter().filter(|&&h| h).count();
                }
                n
            })
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
