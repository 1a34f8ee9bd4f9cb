//! `lethe erase import` is all or nothing, also when killed: a bulk import is
//! one ingested SST file, so after kill -9 at any instant the list holds
//! either every id of the file (counted, digest exact) or none of them.

use crate::common::{self, Repo, write_repo_config};
use lethe::config::{Config, SubjectType};
use lethe::erasure::{ErasureSet, ErasureStore, MemSet};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const IDS: u64 = 300_000;

fn listed_of(store: &ErasureStore, ids: &[String]) -> usize {
    ids.iter()
        .filter(|i| store.get(i).expect("get").is_some())
        .count()
}

#[test]
fn an_import_killed_at_any_instant_lists_all_of_the_file_or_nothing() {
    let repo = tempfile::tempdir().unwrap();
    let ids: Vec<String> = (0..IDS)
        .map(|i| (7_000_000_000 + i * 11).to_string())
        .collect();
    // Probes across the file: enough to catch a partial import.
    let probes: Vec<String> = ids.iter().step_by(997).cloned().collect();
    let mut outcomes = (0, 0);
    // The first import runs to completion and gives its duration; the
    // others are killed at fractions of it, most of them late, where the
    // write and the journal upload happen.
    let fractions = [
        None,
        Some(0.3),
        Some(0.6),
        Some(0.75),
        Some(0.85),
        Some(0.9),
        Some(0.95),
        Some(1.0),
        Some(1.1),
    ];
    let mut full = Duration::ZERO;
    for (round, fraction) in fractions.into_iter().enumerate() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = write_repo_config(dir.path(), &Repo::File(repo.path()), "");
        // Some of the file listed before: already-listed ids count once.
        let out = common::lethe(&cfg, &["erase", "add", &ids[5], &ids[6]]);
        assert!(out.status.success(), "{out:?}");
        let file = dir.path().join("ids.txt");
        std::fs::write(&file, ids.join("\n")).unwrap();
        let t = Instant::now();
        let mut child = Command::new(common::lethe_bin())
            .arg("--config")
            .arg(&cfg)
            .args(["erase", "import", file.to_str().unwrap()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start lethe erase import");
        let delay = fraction.map(|f| full.mul_f64(f));
        if let Some(d) = delay {
            while t.elapsed() < d {
                if child.try_wait().unwrap().is_some() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(2));
            }
            let _ = child.kill(); // SIGKILL (a no-op once it has exited)
            child.wait().unwrap();
        } else {
            assert!(child.wait().unwrap().success(), "the first import failed");
            full = t.elapsed();
        }

        let c = Config::load(&cfg).unwrap();
        let store = ErasureStore::open(&c.erasure.path, SubjectType::Bigint).expect("reopen");
        let state = store
            .verify_state()
            .expect("count and digest match the entries");
        let (set, loaded) = MemSet::load(&store).unwrap();
        assert_eq!(
            (set.len() as u64, loaded.clone()),
            (state.count, state.clone())
        );
        let listed = listed_of(&store, &probes);
        match state.count {
            2 => {
                assert_eq!(listed, 0, "round {round}: ids listed but not counted");
                outcomes.0 += 1;
            }
            n if n == IDS => {
                assert_eq!(listed, probes.len(), "round {round}");
                outcomes.1 += 1;
            }
            n => panic!("round {round} (killed after {delay:?}): {n} entries, a partial import"),
        }
        // The pending ids are exactly those not yet in the journal.
        let st = store.status().unwrap();
        assert!(st.pending <= st.count, "{st:?}");
    }
    eprintln!(
        "imports killed before the write: {}, complete: {}",
        outcomes.0, outcomes.1
    );

    // The first import completed and uploaded its journal object: a fresh
    // host rebuilds the full list from the shared repository.
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_repo_config(dir.path(), &Repo::File(repo.path()), "");
    let out = common::lethe(&cfg, &["erase", "sync"]);
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(&format!("the list holds {IDS} entries")),
        "{text}"
    );
}

// Files exported from a spreadsheet (issue 15): a UTF-8 byte order mark,
// CRLF line endings, blank lines. Every line is validated as `erase add`
// validates an id; one bad line refuses the whole file.

const BOM: &[u8] = b"\xEF\xBB\xBF";

fn out_text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Runs lethe, asserts its exit code (showing the output otherwise) and
/// returns (stdout, stderr).
fn run(cfg: &std::path::Path, args: &[&str], code: i32) -> (String, String) {
    let o = common::lethe(cfg, args);
    let (out, err) = (out_text(&o.stdout), out_text(&o.stderr));
    assert_eq!(
        o.status.code(),
        Some(code),
        "lethe {args:?}: stdout {out} stderr {err}"
    );
    (out, err)
}

/// `lethe erase import -` with `input` on stdin.
fn import_stdin(cfg: &std::path::Path, input: &[u8], code: i32) -> (String, String) {
    use std::io::Write;
    let mut child = common::lethe_cmd(cfg, &["erase", "import", "-"], &[])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start lethe erase import -");
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(input).unwrap();
    drop(stdin);
    let o = child.wait_with_output().unwrap();
    let (out, err) = (out_text(&o.stdout), out_text(&o.stderr));
    assert_eq!(o.status.code(), Some(code), "stdout {out} stderr {err}");
    (out, err)
}

/// A host whose list holds ids of `subject_type`: (repo, host dir, config).
fn typed_host(subject_type: &str) -> (tempfile::TempDir, tempfile::TempDir, std::path::PathBuf) {
    let repo = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let text = common::repo_config_text(
        dir.path(),
        &Repo::File(repo.path()),
        &format!("{}/postgres", common::pg_base()),
    )
    .replace(
        "[erasure]\n",
        &format!("[erasure]\nsubject_type = \"{subject_type}\"\n"),
    );
    let cfg = common::write_config(dir.path(), &text);
    (repo, dir, cfg)
}

/// The subjects `erase list --json` shows, as stored.
fn listed(cfg: &std::path::Path) -> Vec<String> {
    let (out, _) = run(cfg, &["erase", "list", "--json"], 0);
    let v: Vec<serde_json::Value> = serde_json::from_str(&out).expect("list --json");
    let mut s: Vec<String> = v
        .iter()
        .map(|e| e["subject"].as_str().expect("subject").to_string())
        .collect();
    s.sort();
    s
}

/// `file`: `lines` joined by CRLF, after a BOM.
fn spreadsheet_file(dir: &std::path::Path, lines: &[&[u8]]) -> std::path::PathBuf {
    let mut bytes = BOM.to_vec();
    for l in lines {
        bytes.extend_from_slice(l);
        bytes.extend_from_slice(b"\r\n");
    }
    let file = dir.join("export.csv");
    std::fs::write(&file, bytes).unwrap();
    file
}

#[test]
fn a_spreadsheet_export_with_bom_and_crlf_lists_every_bigint_id() {
    let (_repo, dir, cfg) = typed_host("bigint");
    let file = spreadsheet_file(dir.path(), &[b"1001", b"1002", b"", b" \t ", b"1003"]);
    let (out, err) = run(&cfg, &["erase", "import", file.to_str().unwrap()], 0);
    assert!(
        out.contains("imported 3 ids") && out.contains("added 3, already listed 0"),
        "{out} {err}"
    );
    for id in ["1001", "1002", "1003"] {
        run(&cfg, &["erase", "check", id], 0);
    }
    assert_eq!(listed(&cfg), ["1001", "1002", "1003"]);
}

#[test]
fn an_invalid_line_refuses_the_whole_import_and_names_line_and_value() {
    let (_repo, dir, cfg) = typed_host("bigint");
    let file = spreadsheet_file(dir.path(), &[b"1001", b"1002", b"12x", b"1004"]);
    let (out, err) = run(&cfg, &["erase", "import", file.to_str().unwrap()], 2);
    assert!(
        err.contains("export.csv")
            && err.contains("line 3")
            && err.contains("\"12x\"")
            && err.contains("nothing was imported")
            && err.contains("fix or remove"),
        "{err}"
    );
    assert!(!err.contains("line 1") && !err.contains("line 4"), "{err}");
    assert!(!out.contains("added"), "{out}");
    run(&cfg, &["erase", "check", "1001"], 1);
    assert!(listed(&cfg).is_empty());
}

#[test]
fn a_spreadsheet_export_of_text_ids_lists_them_without_bom_or_cr() {
    let (_repo, dir, cfg) = typed_host("text");
    let file = spreadsheet_file(
        dir.path(),
        &[b"alice@example.com", b"", b"   ", b"bob", "Zoë".as_bytes()],
    );
    let (out, err) = run(&cfg, &["erase", "import", file.to_str().unwrap()], 0);
    assert!(out.contains("added 3, already listed 0"), "{out} {err}");
    assert!(!err.contains("warning"), "{err}");
    for id in ["alice@example.com", "bob", "Zoë"] {
        run(&cfg, &["erase", "check", id], 0);
    }
    assert_eq!(listed(&cfg), ["Zoë", "alice@example.com", "bob"]);
}

#[test]
fn text_ids_keep_surrounding_whitespace_as_erase_add_does_with_a_warning() {
    let (_repo, dir, cfg) = typed_host("text");
    let file = spreadsheet_file(dir.path(), &[b"carol", b" dave "]);
    let (out, err) = run(&cfg, &["erase", "import", file.to_str().unwrap()], 0);
    assert!(out.contains("added 2"), "{out}");
    assert!(
        err.contains("warning") && err.contains("line 2") && err.contains("\" dave \""),
        "{err}"
    );
    run(&cfg, &["erase", "check", " dave "], 0);
    run(&cfg, &["erase", "check", "dave"], 1);
    // `erase add` keeps the same bytes: already listed.
    let (out, _) = run(&cfg, &["erase", "add", " dave "], 0);
    assert!(out.contains("added 0, already listed 1"), "{out}");
}

#[test]
fn a_bom_nul_or_invalid_utf8_inside_a_text_import_is_a_line_error() {
    let (_repo, dir, cfg) = typed_host("text");
    let cases: [(&[u8], &str); 5] = [
        (b"ok\r\nb\xEF\xBB\xBFad\r\n", "U+FEFF"),
        (b"ok\r\n\xEF\xBB\xBFbad\r\n", "U+FEFF"),
        (b"ok\r\nb\0ad\r\n", "NUL"),
        (b"ok\r\nb\xFFad\r\n", "UTF-8"),
        (b"ok\r\nb\rad\r\n", "line break"),
    ];
    let file = dir.path().join("ids.txt");
    for (bytes, why) in cases {
        std::fs::write(&file, bytes).unwrap();
        let (_, err) = run(&cfg, &["erase", "import", file.to_str().unwrap()], 2);
        assert!(
            err.contains("ids.txt: line 2")
                && err.contains(why)
                && err.contains("nothing was imported"),
            "{bytes:?}: {err}"
        );
        assert!(listed(&cfg).is_empty(), "{bytes:?}");
    }
    // The same ids are refused by `erase add`.
    let (_, err) = run(&cfg, &["erase", "add", "ok", "\u{FEFF}bad"], 2);
    assert!(err.contains("U+FEFF"), "{err}");
    assert!(listed(&cfg).is_empty());
}

#[test]
fn a_utf16_export_is_refused_with_a_hint() {
    let (_repo, dir, cfg) = typed_host("bigint");
    let file = dir.path().join("ids.txt");
    let mut bytes = vec![0xFF, 0xFE];
    bytes.extend("1001\r\n1002\r\n".encode_utf16().flat_map(u16::to_le_bytes));
    std::fs::write(&file, bytes).unwrap();
    let (_, err) = run(&cfg, &["erase", "import", file.to_str().unwrap()], 2);
    assert!(
        err.contains("UTF-16") && err.contains("UTF-8") && err.contains("nothing was imported"),
        "{err}"
    );
    assert!(listed(&cfg).is_empty());
}

#[test]
fn stdin_imports_accept_bom_and_crlf_and_name_stdin_in_errors() {
    let (_repo, _dir, cfg) = typed_host("bigint");
    let (out, err) = import_stdin(&cfg, b"\xEF\xBB\xBF2001\r\n2002\r\n\r\n2003\r\n", 0);
    assert!(
        out.contains("imported 3 ids from stdin") && out.contains("added 3"),
        "{out} {err}"
    );
    for id in ["2001", "2002", "2003"] {
        run(&cfg, &["erase", "check", id], 0);
    }
    let (_, err) = import_stdin(&cfg, b"2004\r\n\r\n20x5\r\n", 2);
    assert!(
        err.contains("stdin: line 3")
            && err.contains("\"20x5\"")
            && err.contains("nothing was imported"),
        "{err}"
    );
    run(&cfg, &["erase", "check", "2004"], 1);
    assert_eq!(listed(&cfg), ["2001", "2002", "2003"]);
}

/// Through the daemon's API the same rules hold: the CLI validates the file,
/// and the API itself refuses a text id carrying a BOM.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn through_the_api_a_text_export_imports_clean_and_a_bom_id_is_refused() {
    use lethe::erasure::client::{ApiClient, ClientError};
    let (_repo, dir, cfg) = typed_host("text");
    let log = std::fs::File::create(dir.path().join("serve.log")).unwrap();
    let mut server = common::lethe_cmd(&cfg, &["erase", "serve"], &[])
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("start lethe erase serve");
    let client = ApiClient::from_config(&Config::load(&cfg).unwrap().api).unwrap();
    let mut up = false;
    for _ in 0..300 {
        if let Ok(Some(_)) = client.probe().await {
            up = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        up,
        "lethe erase serve did not answer: {}",
        std::fs::read_to_string(dir.path().join("serve.log")).unwrap_or_default()
    );

    let file = spreadsheet_file(dir.path(), &[b"erin", b"", b"frank"]);
    let c = cfg.clone();
    let f = file.clone();
    let (out, err) =
        tokio::task::spawn_blocking(move || run(&c, &["erase", "import", f.to_str().unwrap()], 0))
            .await
            .unwrap();
    assert!(out.contains("added 2, already listed 0"), "{out} {err}");
    assert!(client.get("erin").await.unwrap().is_some());
    assert!(client.get("frank").await.unwrap().is_some());

    let bad = client
        .add(&["ok".to_string(), "\u{FEFF}erin".to_string()], None)
        .await;
    match bad {
        Err(ClientError::Rejected {
            status: 400,
            message,
        }) => {
            assert!(message.contains("U+FEFF"), "{message}")
        }
        other => panic!("a BOM id was not refused: {other:?}"),
    }
    assert!(client.get("ok").await.unwrap().is_none());

    // SAFETY: signalling our own child by its pid.
    unsafe { libc::kill(server.id() as i32, libc::SIGTERM) };
    server.wait().unwrap();
}
