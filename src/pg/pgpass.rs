//! The libpq password file (`PGPASSFILE`, else `~/.pgpass`), read the way
//! libpq reads it so `lethe` and the `pg_dump` it runs use the same
//! credentials. Like libpq, a file readable by group or others is ignored.

use std::path::PathBuf;
use tokio_postgres::config::Host;

/// The password for the connection `cfg` describes, if the file has one.
pub(super) fn lookup(cfg: &tokio_postgres::Config) -> Option<String> {
    let path = std::env::var_os("PGPASSFILE")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".pgpass")))?;
    let text = match crate::secrets::read_secret_file(&path) {
        Ok(t) => t,
        Err(e) => {
            if path.exists() {
                tracing::warn!(
                    event = "source.pgpass_ignored",
                    "{e}; the password file is ignored"
                );
            }
            return None;
        }
    };
    let host = match cfg.get_hosts().first() {
        Some(Host::Tcp(h)) => h.clone(),
        _ => "localhost".to_string(),
    };
    let port = cfg.get_ports().first().copied().unwrap_or(5432).to_string();
    let user = cfg.get_user().unwrap_or_default().to_string();
    let db = cfg
        .get_dbname()
        .map(str::to_string)
        .unwrap_or_else(|| user.clone());
    find(&text, [&host, &port, &db, &user])
}

/// First matching line's password; fields are `host:port:db:user:password`
/// with `*` matching anything and `\:`/`\\` escapes.
fn find(text: &str, want: [&str; 4]) -> Option<String> {
    for line in text.lines() {
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let fields = split(line);
        if fields.len() < 5 {
            continue;
        }
        if fields[..4]
            .iter()
            .zip(want)
            .all(|(f, w)| f == "*" || f == w)
        {
            return Some(fields[4..].join(":"));
        }
    }
    None
}

fn split(line: &str) -> Vec<String> {
    let mut out = vec![String::new()];
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                if let (Some(n), Some(s)) = (chars.next(), out.last_mut()) {
                    s.push(n);
                }
            }
            ':' if out.len() < 5 => out.push(String::new()),
            _ => {
                if let Some(s) = out.last_mut() {
                    s.push(c);
                }
            }
        }
    }
    out
}

#[cfg(test)]
#[path = "pgpass_tests.rs"]
mod tests;
