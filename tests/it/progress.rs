//! The progress displays of `lethe snapshot` and `lethe restore`: on a real
//! terminal (a pseudo-terminal from script(1)) the restore's shows the
//! percentage of the snapshot read, the ETA and the table being read, and
//! log lines never land inside it; on a pipe there are no progress bytes at
//! all.

use crate::common::{LetheCli, TestDb, lethe_bin};
use crate::rig::{Rig, SCHEMA, filler, text};

/// The visible text of each line of a terminal's output: what follows the
/// line's last carriage return (a redraw starts over there; the terminal's
/// own `\r` before each `\n` aside), without escape sequences.
fn visible_lines(raw: &str) -> Vec<String> {
    raw.split('\n')
        .map(|l| {
            let l = l.trim_end_matches('\r');
            let l = l.rsplit('\r').next().unwrap_or_default();
            strip_escapes(l)
        })
        .collect()
}

/// `s` without CSI escape sequences (`ESC [ … final byte`).
fn strip_escapes(s: &str) -> String {
    let mut out = String::new();
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            if chars.next() == Some('[') {
                for c in chars.by_ref() {
                    if ('@'..='~').contains(&c) {
                        break;
                    }
                }
            }
            continue;
        }
        out.push(c);
    }
    out
}

#[test]
fn restore_on_a_terminal_shows_percentage_eta_and_table_and_keeps_log_lines_whole() {
    let rig = Rig::file("progress", &format!("{SCHEMA}{}", filler(20_000)), "");
    // The snapshot on a terminal: its display (stage, tables done of the
    // total), then its id on a line of its own.
    let shell = format!(
        "{} --config {} snapshot",
        lethe_bin().display(),
        rig.cfg.display()
    );
    let mut cmd = std::process::Command::new("script");
    cmd.args(["-qfec", &shell, "/dev/null"]);
    let out = crate::common::output_within(cmd);
    let raw = text(&out.stdout);
    assert!(out.status.success(), "{raw:?}");
    let drawn = strip_escapes(&raw);
    for want in ["snapshot ", "tables [", " rows, "] {
        assert!(drawn.contains(want), "{want:?} not shown:\n{raw:?}");
    }
    let id = visible_lines(&raw)
        .into_iter()
        .find(|l| {
            let l = l.trim();
            l.len() == 21 && l.as_bytes()[8] == b'T' && l.contains("Z-")
        })
        .unwrap_or_else(|| panic!("no snapshot id on a line of its own:\n{raw:?}"))
        .trim()
        .to_string();
    let out = rig.run(&["erase", "sync"]);
    assert!(out.status.success(), "erase sync: {}", text(&out.stderr));

    // Piped: log lines only, no progress bytes.
    let target = TestDb::create("progress_pipe");
    let out = rig.run(&["restore", &id, "--target", &target.url]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let err = text(&out.stderr);
    for bad in ["\r", "\x1b", "ETA", "tables done"] {
        assert!(
            !err.contains(bad),
            "progress bytes {bad:?} on a pipe: {err}"
        );
    }
    for line in err.lines().filter(|l| !l.trim().is_empty()) {
        let v: serde_json::Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("not a JSON log line ({e}): {line:?}\n{err}"));
        assert!(v.get("event").is_some(), "{line}");
    }

    // On a terminal, paused 2 s mid-table so the display is drawn while a
    // table is being read; JSON logs (the rig's `log.format`).
    let target = TestDb::create("progress_tty");
    let shell = format!(
        "{} --config {} restore {id} --target '{}' --jobs 1",
        lethe_bin().display(),
        rig.cfg.display(),
        target.url
    );
    let mut cmd = std::process::Command::new("script");
    cmd.args(["-qfec", &shell, "/dev/null"])
        .env("LETHE_TEST_PAUSE_AT", "restore_data")
        .env("LETHE_TEST_PAUSE_SECS", "2")
        .env_remove("LETHE_LOG");
    let out = crate::common::output_within(cmd);
    let raw = text(&out.stdout);
    assert!(out.status.success(), "{raw}\n{}", text(&out.stderr));
    // What was drawn (redrawn in place: look at the bytes, not the lines).
    let drawn = strip_escapes(&raw);
    for want in [
        "restore ",
        "% [",
        "ETA ",
        "tables done · reading public.",
        "100% [",
    ] {
        assert!(drawn.contains(want), "{want:?} not shown:\n{raw:?}");
    }
    let lines = visible_lines(&raw);
    let shown = lines.join("\n");
    // Every JSON log line starts its own line and parses whole: none was
    // written into the middle of the bar.
    let mut json = 0;
    for l in lines.iter().filter(|l| l.contains("{\"")) {
        let v: serde_json::Value = serde_json::from_str(l.trim())
            .unwrap_or_else(|e| panic!("a log line mixed with the display ({e}): {l:?}\n{shown}"));
        assert!(v.get("event").is_some(), "{l}");
        json += 1;
    }
    assert!(json > 0, "no JSON log line on the terminal:\n{shown}");
    assert!(
        lines.iter().any(|l| l == "lethe-test-pause: restore_data"),
        "the line printed while the display was shown is not whole:\n{shown}"
    );
    let rows = target.sql("SELECT count(*) FROM filler");
    assert_eq!(rows.trim(), "20000");
}
