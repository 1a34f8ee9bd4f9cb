//! The local erasure API (`lethe erase serve`, what the daemon runs) under
//! abuse and load: malformed JSON, huge bodies, garbage, slow clients,
//! callers without the socket's permissions or the TCP token get a 4xx or
//! a refusal, nothing is written, and the server keeps serving. Then 100
//! concurrent clients add erasures for `LETHE_LOAD_SECS` (default 20 s):
//! throughput and latency percentiles are printed, and no acknowledged id
//! may be missing afterwards.

use crate::common::LetheCli;
use crate::rig::{Rig, api_client, rt, serve, text};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Kills the server when the test ends, however it ends.
struct Server(std::process::Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn sock(rig: &Rig) -> PathBuf {
    rig.dir.path().join("api.sock")
}

/// Sends raw bytes on a fresh connection and reads the reply until the
/// server closes it (or 15 s pass): `(status code or 0, whole reply)`.
async fn raw(sock: &Path, request: &[u8]) -> (u16, String) {
    let mut s = tokio::net::UnixStream::connect(sock)
        .await
        .expect("connect");
    let _ = s.write_all(request).await;
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(15), s.read_to_end(&mut buf)).await;
    let reply = String::from_utf8_lossy(&buf).to_string();
    let code = reply
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (code, reply)
}

fn post(body: &[u8], content_type: &str) -> Vec<u8> {
    let mut r = format!(
        "POST /v1/erasures HTTP/1.1\r\nHost: lethe\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    r.extend_from_slice(body);
    r
}

async fn count(client: &lethe::erasure::client::ApiClient) -> u64 {
    client.status().await.expect("status").count
}

#[test]
fn hostile_requests_are_refused_and_write_nothing() {
    let rig = Rig::file("apiabuse", "SELECT 1", "");
    let rt = rt();
    let _server = Server(serve(&rig, &rt));
    let client = api_client(&rig);
    let sock = sock(&rig);
    rt.block_on(async {
        client.add(&["1".to_string()], None).await.expect("a valid add");
        let base = count(&client).await;
        let json = "application/json";
        let huge = {
            let mut b = b"{\"subjects\": [".to_vec();
            while b.len() < 9 << 20 {
                b.extend_from_slice(b"\"123456789\",");
            }
            b.extend_from_slice(b"\"1\"]}");
            b
        };
        let cases: Vec<(&str, Vec<u8>)> = vec![
            ("truncated JSON", post(b"{\"subjects\": [\"5\"", json)),
            ("not JSON", post(b"subjects=5", json)),
            ("wrong type", post(b"{\"subjects\": 5}", json)),
            ("nested garbage", post(b"{\"subjects\": [[\"5\"]]}", json)),
            ("null id", post(b"{\"subjects\": [null]}", json)),
            ("invalid bigint id", post(b"{\"subjects\": [\"5\", \"five\"]}", json)),
            ("out-of-range id", post(b"{\"subjects\": [\"99999999999999999999\"]}", json)),
            ("empty list", post(b"{\"subjects\": []}", json)),
            ("deep nesting", post(&[b'['; 100_000], json)),
            ("invalid UTF-8", post(b"{\"subjects\": [\"\xff\xfe\"]}", json)),
            ("huge body (9 MiB)", post(&huge, json)),
            ("lying Content-Length", b"POST /v1/erasures HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999999999\r\n\r\n{}".to_vec()),
            ("binary garbage", (0..4096u32).map(|i| (i * 7919 % 251) as u8).collect()),
            ("traversal in path", b"GET /v1/erasures/..%2F..%2Fetc%2Fpasswd HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".to_vec()),
            ("unknown route", b"DELETE /v1/erasures HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".to_vec()),
        ];
        let mut refused = 0;
        for (what, req) in &cases {
            let (code, reply) = raw(&sock, req).await;
            assert!(code == 0 || (400..500).contains(&code), "{what}: expected a 4xx or a closed connection, got {code}: {reply}");
            assert_eq!(count(&client).await, base, "{what}: the list changed");
            refused += 1;
        }
        // Still serving.
        client.add(&["2".to_string()], None).await.expect("add after abuse");
        assert_eq!(count(&client).await, base + 1);
        eprintln!("api abuse: {refused} hostile requests refused (4xx or closed), list unchanged, server still serving");

        // Slow clients: 64 connections that never finish their headers.
        let mut slow = Vec::new();
        for _ in 0..64 {
            let mut s = tokio::net::UnixStream::connect(&sock).await.expect("connect");
            s.write_all(b"POST /v1/erasures HTTP/1.1\r\nHost: x\r\nContent-Le").await.expect("partial");
            slow.push(s);
        }
        // A trickling body that is never completed.
        let mut trickle = tokio::net::UnixStream::connect(&sock).await.expect("connect");
        trickle
            .write_all(b"POST /v1/erasures HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"sub")
            .await
            .expect("partial body");
        client.add(&["3".to_string()], None).await.expect("add while slow clients hang");
        // The server cuts them off (10 s for headers, 30 s for a body).
        let t0 = Instant::now();
        let mut closed = 0;
        for mut s in slow {
            let mut b = [0u8; 256];
            if let Ok(Ok(_)) = tokio::time::timeout(Duration::from_secs(40), s.read(&mut b)).await {
                closed += 1;
            }
        }
        let mut b = [0u8; 256];
        let trickle_closed = matches!(tokio::time::timeout(Duration::from_secs(40), trickle.read(&mut b)).await, Ok(Ok(_)));
        assert_eq!(closed, 64, "slow header senders still connected after {:?}", t0.elapsed());
        assert!(trickle_closed, "a never-finished body kept its connection");
        assert_eq!(count(&client).await, base + 2, "only the two valid adds were written");
        eprintln!("api abuse: 64 slow-header clients and 1 stalled body cut off by the server; valid adds served meanwhile");
    });
}

#[test]
fn callers_without_permission_or_token_are_refused() {
    let rig = Rig::file("apiauth", "SELECT 1", "");
    let rt = rt();
    {
        let _server = Server(serve(&rig, &rt));
        let sock = sock(&rig);
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&sock)
            .expect("socket")
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o660, "socket mode");
        // Let `nobody` reach the socket's directory, so only the socket's own mode decides.
        std::fs::set_permissions(rig.dir.path(), std::fs::Permissions::from_mode(0o711))
            .expect("chmod dir");
        let out = std::process::Command::new("python3")
            .args(["-c", "import socket,sys; s=socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); s.sendall(b'GET /v1/status HTTP/1.0\\r\\n\\r\\n'); print(s.recv(100))"])
            .arg(&sock)
            .uid(65534)
            .gid(65534)
            .output()
            .expect("python3 runs");
        let err = text(&out.stderr);
        assert!(
            !out.status.success() && err.contains("Permission denied"),
            "nobody reached the API: {}{err}",
            text(&out.stdout)
        );
        std::fs::set_permissions(rig.dir.path(), std::fs::Permissions::from_mode(0o700))
            .expect("chmod dir");
    }

    // TCP on loopback needs the bearer token.
    let token = rig.dir.path().join("api.token");
    std::fs::write(&token, "correct-horse-battery-staple-42\n").expect("token");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("free port")
        .local_addr()
        .expect("addr")
        .port();
    rig.edit_config(
        &format!("listen = \"unix:{}\"", sock(&rig).display()),
        &format!(
            "listen = \"tcp:127.0.0.1:{port}\"\ntoken_file = \"{}\"",
            token.display()
        ),
    );
    let _server = Server(serve(&rig, &rt));
    let client = api_client(&rig);
    rt.block_on(async {
        let base = count(&client).await;
        for (what, auth) in [
            ("no token", String::new()),
            ("wrong token", "Authorization: Bearer correct-horse-battery-staple-43\r\n".to_string()),
            ("token prefix", "Authorization: Bearer correct-horse\r\n".to_string()),
            ("basic auth", "Authorization: Basic Y29ycmVjdC1ob3JzZQ==\r\n".to_string()),
        ] {
            let body = b"{\"subjects\": [\"77\"]}";
            let req = format!(
                "POST /v1/erasures HTTP/1.1\r\nHost: x\r\n{auth}Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.expect("connect");
            s.write_all(req.as_bytes()).await.expect("write");
            s.write_all(body).await.expect("write");
            let mut buf = Vec::new();
            let _ = tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut buf)).await;
            let reply = String::from_utf8_lossy(&buf);
            assert!(reply.starts_with("HTTP/1.1 401"), "{what}: {reply}");
            assert_eq!(count(&client).await, base, "{what}: the list changed");
        }
        client.add(&["77".to_string()], None).await.expect("the token holder adds");
        assert_eq!(count(&client).await, base + 1);
    });
    eprintln!(
        "api auth: nobody refused by the 0660 socket; 4 bad TCP credentials got 401, list unchanged"
    );
}

#[test]
fn a_hundred_concurrent_clients_lose_nothing() {
    let secs = crate::common::env_u64("LETHE_LOAD_SECS", 20);
    let clients = crate::common::env_u64("LETHE_LOAD_CLIENTS", 100);
    let rig = Rig::file("apiload", "SELECT 1", "");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("rt");
    let server = Server(serve(&rig, &rt));
    let client = api_client(&rig);
    let (acked, mut lat, errors) = rt.block_on(async {
        let end = Instant::now() + Duration::from_secs(secs);
        let mut tasks = Vec::new();
        for c in 0..clients {
            let client = client.clone();
            tasks.push(tokio::spawn(async move {
                let (mut ids, mut lat, mut errors) = (Vec::new(), Vec::new(), 0u64);
                let mut i = 0u64;
                while Instant::now() < end {
                    let id = (10_000_000 + c * 10_000_000 + i).to_string();
                    i += 1;
                    let t = Instant::now();
                    match client.add(std::slice::from_ref(&id), Some("load")).await {
                        Ok(_) => {
                            lat.push(t.elapsed());
                            ids.push(id);
                        }
                        Err(_) => errors += 1,
                    }
                }
                (ids, lat, errors)
            }));
        }
        let (mut ids, mut lat, mut errors) = (Vec::new(), Vec::new(), 0);
        for t in tasks {
            let (i, l, e) = t.await.expect("client task");
            ids.extend(i);
            lat.extend(l);
            errors += e;
        }
        (ids, lat, errors)
    });
    drop(server);
    lat.sort();
    let pct = |p: f64| {
        lat.get(((lat.len() as f64 * p) as usize).min(lat.len().saturating_sub(1)))
            .copied()
            .unwrap_or_default()
    };
    let out = rig.run(&["erase", "list", "--json"]);
    assert!(out.status.success(), "erase list: {}", text(&out.stderr));
    let entries: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).expect("list json");
    let listed: std::collections::HashSet<&str> = entries
        .iter()
        .filter_map(|e| e["subject"].as_str())
        .collect();
    let lost = acked
        .iter()
        .filter(|id| !listed.contains(id.as_str()))
        .count();
    eprintln!(
        "api load: {clients} clients x {secs} s: {} acknowledged adds ({:.0}/s), {errors} errors, latency p50 {:?} p99 {:?} max {:?}; {lost} lost",
        acked.len(),
        acked.len() as f64 / secs as f64,
        pct(0.50),
        pct(0.99),
        lat.last().copied().unwrap_or_default()
    );
    assert_eq!(lost, 0, "acknowledged ids missing from the list");
    assert_eq!(errors, 0, "requests failed under load");
    assert!(!acked.is_empty());
}
