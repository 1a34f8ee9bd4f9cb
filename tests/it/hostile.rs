//! Hostile input, bounded for CI: seeded mutation runs of the three parsers
//! the fuzz targets cover (same checks: `fuzz/checks.rs`), and keys read
//! back from a `file://` repository that try to leave it.
//!
//! `LETHE_HOSTILE_ITERS` (default 20000) sets the mutations per parser;
//! `LETHE_HOSTILE_SEED` replays another seed.

#[path = "../../fuzz/checks.rs"]
mod checks;

use bytes::Bytes;
use lethe::repo::layout;
use lethe::repo::manifest::SnapshotId;
use lethe::storage::faulty::SplitMix64;
use lethe::storage::fs::FsStorage;
use lethe::storage::{Storage, StorageExt};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;

fn iters() -> u64 {
    crate::common::env_u64("LETHE_HOSTILE_ITERS", 20_000)
}

fn seed() -> u64 {
    crate::common::env_u64("LETHE_HOSTILE_SEED", 0x1e7e)
}

/// Runs `check` on `iters()` mutations of `seeds`; on a failure, prints the
/// input (hex) and the iteration so it can be replayed, then fails.
fn mutation_run(name: &str, seeds: &[Vec<u8>], check: fn(&[u8])) {
    for s in seeds {
        check(s);
    }
    let mut rng = SplitMix64(seed() ^ name.len() as u64);
    let n = iters();
    let mut accepted_sizes = 0usize;
    for i in 0..n {
        let base = &seeds[rng.below(seeds.len() as u64) as usize];
        let input = checks::mutate(base, &mut rng);
        accepted_sizes += input.len();
        if catch_unwind(AssertUnwindSafe(|| check(&input))).is_err() {
            panic!(
                "{name}: mutation {i} (seed {}) broke an invariant; input (hex): {}",
                seed(),
                hex::encode(&input)
            );
        }
    }
    eprintln!("{name}: {n} mutated inputs, {accepted_sizes} bytes, no invariant broken");
}

#[test]
fn copy_filter_survives_mutated_streams_and_matches_the_oracle() {
    let mut seeds = vec![checks::seed_copy()];
    // Uuid and text ids, a wider table, an empty stream.
    let mut uuid = vec![1u8, 3, 8, 40];
    uuid.extend_from_slice(
        b"a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11\tx\t1\t\\N\nA0EEBC999C0B4EF8BB6D6BB9BD380A12\ty\t2\t3\n\
          \\N\tz\t3\ta0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11\n",
    );
    seeds.push(uuid);
    seeds.push(vec![5, 4, 3, 2]);
    let mut text = vec![2u8, 1, 0, 96];
    text.extend_from_slice(b"al\\tice\tq\nbob\tr\n\\x62ob\ts\ncarol\\\\\tt\n");
    seeds.push(text);
    mutation_run("copy_filter", &seeds, checks::check_filter);
}

#[test]
fn manifest_parser_survives_mutated_manifests() {
    let seed = checks::seed_manifest();
    assert!(
        lethe::repo::manifest::Manifest::from_json("seed", &seed).is_ok(),
        "the seed manifest must be valid, or the run tests nothing"
    );
    let traversal = String::from_utf8(seed.clone()).unwrap().replace(
        "snapshots/20261122T130000Z-3f9a/data/0000",
        "snapshots/20261122T130000Z-3f9a/../../../etc/passwd",
    );
    mutation_run(
        "manifest",
        &[seed, traversal.into_bytes()],
        checks::check_manifest,
    );
}

#[test]
fn config_parser_survives_mutated_configs() {
    let seed = checks::seed_config();
    let cfg = lethe::config::Config::parse(std::str::from_utf8(&seed).unwrap())
        .expect("seed config parses");
    assert!(
        cfg.validate().is_empty(),
        "seed config must be valid: {:?}",
        cfg.validate()
    );
    mutation_run(
        "config",
        &[seed, b"[retention]\ndays = 35\n".to_vec()],
        checks::check_config,
    );
}

const ID: &str = "20261122T130000Z-3f9a";

fn repo_dir() -> (tempfile::TempDir, Arc<dyn Storage>) {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    let s: Arc<dyn Storage> = Arc::new(FsStorage::open(repo).unwrap());
    (dir, s)
}

#[tokio::test]
async fn a_manifest_naming_paths_outside_its_snapshot_is_refused_before_any_read() {
    let (dir, storage) = repo_dir();
    // A file the attacker wants read, outside the repository.
    std::fs::write(dir.path().join("secret"), b"outside").unwrap();
    let id: SnapshotId = ID.parse().unwrap();
    let good = String::from_utf8(checks::seed_manifest()).unwrap();
    let data_key = format!("snapshots/{ID}/data/0000.public.users.000.copy.zst.age");
    for evil in [
        format!("snapshots/{ID}/../../../secret"),
        "../secret".to_string(),
        "/etc/passwd".to_string(),
        format!("snapshots/{ID}/data/..%2f..%2fsecret"),
        format!("snapshots/{ID}//data"),
        "snapshots/20261122T130001Z-0000/data/x".to_string(),
        format!("snapshots/{ID}/data/\u{0}x"),
    ] {
        let m = good.replace(&data_key, &evil.replace('\\', "\\\\").replace('"', "\\\""));
        storage
            .put_bytes(&layout::manifest_key(&id), Bytes::from(m))
            .await
            .unwrap();
        let err = layout::load_manifest(storage.as_ref(), &id)
            .await
            .expect_err(&evil);
        let msg = err.to_string();
        assert!(
            msg.contains("manifest.json"),
            "error names the manifest: {msg}"
        );
    }
    // And the storage itself refuses such keys, whatever the caller.
    for evil in [
        "../secret",
        "a/../../secret",
        "/etc/passwd",
        ".",
        "a//b",
        "a/./b",
        "",
        "a\\..\\b",
        "ünï",
        "a b",
    ] {
        assert!(storage.get(evil).await.is_err(), "get {evil:?}");
        assert!(storage.head(evil).await.is_err(), "head {evil:?}");
        assert!(
            storage
                .put_bytes(evil, Bytes::from_static(b"x"))
                .await
                .is_err(),
            "put {evil:?}"
        );
        assert!(storage.delete(evil).await.is_err(), "delete {evil:?}");
    }
    assert_eq!(
        std::fs::read(dir.path().join("secret")).unwrap(),
        b"outside",
        "nothing outside was touched"
    );
    assert!(!dir.path().join("a").exists());
}

#[tokio::test]
async fn odd_names_in_the_repository_are_ignored_by_listings_and_ids() {
    let (dir, storage) = repo_dir();
    let root = dir.path().join("repo");
    let snaps = root.join("snapshots");
    std::fs::create_dir_all(snaps.join(ID)).unwrap();
    std::fs::write(
        snaps.join(ID).join("manifest.json"),
        checks::seed_manifest(),
    )
    .unwrap();
    // Names a hostile or broken writer could leave behind.
    for odd in [
        "..manifest",
        "not-an-id",
        "20261122T130000Z-3F9A",
        "20261399T990000Z-0000",
        "-",
        "a b",
        "ünï",
    ] {
        let d = snaps.join(odd);
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("manifest.json"), b"{}").unwrap();
    }
    std::fs::write(snaps.join("stray file"), b"x").unwrap();
    // A symlink pointing out of the repository, named like a snapshot.
    std::fs::create_dir_all(dir.path().join("elsewhere/20261122T120000Z-0001")).unwrap();
    std::fs::write(
        dir.path()
            .join("elsewhere/20261122T120000Z-0001/manifest.json"),
        b"{}",
    )
    .unwrap();
    std::os::unix::fs::symlink(
        dir.path().join("elsewhere/20261122T120000Z-0001"),
        snaps.join("20261122T120000Z-0001"),
    )
    .unwrap();

    let listed = storage.list("snapshots/").await.unwrap();
    for o in &listed {
        lethe::storage::validate_key(&o.key)
            .unwrap_or_else(|e| panic!("listing returned {:?}: {e}", o.key));
    }
    let inv = layout::inventory(storage.as_ref()).await.unwrap();
    let complete: Vec<String> = inv.complete.iter().map(|i| i.to_string()).collect();
    assert_eq!(
        complete,
        vec![ID.to_string()],
        "only the well-formed id is a snapshot"
    );
    for bad in [
        "../../etc",
        "latest/../x",
        "20261122T130000Z-3f9a/..",
        "20261122T130000Z-3F9A",
    ] {
        let e = layout::resolve(storage.as_ref(), bad).await.unwrap_err();
        assert!(e.to_string().contains("not a snapshot id"), "{bad}: {e}");
    }
}
