//! Wrong, unknown and (approximately) expired credentials against the real
//! Garage, for `lethe snapshot` and `lethe init`, through the test proxy
//! (forwarding only) so the number of requests shows whether a refusal was
//! retried. Each must exit 1 quickly with an error that names the storage
//! (endpoint and bucket), says the credentials were refused, says what to
//! check, and does not echo the secret.
//!
//! Expired STS credentials cannot be minted here (Garage has no STS). The
//! stand-in is a session token Garage does not know, sent with otherwise
//! valid keys: Garage ignores `x-amz-security-token` (it has no session
//! credentials), so that case is recorded, not asserted to fail. The
//! classification of `ExpiredToken` itself is unit-tested in
//! `src/storage/s3/errors.rs`.

use crate::common::LetheCli;
use crate::rig::{Rig, text};
use crate::s3proxy::Proxy;

const WRONG_SECRET: &str = "0000000000000000000000000000000000000000000000000000000000000000";

fn endpoint(rig: &Rig, from: &str, to: &str) {
    rig.edit_config(
        &format!("endpoint = \"{from}\""),
        &format!("endpoint = \"{to}\""),
    );
}

#[test]
fn refused_credentials_are_a_clear_permanent_error_for_snapshot_and_init() {
    let Some(rig) = Rig::s3("creds", "SELECT 1", "") else {
        return;
    };
    let garage = rig.garage.clone().expect("garage");
    let bucket = rig.bucket.as_ref().expect("bucket").name.clone();
    let cases: [(&str, Vec<(&str, &str)>); 3] = [
        (
            "wrong secret key",
            vec![("AWS_SECRET_ACCESS_KEY", WRONG_SECRET)],
        ),
        (
            "unknown access key id",
            vec![("AWS_ACCESS_KEY_ID", "GK0123456789abcdef01234567")],
        ),
        (
            "wrong secret and a session token",
            vec![
                ("AWS_SECRET_ACCESS_KEY", WRONG_SECRET),
                ("AWS_SESSION_TOKEN", "expired-session-token-for-tests"),
            ],
        ),
    ];
    let mut report = Vec::new();
    for verb in ["snapshot", "init"] {
        for (what, env) in &cases {
            let proxy = Proxy::start(&garage.endpoint, Vec::new());
            endpoint(&rig, &garage.endpoint, &proxy.url);
            let out = rig.run_env(&[verb], env);
            endpoint(&rig, &proxy.url, &garage.endpoint);
            let err = text(&out.stderr);
            let seen = proxy.seen();
            let refused: Vec<_> = seen.iter().filter(|s| s.status == Some(403)).collect();
            assert_eq!(out.status.code(), Some(1), "{verb}, {what}: {err}");
            if verb == "snapshot" {
                assert!(
                    err.contains("\"snapshot.failed\""),
                    "{verb}, {what}: alerts need snapshot.failed: {err}"
                );
            }
            assert!(
                !refused.is_empty(),
                "{verb}, {what}: Garage refused nothing: {seen:#?}"
            );
            // Permanent: no request was repeated after a refusal.
            let mut targets: Vec<(&str, &str)> = refused
                .iter()
                .map(|s| (s.method.as_str(), s.target.as_str()))
                .collect();
            let n = targets.len();
            targets.sort_unstable();
            targets.dedup();
            assert_eq!(
                targets.len(),
                n,
                "{verb}, {what}: a refused request was retried: {seen:#?}"
            );
            // Shown once: `snapshot` in its `snapshot.failed` event (no
            // `lethe: error:` line after it), `init` as a `lethe: error:` line.
            let error_lines: Vec<&str> = err
                .lines()
                .filter(|l| l.starts_with("lethe: error:"))
                .collect();
            let failed: Vec<String> = err
                .lines()
                .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
                .filter(|v| v["event"] == "snapshot.failed")
                .filter_map(|v| v["error"].as_str().map(str::to_string))
                .collect();
            let last = match verb {
                "snapshot" => {
                    assert!(error_lines.is_empty(), "{verb}, {what}: shown twice: {err}");
                    failed.first().map(String::as_str)
                }
                _ => error_lines.last().copied(),
            }
            .unwrap_or_else(|| panic!("{verb}, {what}: no error: {err}"));
            assert_eq!(
                err.matches("AWS_SECRET_ACCESS_KEY").count(),
                last.matches("AWS_SECRET_ACCESS_KEY").count(),
                "{verb}, {what}: the error is shown once: {err}"
            );
            for (needle, why) in [
                (bucket.as_str(), "names the bucket"),
                (proxy.url.as_str(), "names the endpoint"),
                ("refused", "says the credentials were refused"),
                ("AWS_SECRET_ACCESS_KEY", "says what to check"),
            ] {
                assert!(last.contains(needle), "{verb}, {what}: {why}: {last}");
            }
            for (k, v) in env {
                if *k != "AWS_ACCESS_KEY_ID" {
                    assert!(!err.contains(v), "{verb}, {what}: {k} echoed: {err}");
                }
            }
            assert!(
                !err.contains(&garage.secret_key),
                "{verb}: the real secret echoed"
            );
            report.push(format!(
                "{verb} / {what}: exit 1 after {} requests ({} refused, none retried)",
                seen.len(),
                refused.len()
            ));
            eprintln!("credentials: {verb} / {what}: {last}");
        }
    }
    assert!(rig.listed().is_empty(), "nothing is listed");

    // The session-token stand-in for an expired STS token, with the right
    // keys: recorded, since Garage ignores session tokens.
    let out = rig.run_env(
        &["init"],
        &[("AWS_SESSION_TOKEN", "expired-session-token-for-tests")],
    );
    report.push(format!(
        "init / valid keys + unknown session token: exit {:?} (Garage ignores session tokens)",
        out.status.code()
    ));
    eprintln!("credentials: {}", report.join("; "));
}
