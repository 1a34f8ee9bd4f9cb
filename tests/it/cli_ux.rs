//! What a person at a terminal sees from `config check`, `LETHE_LOG` and
//! `keygen`: a mistyped log level is refused (it would silence every line),
//! every unknown key is named with a suggestion, the public key comes with
//! its explanation, a pseudonym key comes with its config line.

use crate::common::{lethe_cmd, output_within, write_config};

const RECIPIENT: &str = "age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p";

fn config(dir: &std::path::Path, extra: &str) -> std::path::PathBuf {
    write_config(
        dir,
        &format!("[encryption]\nrecipients = [\"{RECIPIENT}\"]\n{extra}"),
    )
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).to_string()
}

#[test]
fn config_check_refuses_an_unparsable_log_level_naming_the_key_and_the_valid_levels() {
    let dir = tempfile::tempdir().expect("tempdir");
    for bad in ["warning", "verbose", "lethe=loud", "info,,lethe=[bad"] {
        let cfg = config(dir.path(), &format!("[log]\nlevel = \"{bad}\"\n"));
        let out = output_within(lethe_cmd(&cfg, &["config", "check"], &[]));
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{bad}: {err}");
        assert!(err.contains("log.level"), "{bad}: {err}");
        assert!(err.contains(bad), "{bad}: {err}");
        assert!(
            err.contains("error, warn, info, debug, trace") && err.contains("lethe=debug"),
            "{bad}: {err}"
        );
    }
    let cfg = config(dir.path(), "[log]\nlevel = \"info,lethe=debug\"\n");
    let out = output_within(lethe_cmd(&cfg, &["config", "check"], &[]));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
}

#[test]
fn an_unparsable_lethe_log_is_a_usage_error_naming_lethe_log() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = config(dir.path(), "");
    for args in [&["config", "check"][..], &["list"][..]] {
        let out = output_within(lethe_cmd(&cfg, args, &[("LETHE_LOG", "warning".into())]));
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(
            err.contains("LETHE_LOG") && err.contains("warning"),
            "{err}"
        );
        assert!(err.contains("error, warn, info, debug, trace"), "{err}");
    }
}

#[test]
fn config_check_names_every_unknown_key_with_a_suggestion() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = config(
        dir.path(),
        "[schedule]\nevrey = \"1h\"\n[retention]\nday = 35\n[storage]\nregoin = \"eu-west-1\"\n",
    );
    let out = output_within(lethe_cmd(&cfg, &["config", "check"], &[]));
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    for (key, hint) in [
        ("schedule.evrey", "`every`"),
        ("retention.day", "`days`"),
        ("storage.regoin", "`region`"),
    ] {
        let line = err
            .lines()
            .find(|l| l.contains(key))
            .unwrap_or_else(|| panic!("{key} not named: {err}"));
        assert!(line.contains(hint), "{line}");
    }
}

#[test]
fn keygen_on_a_terminal_prints_the_public_key_under_its_explanation() {
    let dir = tempfile::tempdir().expect("tempdir");
    let key = dir.path().join("id.key");
    // `script` gives the command a pseudo-terminal.
    let shell = format!(
        "{} keygen --output {}",
        crate::common::lethe_bin().display(),
        key.display()
    );
    let mut cmd = std::process::Command::new("script");
    cmd.args(["-qec", &shell, "/dev/null"]);
    let out = output_within(cmd);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let seen = text(&out.stdout);
    let hint = seen
        .find("add it to encryption.recipients")
        .unwrap_or_else(|| panic!("{seen}"));
    let public = seen.find("age1").unwrap_or_else(|| panic!("{seen}"));
    assert!(hint < public, "the key comes after its explanation: {seen}");

    // Piped: stdout is the key alone.
    let out = output_within(lethe_cmd(
        &key,
        &[
            "keygen",
            "--output",
            &dir.path().join("k2").display().to_string(),
        ],
        &[],
    ));
    let stdout = text(&out.stdout);
    assert!(
        stdout.trim().starts_with("age1") && stdout.trim().lines().count() == 1,
        "{stdout}"
    );
    assert!(text(&out.stderr).contains("encryption.recipients"));
}

#[test]
fn keygen_pseudonym_key_writes_a_private_hex_key_prints_its_config_line_and_never_overwrites() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().expect("tempdir");
    let key = dir.path().join("pseudonym.key");
    let key_arg = key.display().to_string();
    let args = ["keygen", "--pseudonym-key", key_arg.as_str()];
    let out = output_within(lethe_cmd(&key, &args, &[]));
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let stdout = text(&out.stdout);
    let absolute = std::fs::canonicalize(&key).expect("canonicalize");
    assert_eq!(
        stdout,
        format!("erasure.pseudonym_key_file = \"{}\"\n", absolute.display())
    );
    assert!(stderr.contains("mode 0600"), "{stderr}");

    let meta = std::fs::metadata(&key).expect("key file");
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    let body = std::fs::read_to_string(&key).expect("read key");
    assert_eq!(body.len(), 65, "64 hex digits and a newline: {body:?}");
    assert!(
        body.trim_end().bytes().all(|c| c.is_ascii_hexdigit()),
        "{body:?}"
    );
    lethe::erasure::pseudonym::PseudonymKey::load(&key).expect("the key loads");

    // A second run refuses to overwrite it, and leaves it as it was.
    let out = output_within(lethe_cmd(&key, &args, &[]));
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&key_arg) && stderr.contains("already exists"),
        "{stderr}"
    );
    assert!(out.stdout.is_empty(), "{}", text(&out.stdout));
    assert_eq!(std::fs::read_to_string(&key).expect("read key"), body);

    // It is one or the other: an age identity or a pseudonym key.
    let out = output_within(lethe_cmd(
        &key,
        &["keygen", "--pseudonym-key", "a", "--output", "b"],
        &[],
    ));
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
}
