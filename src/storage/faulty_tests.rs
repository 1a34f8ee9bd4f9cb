//! Unit tests of the fault-injecting wrapper over the directory backend.

use super::*;
use crate::storage::StorageExt;
use crate::storage::fs::FsStorage;

fn faulty(plan: &str) -> (tempfile::TempDir, FaultyStorage) {
    let dir = tempfile::tempdir().unwrap();
    let inner: Arc<dyn Storage> = Arc::new(FsStorage::open(dir.path().to_path_buf()).unwrap());
    (
        dir,
        FaultyStorage::new(inner, FaultPlan::parse(plan).unwrap()),
    )
}

fn chunked(data: &[u8], n: usize) -> ByteStream {
    let chunks: Vec<Result<Bytes, StorageError>> = data
        .chunks(n)
        .map(|c| Ok(Bytes::copy_from_slice(c)))
        .collect();
    Box::pin(futures::stream::iter(chunks))
}

#[test]
fn plans_parse_and_bad_rules_are_named() {
    let p = FaultPlan::parse(
        "seed=7, put:transient@3, get:delay=200ms@p0.5~data/, *:stall=1s@2+, head:error@2-4",
    )
    .unwrap();
    assert_eq!(p.rules.len(), 4);
    assert_eq!(p.rules[0].when, When::Nth(3));
    assert_eq!(p.rules[1].fault, Fault::Delay(Duration::from_millis(200)));
    assert_eq!(p.rules[1].key_contains.as_deref(), Some("data/"));
    assert_eq!(p.rules[2].call, None);
    assert_eq!(p.rules[2].when, When::From(2));
    assert_eq!(p.rules[3].when, When::Range(2, 4));
    for bad in [
        "put",
        "put:explode",
        "put:transient@0",
        "put:transient@p2",
        "list:flip",
        "head:lost_ack",
        "put:delay=soon",
        "x:transient",
        "seed=-1",
        "put:flip~",
    ] {
        let e = FaultPlan::parse(bad).unwrap_err();
        assert_eq!(e.rule, bad, "{e}");
    }
    assert!(FaultPlan::parse("").unwrap().is_empty());
}

#[tokio::test]
async fn nth_call_fails_once_with_the_kind_asked_for() {
    let (_d, s) = faulty("put:transient@2,get:permanent@1~b");
    s.put_bytes("a", Bytes::from_static(b"1")).await.unwrap();
    let e = s
        .put_bytes("b", Bytes::from_static(b"2"))
        .await
        .unwrap_err();
    assert!(e.is_retryable(), "{e}");
    assert!(
        s.inner.head("b").await.unwrap().is_none(),
        "a failed put stores nothing"
    );
    s.put_bytes("b", Bytes::from_static(b"2")).await.unwrap();
    assert_eq!(
        s.get_bytes("a").await.unwrap(),
        "1",
        "key filter: `a` does not count"
    );
    let e = s.get_bytes("b").await.unwrap_err();
    assert!(
        matches!(e, StorageError::Permanent { .. }) && e.to_string().contains("get b"),
        "{e}"
    );
    assert_eq!(s.get_bytes("b").await.unwrap(), "2");
    assert_eq!(s.plan().injected(), 2);
}

#[tokio::test]
async fn seeded_probabilities_replay_exactly() {
    let run = |seed: u64| async move {
        let (_d, s) = faulty(&format!("seed={seed},head:transient@p0.3"));
        let mut pattern = Vec::new();
        for _ in 0..200 {
            pattern.push(s.head("k").await.is_err());
        }
        pattern
    };
    let a = run(11).await;
    assert_eq!(a, run(11).await);
    assert_ne!(a, run(12).await);
    let hits = a.iter().filter(|&&x| x).count();
    assert!(
        (30..=90).contains(&hits),
        "p=0.3 over 200 calls fired {hits} times"
    );
}

#[tokio::test]
async fn flip_and_truncate_damage_bodies_on_get_and_put() {
    let data: Vec<u8> = (0..5000u32).map(|i| (i % 251) as u8).collect();
    let (_d, s) = faulty(
        "get:flip=1234@1,get:truncate@2,get:flip=999999@3,put:truncate=100~short,put:flip=0~flipped",
    );
    s.inner.put("obj", chunked(&data, 700)).await.unwrap();
    let got = s.get_bytes("obj").await.unwrap();
    let diff: Vec<usize> = (0..data.len()).filter(|&i| got[i] != data[i]).collect();
    assert_eq!(diff, vec![1234]);
    assert_eq!(s.get_bytes("obj").await.unwrap(), &data[..data.len() - 16]);
    let got = s.get_bytes("obj").await.unwrap();
    assert_eq!(got[..data.len() - 1], data[..data.len() - 1]);
    assert_ne!(
        got[data.len() - 1],
        data[data.len() - 1],
        "an offset past the end flips the last byte"
    );
    assert_eq!(
        s.get_bytes("obj").await.unwrap(),
        data,
        "rules fired once each"
    );

    s.put("short", chunked(&data, 64)).await.unwrap();
    assert_eq!(s.inner.get_bytes("short").await.unwrap(), &data[..100]);
    s.put("flipped", chunked(&data, 64)).await.unwrap();
    let got = s.inner.get_bytes("flipped").await.unwrap();
    assert_eq!(got[0], !data[0]);
    assert_eq!(got[1..], data[1..]);
}

#[tokio::test]
async fn reset_fails_the_stream_mid_body() {
    let data = vec![7u8; 3000];
    let (_d, s) = faulty("get:reset=1000,put:reset=10");
    s.inner.put("obj", chunked(&data, 512)).await.unwrap();
    let mut st = s.get("obj").await.unwrap();
    let mut n = 0;
    let err = loop {
        match st.next().await {
            Some(Ok(b)) => n += b.len(),
            Some(Err(e)) => break e,
            None => panic!("stream ended without the injected reset"),
        }
    };
    assert_eq!(n, 1000);
    assert!(
        err.is_retryable() && err.to_string().contains("obj"),
        "{err}"
    );
    let e = s.put("new", chunked(&data, 512)).await.unwrap_err();
    assert!(
        matches!(
            e,
            StorageError::Body { .. } | StorageError::Transient { .. }
        ),
        "{e}"
    );
    assert!(
        s.inner.head("new").await.unwrap().is_none(),
        "an upload whose body failed leaves nothing"
    );
    assert!(s.inner.list_incomplete("").await.unwrap().is_empty());
}

#[tokio::test]
async fn lost_ack_stores_but_reports_a_transient_error() {
    let (_d, s) = faulty("put:lost_ack@1");
    let e = s
        .put_bytes("k", Bytes::from_static(b"v"))
        .await
        .unwrap_err();
    assert!(e.is_retryable());
    assert_eq!(s.inner.get_bytes("k").await.unwrap(), "v");
}

#[tokio::test]
async fn a_stall_is_cancelled_by_dropping_the_call() {
    let (_d, s) = faulty("list:stall");
    let r = tokio::time::timeout(Duration::from_millis(50), s.list("")).await;
    assert!(r.is_err(), "stalled call must not return");
    let (_d, s) = faulty("list:stall=10ms");
    let e = s.list("").await.unwrap_err();
    assert!(
        e.is_retryable() && e.to_string().contains("timed out"),
        "{e}"
    );
}
