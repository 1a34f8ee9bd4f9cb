//! Storage faults below the S3 retry layer: `lethe` talks to the real
//! Garage through [`crate::s3proxy`], which answers chosen requests with
//! `503 SlowDown` / `500 InternalError` (S3 XML bodies), cuts connections
//! mid-request-body or mid-response-body, or delays them.
//!
//! - A few injected errors: the snapshot completes, verifies `--deep`, and
//!   the proxy saw every failed request retried and then answered 2xx.
//! - Every part upload refused: the snapshot fails cleanly (exit 1,
//!   `snapshot.failed`, nothing listed), after aborting the multipart upload
//!   it had created: Garage lists none.
//! - Reads: a response cut mid-body and a 503 while `verify --deep` and a
//!   restore read the snapshot: both succeed, the restore equals the source.

use crate::common::LetheCli;
use crate::rig::{Rig, SCHEMA, filler, text};
use crate::s3proxy::{Action, Proxy, Rule, Seen};
use std::time::Duration;

/// Points the rig's config at `to` instead of `from`.
fn endpoint(rig: &Rig, from: &str, to: &str) {
    rig.edit_config(
        &format!("endpoint = \"{from}\""),
        &format!("endpoint = \"{to}\""),
    );
}

fn injected(seen: &[Seen]) -> Vec<(usize, &Seen)> {
    seen.iter()
        .enumerate()
        .filter(|(_, s)| !matches!(s.action, Action::Forward | Action::Delay(_)))
        .collect()
}

/// Each injected failure was followed by the same request answered 2xx.
fn assert_retried(seen: &[Seen]) -> usize {
    let mut n = 0;
    for (i, s) in injected(seen) {
        let ok = seen[i + 1..].iter().any(|l| {
            l.method == s.method
                && l.target == s.target
                && l.status.is_some_and(|c| (200..300).contains(&c))
        });
        assert!(
            ok,
            "{} {} ({:?}) was never retried to success; proxy log:\n{seen:#?}",
            s.method, s.target, s.action
        );
        n += 1;
    }
    n
}

#[test]
fn injected_s3_errors_below_the_retry_layer_are_retried_to_a_complete_snapshot() {
    let Some(rig) = Rig::s3("httpfault", &format!("{SCHEMA}{}", filler(300_000)), "") else {
        return;
    };
    let garage = rig.garage.clone().expect("garage");
    // Per method, the Nth request gets the fault (counted among that
    // method's requests through the proxy).
    let rules = vec![
        Rule::new("GET", "", &[1], Action::SlowDown),
        Rule::new("GET", "", &[3], Action::Delay(Duration::from_secs(2))),
        Rule::new("HEAD", "", &[1], Action::InternalError),
        Rule::new("PUT", "", &[2, 5], Action::SlowDown),
        Rule::new("PUT", "", &[3], Action::InternalError),
        Rule::new("PUT", "partNumber=", &[1], Action::ResetRequest(256 * 1024)),
        Rule::new("PUT", "", &[9], Action::ResetRequest(1)),
        Rule::new("POST", "uploads", &[1], Action::SlowDown),
        Rule::new("POST", "uploadId=", &[1], Action::SlowDown),
    ];
    let proxy = Proxy::start(&garage.endpoint, rules);
    endpoint(&rig, &garage.endpoint, &proxy.url);
    let out = rig.run(&["snapshot"]);
    endpoint(&rig, &proxy.url, &garage.endpoint);
    let err = text(&out.stderr);
    let seen = proxy.seen();
    assert!(
        out.status.success(),
        "snapshot through the faulty proxy: {err}\nproxy log:\n{seen:#?}"
    );
    assert!(!err.contains("\"snapshot.failed\""), "{err}");
    let id = text(&out.stdout).trim().to_string();
    let v = rig.run(&["verify", &id, "--deep"]);
    assert!(
        v.status.success(),
        "verify --deep {id}: {}{}",
        text(&v.stdout),
        text(&v.stderr)
    );
    let multipart = seen.iter().any(|s| s.target.contains("partNumber="));
    let retried = assert_retried(&seen);
    let count = |a: &Action| seen.iter().filter(|s| &s.action == a).count();
    let resets = seen
        .iter()
        .filter(|s| matches!(s.action, Action::ResetRequest(_)))
        .count();
    assert!(
        count(&Action::SlowDown) >= 3,
        "the plan injected too few 503s: {seen:#?}"
    );
    eprintln!(
        "faults_http: snapshot {id} through the proxy: {} requests, {} × 503 SlowDown, {} × 500 InternalError, \
         {resets} connection resets mid-request, {} delays; all {retried} failures retried to 2xx; \
         multipart: {multipart}; verify --deep OK",
        seen.len(),
        count(&Action::SlowDown),
        count(&Action::InternalError),
        seen.iter()
            .filter(|s| matches!(s.action, Action::Delay(_)))
            .count(),
    );

    // Reads: a response cut mid-body and a 503 while verifying and
    // restoring through the proxy.
    let proxy = Proxy::start(
        &garage.endpoint,
        vec![
            Rule::new("GET", "/snapshots/", &[2], Action::ResetResponse(100)),
            Rule::new("GET", "/snapshots/", &[4], Action::SlowDown),
        ],
    );
    endpoint(&rig, &garage.endpoint, &proxy.url);
    let v = rig.run(&["verify", &id, "--deep"]);
    let (target, r) = rig.restore(&id, "httpfault_tgt");
    endpoint(&rig, &proxy.url, &garage.endpoint);
    let seen = proxy.seen();
    eprintln!(
        "faults_http: reads through the proxy ({} requests, {} injected): verify --deep exit {:?}, restore exit {:?}",
        seen.len(),
        injected(&seen).len(),
        v.status.code(),
        r.status.code()
    );
    for (what, out) in [("verify --deep", &v), ("restore", &r)] {
        assert!(
            out.status.success(),
            "{what} through a cut response and a 503: {}{}\nproxy log:\n{seen:#?}",
            text(&out.stdout),
            text(&out.stderr)
        );
    }
    crate::rig::assert_same_tables(&rig.db, &target, crate::rig::TABLES);
    assert_retried(&seen);
}

#[test]
fn persistent_s3_errors_fail_the_snapshot_cleanly_and_leave_no_upload() {
    let Some(rig) = Rig::s3("httpfail", &format!("{SCHEMA}{}", filler(300_000)), "") else {
        return;
    };
    let garage = rig.garage.clone().expect("garage");
    let before = rig.listed();
    // Every part upload is refused, for ever: the multipart upload is
    // created, its parts fail after the retry budget, and it must be aborted.
    let proxy = Proxy::start(
        &garage.endpoint,
        vec![Rule::new("PUT", "partNumber=", &[], Action::SlowDown)],
    );
    endpoint(&rig, &garage.endpoint, &proxy.url);
    let out = rig.run(&["snapshot"]);
    endpoint(&rig, &proxy.url, &garage.endpoint);
    let err = text(&out.stderr);
    let seen = proxy.seen();
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("\"snapshot.failed\""), "{err}");
    assert_eq!(rig.listed(), before, "a failed snapshot is listed");
    let rt = crate::rig::rt();
    let uploads = rt
        .block_on(rig.storage(&rt).list_incomplete(""))
        .expect("list_incomplete");
    assert!(uploads.is_empty(), "unfinished uploads left: {uploads:?}");
    let created = seen
        .iter()
        .filter(|s| s.method == "POST" && s.target.contains("uploads"))
        .count();
    let aborted = seen
        .iter()
        .filter(|s| s.method == "DELETE" && s.target.contains("uploadId="))
        .count();
    let refused = injected(&seen).len();
    assert!(refused > 1, "nothing was refused: {seen:#?}");
    assert!(
        created >= 1 && aborted >= 1,
        "the failure should hit a multipart upload and abort it: {seen:#?}"
    );
    // The most attempts any one part got (the retry budget is 7).
    let mut per_part = std::collections::HashMap::<&str, usize>::new();
    for (_, s) in injected(&seen) {
        *per_part.entry(s.target.as_str()).or_default() += 1;
    }
    let attempts = per_part.values().copied().max().unwrap_or(0);
    let parts = per_part.len();
    eprintln!(
        "faults_http: persistent errors: {refused} part uploads refused ({parts} parts, at most {attempts} attempts each; {} requests \
         in all), {created} multipart uploads created, {aborted} aborted; exit 1, snapshot.failed, nothing listed, \
         0 unfinished uploads",
        seen.len()
    );
}
