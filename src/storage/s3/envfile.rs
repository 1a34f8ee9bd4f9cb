//! `storage.credentials_file`: an environment-style file
//! (`AWS_ACCESS_KEY_ID=…`, `AWS_SECRET_ACCESS_KEY=…`, optional
//! `AWS_SESSION_TOKEN=…`) that the daemon and every command read, so an
//! interactive `lethe list` on the server uses the same key as the unit.
//! Refused when group or others can read it, like every secret file.

use aws_sdk_s3::config::Credentials;
use std::path::Path;

/// Reads and parses the file.
///
/// # Errors
/// Unreadable, readable by others, or missing a key; the message names the
/// file and what to do.
pub fn load(path: &Path) -> Result<Credentials, String> {
    let text = crate::secrets::read_secret_file(path)
        .map_err(|e| format!("storage.credentials_file: {e}"))?;
    parse(&text).map_err(|e| format!("storage.credentials_file {}: {e}", path.display()))
}

/// Parses `KEY=VALUE` lines: blank lines and `#` comments skipped, an
/// optional `export ` prefix, values optionally in single or double quotes.
///
/// # Errors
/// A line that is not `KEY=VALUE`, or no access key id / secret key.
pub fn parse(text: &str) -> Result<Credentials, String> {
    let (mut id, mut secret, mut token) = (None, None, None);
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line.strip_prefix("export ").unwrap_or(line);
        let Some((k, v)) = line.split_once('=') else {
            return Err(format!(
                "line {} is not KEY=VALUE (the file is in the form of systemd's EnvironmentFile)",
                n + 1
            ));
        };
        let v = v.trim();
        let v = v
            .strip_prefix('"')
            .and_then(|v| v.strip_suffix('"'))
            .or_else(|| v.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')))
            .unwrap_or(v)
            .to_string();
        match k.trim() {
            "AWS_ACCESS_KEY_ID" => id = Some(v),
            "AWS_SECRET_ACCESS_KEY" => secret = Some(v),
            "AWS_SESSION_TOKEN" => token = Some(v).filter(|t| !t.is_empty()),
            _ => {}
        }
    }
    match (
        id.filter(|s| !s.is_empty()),
        secret.filter(|s| !s.is_empty()),
    ) {
        (Some(id), Some(secret)) => Ok(Credentials::new(
            id,
            secret,
            token,
            None,
            "lethe-credentials-file",
        )),
        _ => Err("needs AWS_ACCESS_KEY_ID=… and AWS_SECRET_ACCESS_KEY=… lines".to_string()),
    }
}

#[cfg(test)]
#[path = "envfile_tests.rs"]
mod tests;
