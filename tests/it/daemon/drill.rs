//! Restore drills (`lethe drill`, `[drill] every`) and the metrics endpoint
//! (`metrics.listen`), against the test PostgreSQL and a real daemon.

use super::rig::*;
use crate::common::{LetheCli, TestDb, psql};
use serde_json::Value;
use std::time::Duration;

const SCHEMA: &str = "CREATE TABLE users (id bigint PRIMARY KEY, name text NOT NULL); \
    CREATE TABLE orders (id bigint PRIMARY KEY, user_id bigint NOT NULL REFERENCES users(id) ON DELETE CASCADE); \
    INSERT INTO users SELECT g, 'user ' || g FROM generate_series(1, 40) g; \
    INSERT INTO orders SELECT g, 1 + g % 40 FROM generate_series(1, 120) g;";

fn scratch_name() -> String {
    format!("lethe_drill_{:08x}", rand::random::<u32>())
}

fn exists(db: &str) -> bool {
    psql(
        "postgres",
        &format!("SELECT count(*) FROM pg_database WHERE datname = '{db}'"),
    )
    .trim()
        == "1"
}

/// A rig with a snapshot, user 7 erased, and a `[drill]` section.
fn drilled(tag: &str, drill: &str) -> Rig {
    let s = Rig::new(tag, SCHEMA);
    let mut text = std::fs::read_to_string(&s.cfg).expect("config");
    text.push_str(&format!("\n[drill]\n{drill}\n"));
    std::fs::write(&s.cfg, text).expect("config");
    s.snapshot();
    let o = s.run(&["erase", "add", "7"]);
    assert!(o.status.success(), "{}", text_of(&o.stderr));
    s
}

fn text_of(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn events(stderr: &[u8], name: &str) -> Vec<Value> {
    text_of(stderr)
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["event"] == name)
        .collect()
}

/// `lethe drill` must fail (exit 1) at `step`, its error saying `says`;
/// returns the `drill.failed` event.
fn fails_at(s: &Rig, step: &str, says: &str) -> Value {
    let o = s.run(&["drill"]);
    assert_eq!(o.status.code(), Some(1), "{}", text_of(&o.stderr));
    let failed = events(&o.stderr, "drill.failed")
        .into_iter()
        .next()
        .unwrap_or_else(|| panic!("no drill.failed: {}", text_of(&o.stderr)));
    assert_eq!(failed["step"], step, "{failed}");
    assert!(
        failed["error"].as_str().is_some_and(|e| e.contains(says)),
        "{failed}"
    );
    failed
}

fn target(db: &str) -> String {
    format!("{}/{db}", crate::common::pg_base())
}

#[test]
fn a_drill_by_hand_restores_checks_and_drops_its_scratch_database() {
    let db = scratch_name();
    let s = drilled(
        "drill_hand",
        &format!("target = \"{}\"\nallow_same_server = true", target(&db)),
    );
    let o = s.run(&["drill", "--json"]);
    assert_eq!(o.status.code(), Some(0), "{}", text_of(&o.stderr));
    let r: Value = serde_json::from_slice(&o.stdout).expect("json report");
    assert_eq!(r["tables"], 2, "{r}");
    // User 7 and its three orders (7, 47, 87).
    assert_eq!(r["dropped"], 4, "{r}");
    assert_eq!(r["rows"], 40 + 120 - 4, "{r}");
    assert_eq!(r["database"], db.as_str());
    let secs = r["seconds"].as_f64().expect("seconds");
    assert!(secs > 0.0 && secs < 300.0, "{r}");
    assert!(!exists(&db), "the scratch database was left behind");
    let done = &events(&o.stderr, "drill.completed")[0];
    assert_eq!(done["dropped"], 4, "{done}");
    assert_eq!(events(&o.stderr, "drill.started").len(), 1);
    // Evidence: a drill record, and the chain holds.
    let o = s.run(&["evidence", "list", "--json"]);
    let recs: Vec<Value> = text_of(&o.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("record"))
        .collect();
    let drill = recs
        .iter()
        .find(|r| r["kind"] == "drill")
        .unwrap_or_else(|| panic!("no drill record: {recs:?}"));
    assert_eq!(drill["action"], "completed");
    assert_eq!(drill["counts"]["rows_dropped"], 4, "{drill}");
    assert_eq!(drill["erasure_list"]["count"], 1, "{drill}");
    assert!(s.run(&["evidence", "verify"]).status.success());
    // `lethe status` shows it.
    let st: Value = serde_json::from_slice(&s.run(&["status", "--json"]).stdout).expect("status");
    assert_eq!(st["last_drill"]["outcome"], "completed", "{st}");
    assert!(
        st["last_drill"]["seconds"]
            .as_f64()
            .is_some_and(|x| x > 0.0),
        "{st}"
    );
}

/// `lethe check --json`'s `drill_target` piece.
fn checked(s: &Rig) -> Value {
    let o = s.run(&["check", "--json"]);
    text_of(&o.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|p| p["name"] == "drill_target")
        .unwrap_or_else(|| panic!("no drill_target piece: {}", text_of(&o.stdout)))
}

#[test]
fn a_target_on_the_source_server_is_refused_unless_allowed() {
    let db = scratch_name();
    let s = drilled("drill_same", &format!("target = \"{}\"", target(&db)));
    // `lethe check` says so before any drill runs.
    let piece = checked(&s);
    assert_eq!(piece["ok"], false, "{piece}");
    assert!(
        piece["detail"]
            .as_str()
            .is_some_and(|d| d.contains("allow_same_server")),
        "{piece}"
    );
    fails_at(&s, "target", "allow_same_server");
    assert!(!exists(&db));
    let text = std::fs::read_to_string(&s.cfg).expect("config");
    std::fs::write(
        &s.cfg,
        text.replace("\n[drill]\n", "\n[drill]\nallow_same_server = true\n"),
    )
    .expect("config");
    let piece = checked(&s);
    assert_eq!(piece["ok"], true, "{piece}");
    assert!(!exists(&db), "check created the database");
}

#[test]
fn an_existing_unmarked_database_is_refused_and_left_untouched() {
    let keep = TestDb::create("drill_victim");
    keep.sql("CREATE TABLE precious (x int); INSERT INTO precious VALUES (42);");
    let s = drilled(
        "drill_unmarked",
        &format!(
            "target = \"{}\"\nallow_same_server = true",
            target(&keep.name)
        ),
    );
    fails_at(&s, "target", "was not created by a lethe drill");
    assert_eq!(checked(&s)["ok"], false);
    assert_eq!(keep.sql("SELECT x FROM precious").trim(), "42");
    assert_eq!(
        psql(
            "postgres",
            &format!(
                "SELECT coalesce(shobj_description(oid, 'pg_database'), '(none)') FROM pg_database WHERE datname = '{}'",
                keep.name
            )
        )
        .trim(),
        "(none)"
    );
    // And the source database itself, even when the server is allowed.
    let src = s.manifest(&s.listed()[0]).database;
    let mut text = std::fs::read_to_string(&s.cfg).expect("config");
    text = text.replace(&keep.name, &src);
    std::fs::write(&s.cfg, text).expect("config");
    fails_at(&s, "target", "source database");
}

#[test]
fn a_damaged_object_fails_the_drill_naming_it_and_the_scratch_database_goes() {
    let db = scratch_name();
    let s = drilled(
        "drill_damaged",
        &format!("target = \"{}\"\nallow_same_server = true", target(&db)),
    );
    // Flip a byte in the middle of the orders table's data object.
    let mut objects: Vec<std::path::PathBuf> = Vec::new();
    for e in walkdir(&s.repo.join("snapshots")) {
        let name = e
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("")
            .to_string();
        if name.contains("orders") && !name.ends_with(".json") {
            objects.push(e);
        }
    }
    assert!(!objects.is_empty(), "no orders object in the repository");
    let mut bytes = std::fs::read(&objects[0]).expect("read");
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x55;
    std::fs::write(&objects[0], bytes).expect("write");
    let name = objects[0].file_name().unwrap().to_str().unwrap();
    fails_at(&s, "restore", name);
    assert!(!exists(&db), "the scratch database was left behind");
    let o = s.run(&["evidence", "list", "--json"]);
    assert!(
        text_of(&o.stdout).contains("\"kind\":\"drill\",\"action\":\"failed\""),
        "{}",
        text_of(&o.stdout)
    );
    // `lethe status` names the failed drill as a problem.
    let st: Value = serde_json::from_slice(&s.run(&["status", "--json"]).stdout).expect("status");
    assert_eq!(st["last_drill"]["outcome"], "failed", "{st}");
    assert_eq!(st["last_drill"]["step"], "restore", "{st}");
    assert!(
        st["problems"].as_array().is_some_and(|p| p
            .iter()
            .any(|x| x.as_str().is_some_and(|x| x.contains("drill")))),
        "{st}"
    );
}

fn walkdir(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out
}

/// The free port the OS gives for a moment.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

/// `GET /metrics` with curl (a real HTTP client): the content type and body.
fn scrape(port: u16) -> (String, String) {
    let out = std::process::Command::new("curl")
        .args([
            "-sS",
            "--fail",
            "--max-time",
            "10",
            "-w",
            "\n%{content_type}",
            &format!("http://127.0.0.1:{port}/metrics"),
        ])
        .output()
        .expect("curl runs");
    assert!(out.status.success(), "curl: {}", text_of(&out.stderr));
    let text = text_of(&out.stdout);
    let (body, ct) = text.rsplit_once('\n').expect("content type line");
    (ct.to_string(), body.to_string())
}

fn parsed(body: &str) -> prometheus_parse::Scrape {
    let lines = body.lines().map(|l| Ok(l.to_string()));
    prometheus_parse::Scrape::parse(lines).expect("the exposition parses")
}

fn sample(s: &prometheus_parse::Scrape, name: &str) -> Option<f64> {
    s.samples
        .iter()
        .find(|x| x.metric == name)
        .and_then(|x| match x.value {
            prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Untyped(v) => Some(v),
            _ => None,
        })
}

/// The daemon drills on its schedule and serves metrics: a drill
/// completes with a sane RTO and leaves no database; `/metrics`, scraped
/// with a real HTTP client and parsed as Prometheus text, matches the
/// events (the snapshot's bytes and duration, the drill's RTO).
#[test]
fn the_daemon_drills_on_schedule_and_its_metrics_match_the_events() {
    let db = scratch_name();
    let port = free_port();
    let s = drilled(
        "drill_daemon",
        &format!(
            "every = \"5s\"\ntarget = \"{}\"\nallow_same_server = true\n\n[metrics]\nlisten = \"127.0.0.1:{port}\"",
            target(&db)
        ),
    );
    daemon_config(&s, "every = \"24h\"");
    let mut d = start(&s, &[]);
    d.wait_for("daemon.ready", 1, Duration::from_secs(60));
    d.wait_for("metrics.listening", 1, Duration::from_secs(10));
    // One snapshot by this daemon (SIGUSR1: now), so its metrics have one
    // event to match; scraped while it runs, and after.
    d.signal(libc::SIGUSR1);
    d.wait_for("snapshot.started", 1, Duration::from_secs(60));
    let (ct, during) = scrape(port);
    assert!(ct.starts_with("application/openmetrics-text"), "{ct}");
    let m = parsed(&during);
    assert_eq!(sample(&m, "lethe_build_info"), Some(1.0), "{during}");
    d.wait_for("snapshot.completed", 1, Duration::from_secs(120));
    d.wait_for("drill.completed", 1, Duration::from_secs(180));
    let (_, after) = scrape(port);
    let m = parsed(&after);
    let snap = d.first("snapshot.completed");
    let drill = d.first("drill.completed");
    let rto = drill["seconds"].as_f64().expect("seconds");
    assert!(rto > 0.0 && rto < 180.0, "{drill}");
    assert!(!exists(&db), "the scratch database was left behind");
    // The gauges hold the last event's values: compare with the last one.
    let last = |name: &str| {
        d.events()
            .into_iter()
            .rev()
            .find(|e| e["event"] == name)
            .expect("event")
    };
    let snap_last = last("snapshot.completed");
    assert_eq!(
        sample(&m, "lethe_snapshot_last_stored_bytes"),
        snap_last["bytes_stored"].as_f64(),
        "{after}"
    );
    assert_eq!(
        sample(&m, "lethe_snapshot_last_rows"),
        snap_last["rows"].as_f64(),
        "{after}"
    );
    assert!(snap["seconds"].as_f64().is_some());
    // Drills go on every 5 s: the gauge holds one of theirs.
    let rtos: Vec<f64> = d
        .events()
        .into_iter()
        .filter(|e| e["event"] == "drill.completed")
        .filter_map(|e| e["seconds"].as_f64())
        .collect();
    let gauge = sample(&m, "lethe_drill_last_rto_seconds").expect("drill RTO gauge");
    // One value, printed two ways: the exposition (prometheus-client's
    // shortest-digits printer) and the JSON log, read back by serde_json,
    // whose default float parsing may land one ulp off. Equal to 1e-12.
    assert!(
        rtos.iter()
            .any(|r| (r - gauge).abs() <= 1e-12 * r.abs().max(1.0)),
        "{gauge} not among {rtos:?}: {after}"
    );
    assert!(
        sample(&m, "lethe_drill_last_success_timestamp_seconds").is_some_and(|t| t > 1.7e9),
        "{after}"
    );
    assert!(
        sample(&m, "lethe_snapshot_last_success_timestamp_seconds").is_some_and(|t| t > 1.7e9),
        "{after}"
    );
    assert_eq!(
        sample(&m, "lethe_erasure_list_entries"),
        Some(1.0),
        "{after}"
    );
    // The drill's evidence record follows its event.
    let end = std::time::Instant::now() + Duration::from_secs(30);
    while !d
        .events()
        .iter()
        .any(|e| e["event"] == "evidence.appended" && e["kind"] == "drill")
    {
        assert!(
            std::time::Instant::now() < end,
            "no drill evidence: {}",
            d.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    d.signal(libc::SIGTERM);
    let (code, _) = d.wait_exit(Duration::from_secs(30));
    assert_eq!(code, Some(0), "{}", d.log());
    check_log_lines(&d, &[]);
    let o = s.run(&["evidence", "list", "--json"]);
    assert!(
        text_of(&o.stdout).contains("\"kind\":\"drill\",\"action\":\"completed\""),
        "{}",
        text_of(&o.stdout)
    );
}

/// `[metrics]` and `[drill]` change only at restart: a SIGHUP that changes
/// them says so (`daemon.reload_partial`), and /metrics stays where it was.
#[test]
fn a_reload_keeps_the_running_metrics_and_drill_settings_and_says_so() {
    let (old, new) = (free_port(), free_port());
    let s = Rig::new("drill_reload", SCHEMA);
    let mut text = std::fs::read_to_string(&s.cfg).expect("config");
    text.push_str(&format!("\n[metrics]\nlisten = \"127.0.0.1:{old}\"\n"));
    std::fs::write(&s.cfg, &text).expect("config");
    daemon_config(&s, "every = \"24h\"");
    let mut d = start(&s, &[]);
    d.wait_for("metrics.listening", 1, Duration::from_secs(60));
    d.wait_for("daemon.ready", 1, Duration::from_secs(60));
    let text = std::fs::read_to_string(&s.cfg)
        .expect("config")
        .replace(&format!("127.0.0.1:{old}"), &format!("127.0.0.1:{new}"))
        + &format!(
            "\n[drill]\nevery = \"24h\"\ntarget = \"{}\"\n",
            target(&scratch_name())
        );
    std::fs::write(&s.cfg, text).expect("config");
    d.signal(libc::SIGHUP);
    d.wait_for("daemon.reload_partial", 1, Duration::from_secs(30));
    let partial = d.first("daemon.reload_partial");
    assert_eq!(partial["sections"], "drill,metrics", "{partial}");
    let (_, body) = scrape(old);
    assert!(body.contains("lethe_build_info"), "{body}");
    d.signal(libc::SIGTERM);
    let (code, _) = d.wait_exit(Duration::from_secs(30));
    assert_eq!(code, Some(0), "{}", d.log());
    check_log_lines(&d, &[]);
}
