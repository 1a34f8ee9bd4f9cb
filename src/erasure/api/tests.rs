//! API tests: a real server on a temporary socket, the real client, and raw
//! HTTP for what the client never sends.

use super::*;
use crate::erasure::client::{ApiClient, ClientError};
use crate::erasure::config::SubjectType;
use crate::storage::fs::FsStorage;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

struct Running {
    dir: tempfile::TempDir,
    store: Arc<ErasureStore>,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<()>,
    api: ApiConfig,
}

async fn start(listen: Option<String>, token_file: Option<PathBuf>) -> Running {
    start_with(listen, token_file, Timeouts::default()).await
}

async fn start_with(
    listen: Option<String>,
    token_file: Option<PathBuf>,
    timeouts: Timeouts,
) -> Running {
    let dir = tempfile::tempdir().unwrap();
    let store =
        Arc::new(ErasureStore::open(&dir.path().join("list"), SubjectType::Bigint).unwrap());
    let storage: Arc<dyn Storage> = Arc::new(FsStorage::open(dir.path().join("repo")).unwrap());
    let listen =
        listen.unwrap_or_else(|| format!("unix:{}", dir.path().join("run/api.sock").display()));
    let mut api = ApiConfig { listen, token_file };
    let server = ApiServer::bind(&api).await.unwrap().with_timeouts(timeouts);
    api.listen = server.local_addr();
    let stop = CancellationToken::new();
    let task = tokio::spawn(server.run(Arc::clone(&store), storage, stop.clone()));
    Running {
        dir,
        store,
        stop,
        task,
        api,
    }
}

impl Running {
    fn socket(&self) -> PathBuf {
        self.dir.path().join("run/api.sock")
    }

    async fn stop(self) {
        self.stop.cancel();
        tokio::time::timeout(Duration::from_secs(20), self.task)
            .await
            .unwrap()
            .unwrap();
    }
}

/// One raw HTTP/1.1 request on the socket; returns (status, body).
async fn raw(sock: &std::path::Path, head: &str, body: &[u8]) -> (u16, String) {
    let s = tokio::net::UnixStream::connect(sock).await.unwrap();
    let (mut rd, mut wr) = s.into_split();
    let mut req = format!(
        "{head}\r\nHost: x\r\nConnection: close\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    req.extend_from_slice(body);
    let writer = tokio::spawn(async move {
        let _ = wr.write_all(&req).await;
        wr
    });
    let mut out = Vec::new();
    let _ = rd.read_to_end(&mut out).await;
    writer.abort();
    let text = String::from_utf8_lossy(&out).into_owned();
    let status = text.get(9..12).and_then(|c| c.parse().ok()).unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

#[tokio::test]
async fn add_check_list_status_through_the_client() {
    let r = start(None, None).await;
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(r.socket()).unwrap().permissions().mode() & 0o777,
        0o660
    );
    let c = ApiClient::from_config(&r.api).unwrap();
    let out = c
        .add(&["1".into(), "2".into(), "2".into()], Some("T-9"))
        .await
        .unwrap();
    assert_eq!((out.added, out.already_listed, out.count), (2, 1, 2));
    let e = c.get("0002").await.unwrap().unwrap();
    assert_eq!(
        (e.subject.as_str(), e.reference.as_deref()),
        ("2", Some("T-9"))
    );
    assert!(c.get("3").await.unwrap().is_none());
    let err = c.get("x y").await.unwrap_err();
    assert!(
        matches!(err, ClientError::Rejected { status: 400, .. }),
        "{err}"
    );
    let mut seen = Vec::new();
    assert_eq!(
        c.list(|e| {
            seen.push(e.subject);
            Ok(())
        })
        .await
        .unwrap(),
        2
    );
    assert_eq!(seen, vec!["1", "2"]);
    let st = c.status().await.unwrap();
    assert_eq!((st.count, st.digest.clone()), (2, r.store.state().digest));
    let synced = c.sync().await.unwrap();
    assert_eq!(synced.count, 2);
    assert_eq!(c.status().await.unwrap().pending, 0);
    r.stop().await;
}

#[tokio::test]
async fn bad_requests_get_json_errors_and_write_nothing() {
    let r = start(None, None).await;
    let sock = r.socket();
    let (s, b) = raw(&sock, "POST /v1/erasures HTTP/1.1", b"{not json").await;
    assert_eq!(s, 400, "{b}");
    assert!(b.contains("\"error\""), "{b}");
    let (s, b) = raw(
        &sock,
        "POST /v1/erasures HTTP/1.1",
        br#"{"subjects":["1","abc","2"]}"#,
    )
    .await;
    assert_eq!(s, 400);
    assert!(b.contains("abc") && b.contains("nothing was added"), "{b}");
    let (s, _) = raw(&sock, "POST /v1/erasures HTTP/1.1", br#"{"subjects":[]}"#).await;
    assert_eq!(s, 400);
    let (s, _) = raw(
        &sock,
        "POST /v1/erasures HTTP/1.1",
        br#"{"subjects":["1"],"extra":1}"#,
    )
    .await;
    assert_eq!(s, 400);
    let big = format!(
        "{{\"subjects\":[\"1\"],\"reference\":\"{}\"}}",
        "x".repeat(MAX_BODY)
    );
    let (s, b) = raw(&sock, "POST /v1/erasures HTTP/1.1", big.as_bytes()).await;
    assert_eq!(s, 413, "{b}");
    let (s, b) = raw(&sock, "GET /v2/nothing HTTP/1.1", b"").await;
    assert_eq!(s, 404);
    assert!(b.contains("\"error\""));
    let (s, _) = raw(&sock, "DELETE /v1/erasures HTTP/1.1", b"").await;
    assert_eq!(s, 405);
    assert_eq!(r.store.state().count, 0);
    r.stop().await;
}

#[tokio::test]
async fn a_live_socket_is_refused_and_a_stale_one_replaced() {
    let r = start(None, None).await;
    let err = ApiServer::bind(&r.api).await.unwrap_err();
    assert!(err.to_string().contains("already serves"), "{err}");
    let api = r.api.clone();
    let sock = r.socket();
    // Leave a stale socket file behind: bind one with std and drop it.
    r.stop.cancel();
    let Running { dir, task, .. } = r;
    tokio::time::timeout(Duration::from_secs(20), task)
        .await
        .unwrap()
        .unwrap();
    assert!(!sock.exists(), "socket removed on shutdown");
    drop(std::os::unix::net::UnixListener::bind(&sock).unwrap());
    assert!(sock.exists());
    let again = ApiServer::bind(&api).await.unwrap();
    drop(again);
    // A regular file is never removed.
    std::fs::remove_file(&sock).unwrap();
    std::fs::write(&sock, b"keep me").unwrap();
    assert!(
        ApiServer::bind(&api)
            .await
            .unwrap_err()
            .to_string()
            .contains("not a socket")
    );
    assert_eq!(std::fs::read(&sock).unwrap(), b"keep me");
    drop(dir);
}

#[tokio::test]
async fn tcp_needs_the_bearer_token() {
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, "s3cret-token-0123456789\n").unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&token_file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let loose = ApiConfig {
        listen: "tcp:127.0.0.1:0".into(),
        token_file: Some(token_file.clone()),
    };
    assert!(
        ApiServer::bind(&loose)
            .await
            .unwrap_err()
            .to_string()
            .contains("group or others")
    );
    std::fs::set_permissions(&token_file, std::fs::Permissions::from_mode(0o600)).unwrap();
    let r = start(Some("tcp:127.0.0.1:0".into()), Some(token_file.clone())).await;
    let c = ApiClient::from_config(&r.api).unwrap();
    assert_eq!(c.add(&["5".into()], None).await.unwrap().count, 1);
    let wrong = dir.path().join("wrong");
    std::fs::write(&wrong, "not-the-token-xxxxxxxx").unwrap();
    std::fs::set_permissions(&wrong, std::fs::Permissions::from_mode(0o600)).unwrap();
    let bad = ApiClient::from_config(&ApiConfig {
        listen: r.api.listen.clone(),
        token_file: Some(wrong),
    })
    .unwrap();
    let err = bad.add(&["6".into()], None).await.unwrap_err();
    assert!(
        matches!(err, ClientError::Rejected { status: 401, .. }),
        "{err}"
    );
    assert_eq!(r.store.state().count, 1);
    r.stop().await;
}

#[tokio::test]
async fn no_server_is_reported_as_not_running() {
    let dir = tempfile::tempdir().unwrap();
    let api = ApiConfig {
        listen: format!("unix:{}", dir.path().join("none.sock").display()),
        token_file: None,
    };
    assert!(
        ApiClient::from_config(&api)
            .unwrap()
            .probe()
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test]
async fn slow_clients_are_cut_off() {
    let short = Timeouts {
        header: Duration::from_millis(300),
        body: Duration::from_millis(300),
    };
    let r = start_with(None, None, short).await;
    // Headers that never finish: the connection is closed.
    let mut s = tokio::net::UnixStream::connect(r.socket()).await.unwrap();
    s.write_all(b"POST /v1/erasures HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let mut out = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut out)).await;
    assert!(
        read.is_ok(),
        "connection still open after the header timeout"
    );
    // A body that stops halfway: 408 and nothing written.
    let mut s = tokio::net::UnixStream::connect(r.socket()).await.unwrap();
    s.write_all(
        b"POST /v1/erasures HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"subjects\":[\"1\"",
    )
    .await
    .unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut out))
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&out);
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    assert_eq!(r.store.state().count, 0);
    r.stop().await;
}

/// What `r`'s server serves, as a client's config would name it.
fn serves_of(r: &Running) -> Serves {
    Serves {
        path: std::fs::canonicalize(r.dir.path().join("list")).unwrap(),
        subject_type: SubjectType::Bigint,
        storage: Some(format!(
            "file://{}",
            std::fs::canonicalize(r.dir.path().join("repo"))
                .unwrap()
                .display()
        )),
    }
}

#[tokio::test]
async fn the_api_states_what_it_serves_and_refuses_another_lists_client() {
    let r = start(None, None).await;
    let ours = serves_of(&r);
    // The status states the list (canonical path), its type and the storage.
    let (s, b) = raw(&r.socket(), "GET /v1/status HTTP/1.1", b"").await;
    assert_eq!(s, 200, "{b}");
    let v: serde_json::Value = serde_json::from_str(&b).unwrap();
    assert_eq!(v["path"], ours.path.display().to_string(), "{b}");
    assert_eq!(v["subject_type"], "bigint");
    assert_eq!(v["storage"], ours.storage.clone().unwrap().as_str());

    // A client for this list, named through a symlink and `..`: accepted.
    let link = r.dir.path().join("link");
    std::os::unix::fs::symlink(r.dir.path(), &link).unwrap();
    let same = Serves {
        path: canonical_path(&link.join("run/../list")),
        ..ours.clone()
    };
    assert_eq!(same, ours);
    let good = ApiClient::from_config(&r.api).unwrap().expecting(same);
    assert!(good.probe().await.unwrap().is_some());
    assert_eq!(good.add(&["1".into()], None).await.unwrap().added, 1);

    // A client for another list: refused at the probe, and by the server
    // for every request it sends anyway; nothing is written.
    let other = Serves {
        path: r.dir.path().join("other-list"),
        ..ours.clone()
    };
    let bad = ApiClient::from_config(&r.api)
        .unwrap()
        .expecting(other.clone());
    let err = bad.probe().await.unwrap_err();
    let ClientError::Mismatch(m) = &err else {
        panic!("{err}")
    };
    assert_eq!(m.differ, ["erasure.path"]);
    assert_eq!(m.theirs, ours);
    let text = err.to_string();
    for needle in [
        ours.path.display().to_string(),
        other.path.display().to_string(),
        "api.listen".to_string(),
    ] {
        assert!(text.contains(&needle), "{needle} not in {text}");
    }
    let err = bad.add(&["2".into()], None).await.unwrap_err();
    assert!(matches!(err, ClientError::Mismatch(_)), "{err}");
    assert!(matches!(
        bad.get("1").await.unwrap_err(),
        ClientError::Mismatch(_)
    ));
    assert!(matches!(
        bad.sync().await.unwrap_err(),
        ClientError::Mismatch(_)
    ));
    assert!(matches!(
        bad.list(|_| Ok(())).await.unwrap_err(),
        ClientError::Mismatch(_)
    ));
    // Another storage or subject type is named too.
    let moved = ApiClient::from_config(&r.api).unwrap().expecting(Serves {
        storage: Some("s3://bucket/prefix".into()),
        subject_type: SubjectType::Uuid,
        ..ours.clone()
    });
    let ClientError::Mismatch(m) = moved.add(&["3".into()], None).await.unwrap_err() else {
        panic!()
    };
    assert_eq!(m.differ, ["erasure.subject_type", "storage.url"]);
    assert!(m.to_string().contains("restart"), "{m}");
    assert_eq!(r.store.state().count, 1);

    // Raw: the header alone decides; a bad one is a 400; neither writes.
    let expect = other.expect_header();
    let (s, b) = raw(
        &r.socket(),
        &format!("POST /v1/erasures HTTP/1.1\r\nLethe-Expect: {expect}"),
        br#"{"subjects":["4"]}"#,
    )
    .await;
    assert_eq!(s, 409, "{b}");
    let v: serde_json::Value = serde_json::from_str(&b).unwrap();
    assert_eq!(v["path"], ours.path.display().to_string(), "{b}");
    assert!(v["error"].as_str().unwrap().contains("api.listen"), "{b}");
    let (s, b) = raw(
        &r.socket(),
        "POST /v1/erasures HTTP/1.1\r\nLethe-Expect: subject_type=float",
        br#"{"subjects":["4"]}"#,
    )
    .await;
    assert_eq!(s, 400, "{b}");
    let (s, b) = raw(
        &r.socket(),
        &format!(
            "POST /v1/erasures HTTP/1.1\r\nLethe-Expect: {}&future=1",
            ours.expect_header()
        ),
        br#"{"subjects":["4"]}"#,
    )
    .await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(r.store.state().count, 2);
    r.stop().await;
}

/// A server from before `storage` and the header: its status still names
/// the list's path and type, and those are compared.
#[tokio::test]
async fn a_server_older_than_the_identity_is_checked_by_its_status() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("old.sock");
    let listener = tokio::net::UnixListener::bind(&sock).unwrap();
    let list = dir.path().join("theirs");
    std::fs::create_dir(&list).unwrap();
    let body = serde_json::json!({
        "path": list, "subject_type": "bigint", "count": 3, "digest": "d",
        "pending": 0, "last_sync": null,
    })
    .to_string();
    let server = tokio::spawn(async move {
        loop {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut buf = vec![0u8; 4096];
            let _ = s.read(&mut buf).await;
            let reply = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = s.write_all(reply.as_bytes()).await;
        }
    });
    let api = ApiConfig {
        listen: format!("unix:{}", sock.display()),
        token_file: None,
    };
    let serves = |path: PathBuf| Serves {
        path,
        subject_type: SubjectType::Bigint,
        storage: Some("file:///somewhere".into()),
    };
    let ok = ApiClient::from_config(&api)
        .unwrap()
        .expecting(serves(canonical_path(&list)));
    assert_eq!(ok.probe().await.unwrap().unwrap().count, 3);
    let other = ApiClient::from_config(&api)
        .unwrap()
        .expecting(serves(dir.path().join("ours")));
    let err = other.probe().await.unwrap_err();
    assert!(
        matches!(&err, ClientError::Mismatch(m) if m.differ == ["erasure.path"]),
        "{err}"
    );
    assert!(err.to_string().contains("(not stated)"), "{err}");
    server.abort();
}

#[test]
fn canonical_forms() {
    let dir = tempfile::tempdir().unwrap();
    let real = std::fs::canonicalize(dir.path()).unwrap();
    // A list not created yet: its existing ancestor resolved, the rest kept.
    assert_eq!(
        canonical_path(&dir.path().join("a/../b/new/list")),
        real.join("b/new/list")
    );
    assert_eq!(canonical_path(&dir.path().join("x/./y")), real.join("x/y"));
    assert_eq!(
        storage_location(&format!("file://{}/repo/", dir.path().display())),
        format!("file://{}", real.join("repo").display())
    );
    assert_eq!(storage_location("s3://b/p/q/"), "s3://b/p/q");
    assert_eq!(storage_location("s3://b/"), "s3://b");
    assert_eq!(storage_location("s3://b"), "s3://b");
}

#[tokio::test]
async fn binding_leaves_no_temporary_name_behind() {
    let r = start(None, None).await;
    let names: Vec<_> = std::fs::read_dir(r.dir.path().join("run"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["api.sock"]);
    r.stop().await;
}

#[tokio::test]
async fn schedule_routes_flip_the_daemons_switch_report_its_last_leak_check_and_a_plain_server_has_none()
 {
    let r = start(None, None).await;
    let c = ApiClient::from_config(&r.api).unwrap();
    let err = c.set_paused(true).await.unwrap_err();
    assert!(
        matches!(&err, ClientError::Rejected { status: 404, message } if message.contains("runs no scheduler")),
        "{err}"
    );
    r.stop().await;

    let dir = tempfile::tempdir().unwrap();
    let store =
        Arc::new(ErasureStore::open(&dir.path().join("list"), SubjectType::Bigint).unwrap());
    let storage: Arc<dyn Storage> = Arc::new(FsStorage::open(dir.path().join("repo")).unwrap());
    let api = ApiConfig {
        listen: format!("unix:{}", dir.path().join("api.sock").display()),
        token_file: None,
    };
    let switch = crate::pause_switch::PauseSwitch::new();
    let leaks = crate::leak_state::LeakState::default();
    let server = ApiServer::bind(&api)
        .await
        .unwrap()
        .with_pause(switch.clone())
        .with_leaks(leaks.clone());
    let stop = CancellationToken::new();
    let task = tokio::spawn(server.run(Arc::clone(&store), storage, stop.clone()));
    let c = ApiClient::from_config(&api).unwrap();
    let s = c.schedule().await.unwrap();
    assert!(!s.paused && s.last_leak_check.is_none());
    // The daemon's last leak check is in every schedule answer.
    let report = crate::leak_state::LeakReport::new(
        "20260301T000000Z-0001".into(),
        chrono::Utc::now(),
        true,
        vec![crate::leak_state::Leak {
            table: "public.users".into(),
            column: "id".into(),
            rows: 2,
        }],
    );
    leaks.record(report.clone());
    assert_eq!(c.schedule().await.unwrap().last_leak_check, Some(report));
    let p = c.set_paused(true).await.unwrap();
    assert!(p.paused && p.changed && !p.survives_restart && p.paused_since.is_some());
    assert!(switch.paused_since().is_some());
    assert!(!c.set_paused(true).await.unwrap().changed);
    // Erasures are still accepted while paused.
    assert_eq!(c.add(&["7".into()], None).await.unwrap().added, 1);
    let r = c.set_paused(false).await.unwrap();
    assert!(!r.paused && r.changed);
    assert!(switch.paused_since().is_none());
    stop.cancel();
    tokio::time::timeout(Duration::from_secs(20), task)
        .await
        .unwrap()
        .unwrap();
}
