//! The erasure list's speed, in-process (no CLI start-up, no storage): the
//! latency of one synced add (p50/p99), the bulk import rate in the chunks
//! `lethe erase import` uses, and the time and memory to load 10,000,000 ids
//! from RocksDB into the restore's in-memory set.
//!
//! `cargo bench --bench erasure` (a plain harness: it prints its numbers).
//! `LETHE_BENCH_IDS` (default 10000000) sets the size of the loaded list; the
//! RocksDB list of that size is built once under `$CARGO_TARGET_DIR` (or the
//! system temp dir) and reused by later runs.

use lethe::config::SubjectType;
use lethe::erasure::{ErasureSet, ErasureStore, MemSet, key_of};
use std::time::{Duration, Instant};

/// Ids per write when building the 10M list.
const IMPORT_CHUNK: usize = 50_000;

fn rss_bytes() -> u64 {
    // /proc/self/statm: size resident ... in pages.
    let s = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = s
        .split_whitespace()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

fn pct(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// CPU time of the calling thread (RocksDB writes and syncs its WAL on it).
fn thread_cpu() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: a valid timespec to fill; the clock id is a constant.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

fn synced_add_latency(dir: &std::path::Path) {
    let store = ErasureStore::open(&dir.join("add"), SubjectType::Bigint).expect("open store");
    let n = 2000;
    let mut lat = Vec::with_capacity(n);
    let mut cpu = Vec::with_capacity(n);
    for i in 0..n {
        let id = [(5_000_000_000u64 + i as u64).to_string()];
        let (t, c) = (Instant::now(), thread_cpu());
        store.add(&id, Some("bench")).expect("add");
        lat.push(t.elapsed());
        cpu.push(thread_cpu().saturating_sub(c));
    }
    lat.sort();
    cpu.sort();
    println!(
        "erasure/synced_add: {n} adds of one id: p50 {:.3} ms, p99 {:.3} ms, max {:.3} ms (target p99 <= 10 ms); CPU per add p50 {:.3} ms, p99 {:.3} ms (the rest is waiting: WAL fdatasync, the run queue)",
        ms(pct(&lat, 0.50)),
        ms(pct(&lat, 0.99)),
        ms(lat[n - 1]),
        ms(pct(&cpu, 0.50)),
        ms(pct(&cpu, 0.99)),
    );
}

fn import_rate(dir: &std::path::Path) {
    let ids: Vec<String> = (0..1_000_000u64)
        .map(|i| (1_000_000_000_000 + i * 13).to_string())
        .collect();
    let store = ErasureStore::open(&dir.join("import"), SubjectType::Bigint).expect("open store");
    // As `lethe erase import`: the whole file in one (atomic) add.
    let t = Instant::now();
    let out = store.add(&ids, Some("bench import")).expect("import");
    let d = t.elapsed();
    assert_eq!(out.added, 1_000_000);
    println!(
        "erasure/import: 1,000,000 ids in one add: {:.2} s, {:.0} ids/s (target >= 200,000 ids/s)",
        d.as_secs_f64(),
        ids.len() as f64 / d.as_secs_f64()
    );
    // A journal merge whose ids are all listed already (`lethe erase sync`
    // on a host that imported the same file): 10 objects of 100,000.
    let record = lethe::erasure::store::BatchRecord {
        added_at: chrono::Utc::now(),
        reference: None,
        origin: "bench".into(),
    };
    let t = Instant::now();
    for (i, chunk) in ids.chunks(100_000).enumerate() {
        let new = store
            .merge_journal(
                &format!("{i:026}.json"),
                vec![(record.clone(), chunk.to_vec())],
            )
            .expect("merge");
        assert_eq!(new, 0);
    }
    let d = t.elapsed();
    println!(
        "erasure/merge_listed: 10 journal objects of 100,000 ids, all listed already: {:.2} s, {:.0} ids/s",
        d.as_secs_f64(),
        ids.len() as f64 / d.as_secs_f64()
    );
    // The same objects merged into an empty list.
    let fresh = ErasureStore::open(&dir.join("merge"), SubjectType::Bigint).expect("open store");
    let t = Instant::now();
    for (i, chunk) in ids.chunks(100_000).enumerate() {
        fresh
            .merge_journal(
                &format!("{i:026}.json"),
                vec![(record.clone(), chunk.to_vec())],
            )
            .expect("merge");
    }
    let d = t.elapsed();
    println!(
        "erasure/merge_new: the same 10 objects into an empty list: {:.2} s, {:.0} ids/s",
        d.as_secs_f64(),
        ids.len() as f64 / d.as_secs_f64()
    );
}

fn list_path(n: u64) -> std::path::PathBuf {
    let base = std::env::var_os("CARGO_TARGET_DIR")
        .map_or_else(std::env::temp_dir, std::path::PathBuf::from);
    base.join(format!("lethe-bench-erasure-{n}"))
}

/// Builds the RocksDB list of `n` ids once (reused by later runs).
fn build_list(n: u64) {
    let path = list_path(n);
    if !path.join("CURRENT").exists() || std::fs::metadata(path.join("complete")).is_err() {
        let _ = std::fs::remove_dir_all(&path);
        let store = ErasureStore::open(&path, SubjectType::Bigint).expect("open store");
        let t = Instant::now();
        let mut i = 0;
        while i < n {
            let end = (i + IMPORT_CHUNK as u64).min(n);
            let chunk: Vec<String> = (i..end)
                .map(|k| (1_000_000_000_000 + k * 7).to_string())
                .collect();
            store.add(&chunk, None).expect("add");
            i = end;
        }
        drop(store);
        std::fs::write(path.join("complete"), b"").expect("marker");
        eprintln!(
            "(built a {n}-id list in {:.1} s at {})",
            t.elapsed().as_secs_f64(),
            path.display()
        );
    }
}

fn load(n: u64) {
    let path = list_path(n);
    let store = ErasureStore::open_existing(&path, SubjectType::Bigint).expect("open store");
    let rss0 = rss_bytes();
    let t = Instant::now();
    let set = MemSet::from_store(&store).expect("load");
    let d = t.elapsed();
    let rss1 = rss_bytes();
    assert_eq!(set.len() as u64, n);
    println!(
        "erasure/load: {n} ids from RocksDB into the in-memory set: {:.2} s; set {} bytes = {:.2} B/id (target <= 16); RSS +{} MB",
        d.as_secs_f64(),
        set.heap_bytes(),
        set.heap_bytes() as f64 / n as f64,
        (rss1.saturating_sub(rss0)) >> 20
    );
    // Lookups against it: 1M keys, 1% listed.
    let probes: Vec<u128> = (0..1_000_000u64)
        .map(|i| {
            let id = if i % 100 == 0 {
                1_000_000_000_000 + (i * 7919 % n) * 7
            } else {
                1 + i * 3
            };
            key_of(SubjectType::Bigint, id.to_string().as_bytes()).expect("bigint")
        })
        .collect();
    let t = Instant::now();
    let hits = probes.iter().filter(|&&k| set.contains(k)).count();
    let d = t.elapsed();
    println!(
        "erasure/contains: {} lookups in a {n}-id set: {:.1} M/s ({hits} hits)",
        probes.len(),
        probes.len() as f64 / d.as_secs_f64() / 1e6
    );
}

/// The set for a uuid (or text) list: 128-bit keys, packed.
fn wide_set(n: u64) {
    // Random uuids, as `key_of` turns them into keys.
    let keys: Vec<u128> = (0..n).map(|_| rand::random::<u128>()).collect();
    let t = Instant::now();
    let set = MemSet::from_keys(keys);
    let d = t.elapsed();
    assert_eq!(set.len() as u64, n);
    println!(
        "erasure/wide_set: {n} uuid keys into the in-memory set: {:.2} s; set {} bytes = {:.2} B/id (target <= 16)",
        d.as_secs_f64(),
        set.heap_bytes(),
        set.heap_bytes() as f64 / n as f64
    );
}

fn main() {
    // `cargo bench` passes --bench; `cargo test --benches` would pass nothing.
    let args: Vec<String> = std::env::args().collect();
    if !args.iter().any(|a| a == "--bench") {
        return;
    }
    let n: u64 = std::env::var("LETHE_BENCH_IDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000_000);
    if args.iter().any(|a| a == "--load-child") {
        load(n);
        return;
    }
    // LETHE_BENCH_ONLY=add|import|wide|load runs one part (e.g. under strace).
    let only = std::env::var("LETHE_BENCH_ONLY").unwrap_or_default();
    let run = |part: &str| only.is_empty() || only == part;
    let tmp = tempfile::tempdir().expect("tempdir");
    if run("add") {
        synced_add_latency(tmp.path());
    }
    if run("import") {
        import_rate(tmp.path());
    }
    if run("wide") {
        wide_set(n);
    }
    if !run("load") {
        return;
    }
    build_list(n);
    // Load in a fresh process, so its RSS growth is the set's and not pages
    // the allocator kept from the runs above.
    let exe = std::env::current_exe().expect("own path");
    let status = std::process::Command::new(exe)
        .args(["--bench", "--load-child"])
        .status()
        .expect("spawn");
    assert!(status.success(), "load run failed");
}
