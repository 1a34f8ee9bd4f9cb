//! The schema halves through `psql`: pg_dump's plain output holds psql
//! meta-commands (such as `\restrict`), so it is run as a script.

use super::super::SchemaObject;
use crate::restore::RestoreError;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Where `psql` is: `source.bin_dir` or `$PATH`.
pub fn psql_path(bin_dir: Option<&Path>) -> PathBuf {
    bin_dir.map_or_else(|| PathBuf::from("psql"), |d| d.join("psql"))
}

/// Streams a schema object into `psql -v ON_ERROR_STOP=1 --single-transaction`
/// (pg_dump's plain output holds psql meta-commands such as `\restrict`).
/// If the object cannot be read to its end, psql is killed before its input
/// closes, so a truncated script is never committed.
///
/// # Errors
/// psql cannot start or fails (its last lines are quoted), or the object is damaged.
pub async fn run_psql(psql: &Path, url: &str, object: SchemaObject) -> Result<(), RestoreError> {
    let (psql, url) = (psql.to_path_buf(), url.to_string());
    tokio::task::spawn_blocking(move || {
        let section = object.section;
        let reader = object.open().map_err(|e| RestoreError::Schema {
            section,
            message: e.to_string(),
        })?;
        psql_blocking(&psql, &url, reader, section, object.key())
    })
    .await
    .map_err(|e| RestoreError::Internal(format!("psql task: {e}")))?
}

fn psql_blocking(
    psql: &Path,
    url: &str,
    mut reader: Box<dyn Read + Send>,
    section: &'static str,
    key: &str,
) -> Result<(), RestoreError> {
    let err = |message: String| RestoreError::Schema { section, message };
    // The password goes through the environment, not the command line
    // (which other users of the host can read in the process list).
    let (url, password) = split_password(url);
    let mut cmd = Command::new(psql);
    if let Some(p) = password {
        cmd.env("PGPASSWORD", p);
    }
    let mut child = cmd
        .args([
            "-X",
            "-q",
            "-v",
            "ON_ERROR_STOP=1",
            "--single-transaction",
            "--no-password",
            "-f",
            "-",
            "-d",
            &url,
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| {
            err(format!(
                "cannot run {}: {e}; install the PostgreSQL client or set source.bin_dir",
                psql.display()
            ))
        })?;
    let mut stdin = child
        .stdin
        .take()
        .ok_or_else(|| err("psql started without stdin".into()))?;
    let stderr = child.stderr.take();
    let stderr_thread = std::thread::spawn(move || {
        let mut s = String::new();
        if let Some(mut e) = stderr {
            let _ = e.read_to_string(&mut s);
        }
        s
    });
    let mut buf = vec![0u8; 1 << 16];
    let copied: Result<(), String> = loop {
        match reader.read(&mut buf) {
            Ok(0) => break Ok(()),
            Ok(n) => {
                if let Err(e) = stdin.write_all(&buf[..n]) {
                    // psql stopped reading: it failed; its stderr says why.
                    break Err(format!("psql stopped reading its input ({e})"));
                }
            }
            Err(e) => {
                let _ = child.kill();
                break Err(format!("cannot read {key}: {e}"));
            }
        }
    };
    drop(stdin);
    let status = child
        .wait()
        .map_err(|e| err(format!("waiting for psql: {e}")))?;
    let stderr = stderr_thread.join().unwrap_or_default();
    let tail: String = {
        let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
        lines[lines.len().saturating_sub(8)..].join("\n  ")
    };
    match copied {
        Err(m) if !m.starts_with("psql stopped") => {
            Err(err(format!("{m}; the {section} schema was rolled back")))
        }
        _ if !status.success() => Err(err(format!("psql failed ({status}):\n  {tail}"))),
        Err(m) => Err(err(m)),
        Ok(()) => {
            if !tail.is_empty() {
                tracing::warn!(event = "restore.psql_stderr", section, "psql said: {tail}");
            }
            Ok(())
        }
    }
}

/// The URL without its password, and the (percent-decoded) password.
pub fn split_password(url: &str) -> (String, Option<String>) {
    match url::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let p = u
                .password()
                .map(|p| String::from_utf8_lossy(&crate::secrets::percent_decode(p)).into_owned());
            let _ = u.set_password(None);
            (u.to_string(), p)
        }
        _ => (url.to_string(), None),
    }
}
