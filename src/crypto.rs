//! Encryption at rest: age with X25519 recipients. The backup host holds only
//! public keys, so it can write snapshots it cannot read; restore hosts hold
//! the identity file written by `lethe keygen`.

use age::secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};
use std::io::{Read, Write};
use std::path::Path;

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct EncryptionConfig {
    /// age X25519 public keys (`age1…`). The daemon needs nothing more.
    pub recipients: Vec<String>,
    /// The age identity, only on hosts that restore.
    pub identity_file: Option<std::path::PathBuf>,
    /// Explicitly store plaintext. Logged as a warning at every start.
    pub disabled: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    #[error("{0:?} is not an age X25519 public key (expected age1…, as printed by `lethe keygen`)")]
    BadRecipient(String),
    #[error("cannot read identity file {path}: {message}")]
    Identity { path: String, message: String },
    #[error("{path} holds no age X25519 identity (expected a line AGE-SECRET-KEY-1…)")]
    NoIdentity { path: String },
    #[error(
        "{what}: cannot decrypt with the given identity: {message}; check that --identity is the key matching the snapshot's recipients"
    )]
    Decrypt { what: String, message: String },
    #[error("encryption failed: {0}")]
    Encrypt(String),
    #[error("{path} already exists; choose another --output or remove it first")]
    Exists { path: String },
    #[error("cannot write {path}: {source}")]
    Write {
        path: String,
        source: std::io::Error,
    },
}

/// Parses one `age1…` public key.
///
/// # Errors
/// `BadRecipient` naming the string.
pub fn parse_recipient(s: &str) -> Result<age::x25519::Recipient, CryptoError> {
    s.trim()
        .parse()
        .map_err(|_| CryptoError::BadRecipient(s.to_string()))
}

/// Short, stable fingerprint of a recipient for the manifest (first 16 hex of
/// BLAKE3 over the `age1…` string).
pub fn fingerprint(recipient: &age::x25519::Recipient) -> String {
    let h = blake3::hash(recipient.to_string().as_bytes());
    hex::encode(&h.as_bytes()[..8])
}

/// How objects are sealed before they leave the process.
#[derive(Clone)]
pub enum Sealer {
    /// Explicit `encryption.disabled = true`: plaintext (zstd only).
    Disabled,
    Age(Vec<age::x25519::Recipient>),
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Sealer::Disabled => write!(f, "Sealer::Disabled"),
            Sealer::Age(r) => write!(f, "Sealer::Age({} recipients)", r.len()),
        }
    }
}

impl Sealer {
    /// Builds the sealer from config (validated: recipients parse).
    ///
    /// # Errors
    /// A recipient that does not parse.
    pub fn from_config(cfg: &crate::crypto::EncryptionConfig) -> Result<Sealer, CryptoError> {
        if cfg.disabled {
            return Ok(Sealer::Disabled);
        }
        let r = cfg
            .recipients
            .iter()
            .map(|s| parse_recipient(s))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Sealer::Age(r))
    }

    /// Fingerprints of the recipients, empty when disabled.
    pub fn fingerprints(&self) -> Vec<String> {
        match self {
            Sealer::Disabled => Vec::new(),
            Sealer::Age(r) => r.iter().map(fingerprint).collect(),
        }
    }

    /// Wraps `out` so that what is written to the result is sealed into it.
    /// Call `finish()` on the returned writer; dropping it without `finish`
    /// leaves a truncated stream that decryption rejects.
    ///
    /// # Errors
    /// age refuses the recipient set.
    pub fn seal<W: Write + Send + 'static>(&self, out: W) -> Result<SealWriter<W>, CryptoError> {
        match self {
            Sealer::Disabled => Ok(SealWriter::Plain(out)),
            Sealer::Age(rs) => {
                let enc =
                    age::Encryptor::with_recipients(rs.iter().map(|r| r as &dyn age::Recipient))
                        .map_err(|e| CryptoError::Encrypt(e.to_string()))?;
                let w = enc
                    .wrap_output(out)
                    .map_err(|e| CryptoError::Encrypt(e.to_string()))?;
                Ok(SealWriter::Age(w))
            }
        }
    }
}

/// A writer that seals (or passes through) into `W`.
pub enum SealWriter<W: Write> {
    Plain(W),
    Age(age::stream::StreamWriter<W>),
}

impl<W: Write> Write for SealWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            SealWriter::Plain(w) => w.write(buf),
            SealWriter::Age(w) => w.write(buf),
        }
    }
    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            SealWriter::Plain(w) => w.flush(),
            SealWriter::Age(w) => w.flush(),
        }
    }
}

impl<W: Write> SealWriter<W> {
    /// Writes the final chunk and returns the inner writer.
    ///
    /// # Errors
    /// I/O error of the inner writer.
    pub fn finish(self) -> std::io::Result<W> {
        match self {
            SealWriter::Plain(w) => Ok(w),
            SealWriter::Age(w) => w.finish(),
        }
    }
}

/// What a restore host uses to open objects.
#[derive(Clone)]
pub enum Opener {
    /// The snapshot was written with encryption disabled.
    Plain,
    Age(Vec<age::x25519::Identity>),
}

impl std::fmt::Debug for Opener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Opener::Plain => write!(f, "Opener::Plain"),
            Opener::Age(i) => write!(f, "Opener::Age({} identities)", i.len()),
        }
    }
}

impl Opener {
    /// Loads X25519 identities from a file (`lethe keygen` format; comments ok).
    /// The file must not be readable by group or others.
    ///
    /// # Errors
    /// Unreadable file, loose permissions, or no identity inside.
    pub fn from_identity_file(path: &Path) -> Result<Opener, CryptoError> {
        let p = path.display().to_string();
        let text =
            crate::secrets::read_secret_file(path).map_err(|message| CryptoError::Identity {
                path: p.clone(),
                message,
            })?;
        let ids: Vec<age::x25519::Identity> = text
            .lines()
            .map(str::trim)
            .filter(|l| l.starts_with("AGE-SECRET-KEY-"))
            .map(|l| l.parse::<age::x25519::Identity>())
            .collect::<Result<_, _>>()
            .map_err(|e| CryptoError::Identity {
                path: p.clone(),
                message: e.to_string(),
            })?;
        if ids.is_empty() {
            return Err(CryptoError::NoIdentity { path: p });
        }
        Ok(Opener::Age(ids))
    }

    /// Wraps `input` so that reading the result yields the plaintext. Each
    /// 64 KiB chunk is authenticated as it is read: a flipped byte or a
    /// truncation surfaces as an I/O error of kind `InvalidData`.
    ///
    /// # Errors
    /// Wrong identity or a damaged header; `what` names the object.
    pub fn open<R: Read + Send + 'static>(
        &self,
        what: &str,
        input: R,
    ) -> Result<Box<dyn Read + Send>, CryptoError> {
        match self {
            Opener::Plain => Ok(Box::new(input)),
            Opener::Age(ids) => {
                let d = age::Decryptor::new(input).map_err(|e| CryptoError::Decrypt {
                    what: what.to_string(),
                    message: e.to_string(),
                })?;
                let r = d
                    .decrypt(ids.iter().map(|i| i as &dyn age::Identity))
                    .map_err(|e| CryptoError::Decrypt {
                        what: what.to_string(),
                        message: e.to_string(),
                    })?;
                Ok(Box::new(r))
            }
        }
    }
}

/// Writes a new identity file with mode 0600 and returns its public key.
///
/// # Errors
/// The file exists or cannot be written.
pub fn keygen(output: &Path) -> Result<String, CryptoError> {
    use std::os::unix::fs::OpenOptionsExt;
    let id = age::x25519::Identity::generate();
    let public = id.to_public().to_string();
    let p = output.display().to_string();
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(output)
        .map_err(|source| {
            if source.kind() == std::io::ErrorKind::AlreadyExists {
                CryptoError::Exists { path: p.clone() }
            } else {
                CryptoError::Write {
                    path: p.clone(),
                    source,
                }
            }
        })?;
    let body = format!(
        "# created: {}\n# public key: {public}\n{}\n",
        chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        id.to_string().expose_secret()
    );
    f.write_all(body.as_bytes())
        .and_then(|()| f.sync_all())
        .map_err(|source| CryptoError::Write { path: p, source })?;
    Ok(public)
}

#[cfg(test)]
#[path = "crypto_tests.rs"]
mod tests;
