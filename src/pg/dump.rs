//! The schema half of a snapshot: `pg_dump --section=pre-data|post-data
//! --snapshot=<id>` in plain format, streamed from its stdout.
//!
//! Owners and privileges are kept (pg_dump's defaults): the schema restores
//! as the source had it, and a restore into a cluster lacking the source's
//! roles fails loudly at the first `ALTER ... OWNER TO` rather than leaving
//! tables the application cannot read. Recent pg_dump writes `\restrict`
//! psql meta-commands, so the output is for `psql`, not a simple query.

use super::SourceError;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use tokio::io::AsyncReadExt;
use tokio::process::{Child, ChildStdout};
use tokio::task::JoinHandle;

/// Which half of the schema.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Section {
    /// Types, functions, tables, sequences: everything COPY needs first.
    PreData,
    /// Indexes, constraints, triggers, materialized view refreshes.
    PostData,
}

impl Section {
    fn arg(self) -> &'static str {
        match self {
            Section::PreData => "--section=pre-data",
            Section::PostData => "--section=post-data",
        }
    }
}

/// A located `pg_dump` and its version.
#[derive(Debug, Clone)]
pub struct PgDump {
    pub path: PathBuf,
    pub major: u32,
    pub version: String,
    /// Leave out lethe's own schema (its DDL capture, `ddl_capture`).
    pub skip_lethe: bool,
}

/// Finds `pg_dump` in `bin_dir` (or `$PATH`) and reads its version.
///
/// # Errors
/// `PgDump` saying where it looked and what to install or configure.
pub async fn locate(bin_dir: Option<&Path>) -> Result<PgDump, SourceError> {
    let path = match bin_dir {
        Some(d) => d.join("pg_dump"),
        None => PathBuf::from("pg_dump"),
    };
    let where_ = match bin_dir {
        Some(d) => format!("in source.bin_dir ({})", d.display()),
        None => "on $PATH".to_string(),
    };
    let out = tokio::process::Command::new(&path).arg("--version").output().await.map_err(|e| {
        SourceError::PgDump(format!(
            "cannot run pg_dump {where_}: {e}; install the PostgreSQL client matching the server \
             (e.g. apt install postgresql-client-NN) or set source.bin_dir to its bin directory"
        ))
    })?;
    let text = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let major = parse_major(&text).ok_or_else(|| {
        SourceError::PgDump(format!(
            "{} --version printed {text:?}, which is not a pg_dump version",
            path.display()
        ))
    })?;
    Ok(PgDump {
        path,
        major,
        version: text,
        skip_lethe: false,
    })
}

/// `pg_dump (PostgreSQL) 15.20 (Debian …)` → 15; `16devel` → 16.
fn parse_major(version_line: &str) -> Option<u32> {
    let token = version_line
        .split_whitespace()
        .find(|t| t.starts_with(|c: char| c.is_ascii_digit()))?;
    let digits: String = token.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

impl PgDump {
    /// pg_dump can read servers up to its own major version, not newer ones.
    ///
    /// # Errors
    /// `PgDump` naming both versions and the fix.
    pub fn check_server(&self, server_version_num: i32) -> Result<(), SourceError> {
        let server_major = u32::try_from(server_version_num / 10000).unwrap_or(0);
        if self.major < server_major {
            return Err(SourceError::PgDump(format!(
                "{} is version {} but the server is PostgreSQL {server_major}: pg_dump must be at least \
                 the server's major version; install postgresql-client-{server_major} and point \
                 source.bin_dir at it (e.g. /usr/lib/postgresql/{server_major}/bin)",
                self.path.display(),
                self.major
            )));
        }
        Ok(())
    }

    /// Starts `pg_dump` for one section on the exported snapshot, leaving
    /// out lethe's own schema when `skip_lethe` is set.
    ///
    /// # Errors
    /// The process cannot be started.
    pub fn spawn(
        &self,
        url: &str,
        snapshot_id: &str,
        section: Section,
    ) -> Result<DumpProcess, SourceError> {
        // The URL with `sslmode` set to what Lethe's own connections use.
        let url = super::tls::endpoint(url)?.pg_dump_url;
        let mut cmd = tokio::process::Command::new(&self.path);
        if self.skip_lethe {
            cmd.arg(format!("--exclude-schema={}", super::ddl_capture::SCHEMA));
        }
        let mut child = cmd
            .arg("--no-password")
            .arg("--format=plain")
            .arg(section.arg())
            .arg(format!("--snapshot={snapshot_id}"))
            .arg(format!("--lock-wait-timeout={}", super::LOCK_TIMEOUT))
            .arg(format!("--dbname={url}"))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| {
                SourceError::PgDump(format!("cannot start {}: {e}", self.path.display()))
            })?;
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| SourceError::PgDump("pg_dump started without a stdout pipe".into()))?;
        let stderr = child.stderr.take();
        let stderr_task = tokio::spawn(async move {
            let mut tail = Vec::new();
            if let Some(mut err) = stderr {
                let mut buf = [0u8; 4096];
                while let Ok(n) = err.read(&mut buf).await {
                    if n == 0 {
                        break;
                    }
                    tail.extend_from_slice(&buf[..n]);
                    if tail.len() > 16 * 1024 {
                        tail.drain(..tail.len() - 16 * 1024);
                    }
                }
            }
            String::from_utf8_lossy(&tail).trim().to_string()
        });
        Ok(DumpProcess {
            child,
            stdout: Some(stdout),
            stderr_task,
            section,
        })
    }
}

/// A running pg_dump. Dropping it kills the process.
pub struct DumpProcess {
    child: Child,
    stdout: Option<ChildStdout>,
    stderr_task: JoinHandle<String>,
    section: Section,
}

impl Drop for DumpProcess {
    fn drop(&mut self) {
        self.stderr_task.abort();
    }
}

impl DumpProcess {
    /// The SQL text, read to its end before `finish`.
    pub fn take_stdout(&mut self) -> Option<ChildStdout> {
        self.stdout.take()
    }

    /// Waits for the exit; a non-zero exit is an error carrying pg_dump's
    /// last stderr lines.
    ///
    /// # Errors
    /// `PgDump` with the section, exit status and pg_dump's message.
    pub async fn finish(mut self) -> Result<(), SourceError> {
        self.stdout = None;
        let status = self
            .child
            .wait()
            .await
            .map_err(|e| SourceError::PgDump(format!("waiting for pg_dump: {e}")))?;
        let stderr = (&mut self.stderr_task).await.unwrap_or_default();
        if status.success() {
            if !stderr.is_empty() {
                tracing::warn!(event = "source.pg_dump_stderr", section = ?self.section, "pg_dump said: {stderr}");
            }
            Ok(())
        } else {
            Err(SourceError::PgDump(format!(
                "pg_dump {:?} failed ({status}): {stderr}",
                self.section
            )))
        }
    }
}

#[cfg(test)]
#[path = "dump_tests.rs"]
mod tests;
