//! Pseudonyms for columns a restore redacts with `"pseudonym"`: a keyed
//! hash of the original value (HMAC-SHA256, RustCrypto's `hmac` and `sha2`),
//! so the same value gets the same pseudonym in every table and every
//! restore made with the same key (joins still work), and nobody without
//! the key can go back from a pseudonym to the value, nor test a guess.
//!
//! The key is a file of hex digits (at least 32 bytes), written by
//! `lethe keygen --pseudonym-key FILE` and named in the config by
//! `erasure.pseudonym_key_file`.

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use std::io::Write;
use std::path::Path;

/// Prefix of every hashed message: a new scheme gets a new prefix, so its
/// pseudonyms never collide with these.
const DOMAIN: &[u8] = b"lethe pseudonym v1\0";

/// The shortest key accepted, in bytes.
pub const MIN_KEY_BYTES: usize = 32;

/// The types [`PseudonymKind::for_type`] accepts, for messages.
const WORKING_TYPES: &str = "text, citext, character varying / varchar without a length or with \
     one of at least 32, character(n) with n >= 32 (bpchar), uuid and bigint";

/// Why a key could not be loaded or made, or a column cannot hold a pseudonym.
#[derive(Debug, thiserror::Error)]
pub enum PseudonymError {
    /// The key file is missing, unreadable, or readable by group or others
    /// (the message names the file and the fix).
    #[error("pseudonym key: {0}")]
    Unreadable(String),
    /// The key file does not hold a key.
    #[error(
        "pseudonym key file {path}: {reason}; it must hold only hex digits (64 or more: at least 32 bytes), as `lethe keygen --pseudonym-key FILE` writes"
    )]
    Format { path: String, reason: String },
    /// A key given as bytes is shorter than [`MIN_KEY_BYTES`].
    #[error(
        "a pseudonym key of {len} bytes is too short: at least {MIN_KEY_BYTES} are needed; make one with `lethe keygen --pseudonym-key FILE`"
    )]
    TooShort { len: usize },
    /// The column's type cannot hold a pseudonym.
    #[error(
        "column type {type_name:?} cannot hold a pseudonym: \"pseudonym\" works on {WORKING_TYPES}; choose another redaction for this column"
    )]
    UnsupportedType { type_name: String },
    /// `keygen` found a file at the path: keys are never overwritten.
    #[error(
        "{path} already exists: a pseudonym key is never overwritten (pseudonyms made with it could no longer be matched); choose another path"
    )]
    Exists { path: String },
    /// `keygen` could not write the file.
    #[error("cannot write pseudonym key file {path}: {source}")]
    Write {
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// The operating system gave no random bytes.
    #[error("cannot get random bytes from the operating system for a pseudonym key: {0}")]
    Random(String),
}

/// The secret key, ready to hash (HMAC-SHA256 keyed with it). Its `Debug`
/// shows nothing of it.
#[derive(Clone)]
pub struct PseudonymKey(Hmac<Sha256>);

impl std::fmt::Debug for PseudonymKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PseudonymKey(<redacted>)")
    }
}

/// What a pseudonym looks like, from the column's type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PseudonymKind {
    /// 32 lowercase hex digits.
    Text,
    /// A version 8 (RFC 9562 custom) uuid.
    Uuid,
    /// A non-negative bigint.
    Bigint,
}

impl PseudonymKind {
    /// The kind for a column of type `type_name`, as PostgreSQL's
    /// `format_type` prints it (for a domain, its base type): `text`,
    /// `citext` (schema-qualified or not), `character varying`,
    /// `character varying(n)`/`varchar(n)` and `character(n)` with n ≥ 32,
    /// `bpchar` (no length) give [`PseudonymKind::Text`]; `uuid` gives
    /// [`PseudonymKind::Uuid`]; `bigint` gives [`PseudonymKind::Bigint`].
    ///
    /// # Errors
    /// Any other type (`integer`, `numeric`, `varchar(10)`, `jsonb`, arrays,
    /// and `character` without a length, which is `character(1)`), naming
    /// the type and the types that work.
    pub fn for_type(type_name: &str) -> Result<PseudonymKind, PseudonymError> {
        let t = type_name.trim().to_ascii_lowercase();
        let kind = match t.as_str() {
            "text" | "citext" | "character varying" | "varchar" | "bpchar" => {
                Some(PseudonymKind::Text)
            }
            "uuid" => Some(PseudonymKind::Uuid),
            "bigint" => Some(PseudonymKind::Bigint),
            _ if t.ends_with(".citext") && !t.contains('[') => Some(PseudonymKind::Text),
            _ => ["character varying(", "varchar(", "character(", "bpchar("]
                .iter()
                .find_map(|p| t.strip_prefix(p))
                .and_then(|rest| rest.strip_suffix(')'))
                .filter(|n| !n.is_empty() && n.bytes().all(|c| c.is_ascii_digit()))
                .and_then(|n| n.parse::<u64>().ok())
                .filter(|&n| n >= 32)
                .map(|_| PseudonymKind::Text),
        };
        kind.ok_or_else(|| PseudonymError::UnsupportedType {
            type_name: type_name.to_string(),
        })
    }
}

impl PseudonymKey {
    /// Reads a key file: hex digits (64 or more, white space around them
    /// allowed), refused when group or others can read it.
    ///
    /// # Errors
    /// Missing, unreadable or loosely permitted file; not hex; shorter than
    /// 32 bytes.
    pub fn load(path: &Path) -> Result<PseudonymKey, PseudonymError> {
        let text = crate::secrets::read_secret_file(path).map_err(PseudonymError::Unreadable)?;
        let format = |reason: String| PseudonymError::Format {
            path: path.display().to_string(),
            reason,
        };
        let hex_text = text.trim();
        if hex_text.is_empty() {
            return Err(format("it is empty".into()));
        }
        if let Some(at) = hex_text.bytes().position(|c| !c.is_ascii_hexdigit()) {
            return Err(format(format!(
                "it has a character that is not a hex digit at byte {at} of its content"
            )));
        }
        if hex_text.len() % 2 != 0 {
            return Err(format(format!(
                "it has an odd number of hex digits ({})",
                hex_text.len()
            )));
        }
        let bytes = hex::decode(hex_text).map_err(|e| format(e.to_string()))?;
        if bytes.len() < MIN_KEY_BYTES {
            return Err(format(format!(
                "it holds {} bytes, fewer than {MIN_KEY_BYTES}",
                bytes.len()
            )));
        }
        Self::from_bytes(&bytes)
    }

    /// A key from its bytes.
    ///
    /// # Errors
    /// Fewer than 32 bytes.
    pub fn from_bytes(b: &[u8]) -> Result<PseudonymKey, PseudonymError> {
        if b.len() < MIN_KEY_BYTES {
            return Err(PseudonymError::TooShort { len: b.len() });
        }
        let mac =
            <Hmac<Sha256> as KeyInit>::new_from_slice(b).expect("HMAC takes keys of any length");
        Ok(PseudonymKey(mac))
    }

    /// Appends the pseudonym of `value` (the original value's text, decoded
    /// from COPY) to `out`, as COPY text (it never needs escaping). From the
    /// first bytes of HMAC-SHA256(key, "lethe pseudonym v1\0" ‖ value):
    /// [`PseudonymKind::Text`] is the first 16 as 32 lowercase hex digits;
    /// [`PseudonymKind::Uuid`] is those 16 as a uuid with the version (8)
    /// and RFC 4122 variant bits set; [`PseudonymKind::Bigint`] is the first
    /// 8 as a big-endian u64 shifted right by one (so it is non-negative).
    pub fn pseudonym(&self, kind: PseudonymKind, value: &[u8], out: &mut Vec<u8>) {
        let mut mac = self.0.clone();
        mac.update(DOMAIN);
        mac.update(value);
        let tag = mac.finalize().into_bytes();
        let mut b = [0u8; 16];
        b.copy_from_slice(&tag[..16]);
        match kind {
            PseudonymKind::Text => push_hex(out, &b),
            PseudonymKind::Uuid => {
                b[6] = (b[6] & 0x0f) | 0x80;
                b[8] = (b[8] & 0x3f) | 0x80;
                for (i, part) in [&b[0..4], &b[4..6], &b[6..8], &b[8..10], &b[10..16]]
                    .into_iter()
                    .enumerate()
                {
                    if i > 0 {
                        out.push(b'-');
                    }
                    push_hex(out, part);
                }
            }
            PseudonymKind::Bigint => {
                let n = u64::from_be_bytes(b[..8].try_into().expect("8 bytes")) >> 1;
                write!(out, "{n}").expect("writing to a Vec cannot fail");
            }
        }
    }
}

/// Appends `bytes` as lowercase hex digits.
fn push_hex(out: &mut Vec<u8>, bytes: &[u8]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for &x in bytes {
        out.push(DIGITS[usize::from(x >> 4)]);
        out.push(DIGITS[usize::from(x & 0x0f)]);
    }
}

/// Writes a new key to `path`: 32 bytes from the operating system's random
/// source, as 64 hex digits and a newline, in a file created with mode 0600.
///
/// # Errors
/// The file exists (a key is never overwritten), cannot be written, or the
/// OS has no randomness to give.
pub fn keygen(path: &Path) -> Result<(), PseudonymError> {
    use rand::TryRng;
    use std::os::unix::fs::OpenOptionsExt;
    let mut key = [0u8; MIN_KEY_BYTES];
    rand::rngs::SysRng
        .try_fill_bytes(&mut key)
        .map_err(|e| PseudonymError::Random(e.to_string()))?;
    let p = path.display().to_string();
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|source| {
            if source.kind() == std::io::ErrorKind::AlreadyExists {
                PseudonymError::Exists { path: p.clone() }
            } else {
                PseudonymError::Write {
                    path: p.clone(),
                    source,
                }
            }
        })?;
    let mut text = Vec::with_capacity(2 * key.len() + 1);
    push_hex(&mut text, &key);
    text.push(b'\n');
    f.write_all(&text)
        .and_then(|()| f.sync_all())
        .map_err(|source| PseudonymError::Write { path: p, source })
}

#[cfg(test)]
#[path = "pseudonym_tests.rs"]
mod tests;
