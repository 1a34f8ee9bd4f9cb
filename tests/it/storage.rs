//! The storage conformance suite: one generic suite run against the
//! directory backend and against Garage (real S3), plus S3-only checks
//! (credentials, multipart part growth, GetBucketLocation).

use crate::common;
use bytes::Bytes;
use futures::StreamExt;
use lethe::storage::s3::PartSizing;
use lethe::storage::{ByteStream, Storage, StorageError, StorageExt};
use std::sync::Arc;
use std::time::Duration;

const MIB: usize = 1 << 20;

/// Small parts so 21 MiB is four parts of growing size (5, 5, 10, 1 MiB).
const SMALL_PARTS: PartSizing = PartSizing {
    first: 5 * MIB as u64,
    parts_per_step: 2,
};

/// Deterministic, incompressible-looking bytes.
fn data(len: usize, seed: u8) -> Vec<u8> {
    let mut x = 0x9e37_79b9_7f4a_7c15u64 ^ u64::from(seed);
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// A body of `data` in 1 MiB chunks.
fn chunked(data: &[u8]) -> ByteStream {
    let chunks: Vec<Result<Bytes, StorageError>> = data
        .chunks(MIB)
        .map(|c| Ok(Bytes::copy_from_slice(c)))
        .collect();
    Box::pin(futures::stream::iter(chunks))
}

/// `n` MiB, then the producer fails.
fn failing_after(n: usize, key: &str) -> ByteStream {
    let ok = futures::stream::iter((0..n).map(|i| Ok(Bytes::from(data(MIB, i as u8)))));
    let err = futures::stream::once({
        let key = key.to_string();
        async move {
            Err(StorageError::Body {
                key,
                message: "producer failed".into(),
            })
        }
    });
    Box::pin(ok.chain(err))
}

/// `n` MiB, then nothing ever again (a stalled producer).
fn stalling_after(n: usize) -> ByteStream {
    let ok = futures::stream::iter((0..n).map(|i| Ok(Bytes::from(data(MIB, i as u8)))));
    Box::pin(ok.chain(futures::stream::pending()))
}

/// Waits (bounded, so a bug fails instead of hanging) until `cond` holds.
async fn eventually<F, Fut>(what: &str, mut cond: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    for _ in 0..300 {
        if cond().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("gave up waiting: {what}");
}

async fn incomplete_keys(s: &dyn Storage, prefix: &str) -> Vec<String> {
    s.list_incomplete(prefix)
        .await
        .expect("list_incomplete")
        .into_iter()
        .map(|u| u.key)
        .collect()
}

async fn keys(s: &dyn Storage, prefix: &str) -> Vec<String> {
    s.list(prefix)
        .await
        .expect("list")
        .into_iter()
        .map(|o| o.key)
        .collect()
}

/// The suite: every backend must pass all of it.
async fn conformance(s: Arc<dyn Storage>) {
    let s = s.as_ref();
    round_trips(s).await;
    head_list_delete(s).await;
    invalid_keys_are_refused(s).await;
    failed_body_leaves_nothing(s).await;
    dropped_put_leaves_nothing_visible(s).await;
    killed_put_is_listed_for_cleanup(s).await;
}

async fn round_trips(s: &dyn Storage) {
    for (key, len) in [
        ("rt/empty", 0),
        ("rt/small.bin", 1000),
        ("rt/big/21mib.bin", 21 * MIB),
    ] {
        let body = data(len, len as u8);
        let meta = s
            .put(key, chunked(&body))
            .await
            .unwrap_or_else(|e| panic!("put {key}: {e}"));
        assert_eq!(meta.key, key);
        assert_eq!(meta.size, len as u64, "{key}");
        let back = s
            .get_bytes(key)
            .await
            .unwrap_or_else(|e| panic!("get {key}: {e}"));
        assert!(
            back.len() == body.len() && back[..] == body[..],
            "{key}: content differs after a round trip"
        );
        assert_eq!(
            s.head(key).await.expect("head").map(|m| m.size),
            Some(len as u64),
            "{key}"
        );
    }
    // Overwrite replaces the whole object.
    s.put_bytes("rt/small.bin", Bytes::from_static(b"second"))
        .await
        .expect("overwrite");
    assert_eq!(
        &s.get_bytes("rt/small.bin").await.expect("get")[..],
        b"second"
    );
    assert!(
        incomplete_keys(s, "rt/").await.is_empty(),
        "a finished upload left an incomplete one behind"
    );
}

async fn head_list_delete(s: &dyn Storage) {
    for k in ["l/a", "l/b/c", "l/bb", "lx"] {
        s.put_bytes(k, Bytes::from(k.as_bytes().to_vec()))
            .await
            .expect("put");
    }
    assert_eq!(keys(s, "l/").await, ["l/a", "l/b/c", "l/bb"]);
    assert_eq!(
        keys(s, "l/b").await,
        ["l/b/c", "l/bb"],
        "prefixes match strings, not directories"
    );
    assert_eq!(keys(s, "l/b/").await, ["l/b/c"]);
    assert!(keys(s, "").await.contains(&"lx".to_string()));
    assert!(keys(s, "nothing/").await.is_empty());
    let listed = s.list("l/a").await.expect("list");
    assert_eq!(listed[0].size, 3);

    assert_eq!(s.head("l/missing").await.expect("head"), None);
    assert!(matches!(
        s.get("l/missing").await,
        Err(StorageError::NotFound { .. })
    ));
    s.delete("l/missing")
        .await
        .expect("deleting an absent object succeeds");

    s.delete("l/b/c").await.expect("delete");
    assert_eq!(s.head("l/b/c").await.expect("head"), None);
    assert_eq!(keys(s, "l/").await, ["l/a", "l/bb"]);
}

async fn invalid_keys_are_refused(s: &dyn Storage) {
    for bad in [
        "",
        "../x",
        "/abs",
        "a//b",
        "a/./b",
        "a/../b",
        "sp ace",
        "semi;colon",
        "a/",
    ] {
        let is_invalid =
            |r: Result<(), StorageError>| matches!(r, Err(StorageError::InvalidKey { .. }));
        assert!(
            is_invalid(s.put_bytes(bad, Bytes::new()).await.map(drop)),
            "put {bad:?}"
        );
        assert!(is_invalid(s.get(bad).await.map(drop)), "get {bad:?}");
        assert!(is_invalid(s.head(bad).await.map(drop)), "head {bad:?}");
        assert!(is_invalid(s.delete(bad).await), "delete {bad:?}");
    }
    assert!(matches!(
        s.list("../").await,
        Err(StorageError::InvalidKey { .. })
    ));
}

async fn failed_body_leaves_nothing(s: &dyn Storage) {
    // Mid-multipart (after 12 MiB: two parts sent) and before the first part.
    for (key, n) in [("fail/multi", 12), ("fail/single", 1)] {
        let err = s
            .put(key, failing_after(n, key))
            .await
            .expect_err("a failing body fails the put");
        assert!(matches!(err, StorageError::Body { .. }), "{key}: {err:?}");
        assert_eq!(
            s.head(key).await.expect("head"),
            None,
            "{key}: half an object is visible"
        );
        assert!(keys(s, "fail/").await.is_empty());
        // Aborted before put returned, not later.
        assert!(
            incomplete_keys(s, "fail/").await.is_empty(),
            "{key}: upload not aborted"
        );
    }
}

/// Polls `put` until the store shows its upload as started, then returns
/// the still-running future.
async fn start_put<'a>(
    s: &'a dyn Storage,
    key: &'a str,
) -> std::pin::Pin<
    Box<
        dyn std::future::Future<Output = Result<lethe::storage::ObjectMeta, StorageError>>
            + Send
            + 'a,
    >,
> {
    let mut put = s.put(key, stalling_after(12));
    let prefix = key.rsplit_once('/').map_or("", |(p, _)| p).to_string() + "/";
    let started = async {
        eventually("the upload shows as incomplete", || async {
            incomplete_keys(s, &prefix).await.iter().any(|k| k == key)
        })
        .await
    };
    tokio::select! {
        r = &mut put => panic!("a put whose body never ends returned: {r:?}"),
        () = started => {}
    }
    put
}

async fn dropped_put_leaves_nothing_visible(s: &dyn Storage) {
    let key = "drop/obj";
    let put = start_put(s, key).await;
    drop(put);
    // What `main` does before its runtime goes: wait for spawned aborts.
    assert!(
        lethe::storage::s3::finish_aborts(Duration::from_secs(60)).await,
        "aborts still running"
    );
    assert_eq!(s.head(key).await.expect("head"), None);
    assert!(keys(s, "drop/").await.is_empty());
    eventually("the dropped upload is aborted", || async {
        incomplete_keys(s, "drop/").await.is_empty()
    })
    .await;
}

/// A put polled once and then dropped without being polled again, after
/// the server made its multipart upload: no guard in the put itself ever
/// held the upload's id, yet the upload is aborted (S3: the upload is
/// started by a task of its own, which hands the id over or aborts it).
async fn put_dropped_while_starting_leaves_no_upload(s: &dyn Storage) {
    let key = "early/obj";
    let mut put = s.put(key, stalling_after(12));
    assert!(
        futures::poll!(&mut put).is_pending(),
        "a put whose body never ends returned"
    );
    eventually("the upload shows as incomplete", || async {
        incomplete_keys(s, "early/").await.iter().any(|k| k == key)
    })
    .await;
    drop(put);
    assert!(
        lethe::storage::s3::finish_aborts(Duration::from_secs(60)).await,
        "aborts still running"
    );
    assert_eq!(s.head(key).await.expect("head"), None);
    eventually("the upload of the dropped put is aborted", || async {
        incomplete_keys(s, "early/").await.is_empty()
    })
    .await;
}

async fn killed_put_is_listed_for_cleanup(s: &dyn Storage) {
    let key = "kill/obj";
    let put = start_put(s, key).await;
    // Never dropped, never polled again: what a killed process leaves.
    std::mem::forget(put);
    assert_eq!(s.head(key).await.expect("head"), None);
    assert!(
        keys(s, "kill/").await.is_empty(),
        "a killed upload is visible"
    );
    let left = s.list_incomplete("kill/").await.expect("list_incomplete");
    assert_eq!(
        left.iter().map(|u| u.key.as_str()).collect::<Vec<_>>(),
        [key]
    );
    assert!(
        incomplete_keys(s, "other/").await.is_empty(),
        "list_incomplete ignores its prefix"
    );
    for u in &left {
        s.abort_incomplete(u).await.expect("abort_incomplete");
    }
    assert!(
        incomplete_keys(s, "kill/").await.is_empty(),
        "cleanup left the upload behind"
    );
    assert_eq!(s.head(key).await.expect("head"), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = lethe::storage::fs::FsStorage::open(dir.path().join("repo")).expect("open");
    conformance(Arc::new(s)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_garage() {
    let Some(g) = common::garage() else { return };
    let bucket = g.new_bucket();
    let s = g.storage(&bucket, "repo", SMALL_PARTS).await;
    conformance(Arc::new(s.clone())).await;
    put_dropped_while_starting_leaves_no_upload(&s).await;
    // The repository prefix keeps everything under it.
    let outside = g.storage(&bucket, "", SMALL_PARTS).await;
    assert!(
        keys(&outside, "")
            .await
            .iter()
            .all(|k| k.starts_with("repo/"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garage_through_storage_open_and_when_required_checksums() {
    let Some(g) = common::garage() else { return };
    let bucket = g.new_bucket();
    for mode in [
        lethe::config::ChecksumMode::Always,
        lethe::config::ChecksumMode::WhenRequired,
    ] {
        let mut cfg = g.storage_config(&bucket, "cs");
        cfg.checksum = mode;
        let s = lethe::storage::s3::S3Storage::connect(
            &cfg,
            bucket.to_string(),
            "cs".into(),
            g.s3_options(),
        )
        .await
        .expect("connect");
        let body = data(17 * MIB, 3);
        s.put("obj", chunked(&body))
            .await
            .unwrap_or_else(|e| panic!("{mode:?}: {e}"));
        assert_eq!(
            s.get_bytes("obj").await.expect("get").len(),
            body.len(),
            "{mode:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_credentials_say_to_check_the_credential_chain() {
    let Some(g) = common::garage() else { return };
    let bucket = g.new_bucket();
    let mut opts = g.s3_options();
    opts.credentials = Some(aws_sdk_s3::config::Credentials::new(
        "GK000000000000000000000000",
        "0".repeat(64),
        None,
        None,
        "wrong",
    ));
    let cfg = g.storage_config(&bucket, "x");
    let err = lethe::storage::s3::S3Storage::connect(&cfg, bucket.to_string(), "x".into(), opts)
        .await
        .expect_err("a wrong key is refused at connect");
    assert!(matches!(err, StorageError::Permanent { .. }), "{err:?}");
    assert!(err.to_string().contains("AWS credential chain"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_bucket_is_named() {
    let Some(g) = common::garage() else { return };
    let cfg = g.storage_config("lethe-no-such-bucket", "");
    let err = lethe::storage::s3::S3Storage::connect(
        &cfg,
        "lethe-no-such-bucket".into(),
        String::new(),
        g.s3_options(),
    )
    .await
    .expect_err("missing bucket");
    assert!(err.to_string().contains("lethe-no-such-bucket"), "{err}");
}

#[test]
fn the_binary_reports_missing_credentials_clearly() {
    let Some(g) = common::garage() else { return };
    let bucket = g.new_bucket();
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = common::write_repo_config(
        dir.path(),
        &common::Repo::S3 {
            garage: &g,
            bucket: &bucket,
            prefix: "p",
        },
        "",
    );
    let out = std::process::Command::new(common::lethe_bin())
        .arg("--config")
        .arg(&cfg)
        .arg("list")
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", dir.path())
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .output()
        .expect("lethe runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("AWS credential chain"), "{stderr}");
}

/// `storage.credentials_file`: with no AWS variables in the environment,
/// the CLI reads the key from the file; a file others can read is refused,
/// naming it and `chmod 600`.
#[test]
fn the_credentials_file_is_used_when_private_and_refused_when_others_can_read_it() {
    use std::os::unix::fs::PermissionsExt;
    let Some(g) = common::garage() else { return };
    let bucket = g.new_bucket();
    let dir = tempfile::tempdir().expect("tempdir");
    let env_file = dir.path().join("aws.env");
    std::fs::write(
        &env_file,
        format!(
            "# for lethe\nAWS_ACCESS_KEY_ID={}\nAWS_SECRET_ACCESS_KEY=\"{}\"\n",
            g.access_key, g.secret_key
        ),
    )
    .expect("write");
    let cfg = common::write_repo_config(
        dir.path(),
        &common::Repo::S3 {
            garage: &g,
            bucket: &bucket,
            prefix: "p",
        },
        "",
    );
    let text = std::fs::read_to_string(&cfg).expect("config");
    let text = text.replacen(
        "path_style = true",
        &format!(
            "path_style = true\ncredentials_file = \"{}\"",
            env_file.display()
        ),
        1,
    );
    std::fs::write(&cfg, text).expect("write config");
    let list = || {
        let mut c = std::process::Command::new(common::lethe_bin());
        c.arg("--config")
            .arg(&cfg)
            .arg("list")
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOME", dir.path())
            .env("AWS_EC2_METADATA_DISABLED", "true");
        common::output_within(c)
    };

    std::fs::set_permissions(&env_file, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let out = list();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&env_file.display().to_string()) && stderr.contains("chmod 600"),
        "{stderr}"
    );

    std::fs::set_permissions(&env_file, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    let out = list();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_reporting_a_non_eu_location_is_refused() {
    let Some(g) = common::garage_outside_eu() else {
        return;
    };
    let bucket = g.new_bucket();
    // The signing region must match the store's, so the config says
    // us-east-1 too; validation would refuse it, connect refuses on its own.
    let mut cfg = g.storage_config(&bucket, "p");
    let err = lethe::storage::s3::S3Storage::connect(
        &cfg,
        bucket.to_string(),
        "p".into(),
        g.s3_options(),
    )
    .await
    .expect_err("a bucket in us-east-1 is refused");
    let msg = err.to_string();
    assert!(
        msg.contains("us-east-1") && msg.contains("EU allow-list"),
        "{msg}"
    );
    // Explicitly allowed: the same bucket is accepted.
    cfg.allowed_regions = vec!["us-east-1".into()];
    lethe::storage::s3::S3Storage::connect(&cfg, bucket.to_string(), "p".into(), g.s3_options())
        .await
        .expect("allowed_regions admits the region");
}
