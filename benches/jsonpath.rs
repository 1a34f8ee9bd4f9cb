//! Throughput of `JsonPath::scalar` (the erasure filter's lookup of a
//! subject id inside a json/jsonb column) on ~200-byte documents shaped like
//! jsonb's text output of an audit event.
//!
//! `cargo bench --bench jsonpath`. Like the filter bench, it measures the
//! benchmark thread's CPU time (`LETHE_BENCH_WALL=1` for wall time); the
//! throughput is bytes of documents scanned per second.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use lethe::jsonpath::{JsonPath, Lookup};

#[path = "common/cpu_time.rs"]
mod cpu_time;
use cpu_time::timed;

/// 4096 documents in jsonb's output form (keys by length, `": "` and `", "`
/// separators), 190–230 bytes each; one in eight has an escaped string.
fn documents() -> Vec<Vec<u8>> {
    let agents = [
        "Mozilla/5.0 (X11; Linux x86_64)",
        "curl/8.5.0",
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_2)",
        "okhttp/4.12",
    ];
    (0u64..4096)
        .map(|i| {
            let id = 100_000 + i * 7919 % 900_000;
            let name = if i % 8 == 0 {
                format!("user \\\"{id}\\\" \\u00e9")
            } else {
                format!("user {id}")
            };
            format!(
                r#"{{"ip": "10.{}.{}.{}", "ts": "2026-12-06T09:{:02}:{:02}Z", "meta": {{"ua": "{}", "ref": null, "tags": ["web", "beta"]}}, "actor": {{"id": {id}, "name": "{name}", "email": "u{id}@example.com"}}, "action": "login"}}"#,
                i % 256,
                i / 256 % 256,
                i % 7,
                i % 60,
                i * 13 % 60,
                agents[i as usize % agents.len()],
            )
            .into_bytes()
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let docs = documents();
    let bytes: usize = docs.iter().map(Vec::len).sum();
    let mut g = c.benchmark_group("jsonpath");
    g.throughput(Throughput::Bytes(bytes as u64));
    for path in ["$.actor.id", "$.actor.name", "$.missing"] {
        let p = JsonPath::parse(path).expect("path");
        let mut scratch = Vec::new();
        g.bench_function(path, |b| {
            b.iter_custom(|iters| {
                timed(iters, || {
                    let mut n = 0;
                    for d in &docs {
                        n += match p.scalar(d, &mut scratch) {
                            Lookup::Found(v) => v.len(),
                            Lookup::Invalid => panic!("invalid document"),
                            _ => 0,
                        };
                    }
                    n
                })
            });
        });
    }
    g.finish();
    println!(
        "{} documents, {} bytes, {:.0} bytes each on average",
        docs.len(),
        bytes,
        bytes as f64 / docs.len() as f64
    );
}

criterion_group!(benches, bench);
criterion_main!(benches);
