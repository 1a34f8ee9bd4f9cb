//! Panics are bugs; when one happens it is logged as one structured event,
//! `process.panicked` (ERROR: `location`, `thread`, and the redacted panic
//! message in the event's `message`), instead of
//! Rust's default `thread '…' panicked at …` text, and its message is
//! redacted first: a panic message is whatever the buggy code formatted, and
//! that can be a config dump, a connection string or a subject id.
//!
//! [`redact`] removes:
//! - every registered secret ([`register_secret`]: the database password of
//!   the source URL, the API token, `AWS_SECRET_ACCESS_KEY`,
//!   `AWS_SESSION_TOKEN`, `PGPASSWORD`, passwords in URL arguments);
//! - the user and password of any `scheme://user:pass@host` URL;
//! - `AGE-SECRET-KEY-1…` identities;
//! - every double-quoted string (how `{:?}` and most error values print
//!   their inputs, text subject ids included);
//! - every word holding 4 or more digits or an `@` (numeric and UUID
//!   subject ids, e-mail addresses, hex keys), and every 16+ character hex
//!   word.
//!
//! A bigint subject id of 1–3 digits printed bare is indistinguishable from
//! a count and is not removed; the location (file:line) is kept whole.
//!
//! `LETHE_TEST_PANIC=<place>` makes lethe panic on purpose at `place`
//! (`config`: after loading the config; `daemon_job`: inside the daemon's
//! snapshot job) with a message that dumps the config, the arguments and
//! the S3 secret — a stand-in for a careless bug. It is ignored unless
//! `LETHE_TEST_HOOKS=crash-on-purpose` is also set.

use std::sync::Mutex;

static SECRETS: Mutex<Vec<String>> = Mutex::new(Vec::new());

const REDACTED: &str = "[redacted]";
/// Longest message logged, after redaction.
const MAX_MESSAGE: usize = 600;

/// Adds a value that must never appear in a panic message. Values shorter
/// than 4 characters are ignored (they would redact ordinary words).
pub fn register_secret(value: &str) {
    let v = value.trim();
    if v.chars().count() < 4 {
        return;
    }
    let mut s = SECRETS.lock().unwrap_or_else(|p| p.into_inner());
    if !s.iter().any(|x| x == v) {
        s.push(v.to_string());
    }
}

/// Registers the password of `url` if it has one (raw and percent-decoded).
pub fn register_url_password(url: &str) {
    if let Ok(u) = url::Url::parse(url)
        && let Some(p) = u.password()
    {
        register_secret(p);
        if let Ok(d) = String::from_utf8(crate::secrets::percent_decode(p)) {
            register_secret(&d);
        }
    }
}

/// Installs the hook. Registers the secrets the environment and the
/// command line carry; the config's are added when it is loaded.
pub fn install() {
    for var in ["AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "PGPASSWORD"] {
        if let Ok(v) = std::env::var(var) {
            register_secret(&v);
        }
    }
    for arg in std::env::args().skip(1) {
        register_url_password(&arg);
    }
    std::panic::set_hook(Box::new(|info| {
        let payload = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| (*s).to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "(a non-text panic payload)".into());
        let message = redact(&payload);
        let location = info
            .location()
            .map(|l| format!("{}:{}:{}", l.file(), l.line(), l.column()))
            .unwrap_or_default();
        let current = std::thread::current();
        let thread = current.name().unwrap_or("unnamed");
        if tracing::dispatcher::has_been_set() {
            tracing::error!(
                event = "process.panicked",
                location = %location,
                thread,
                "lethe panicked (a bug; data redacted): {message}"
            );
        } else {
            eprintln!("lethe: panicked at {location} (thread {thread}): {message}");
        }
    }));
}

/// Removes secrets and subject-id-like data from `text` (see the module
/// docs), and cuts it to a bounded length.
pub fn redact(text: &str) -> String {
    let mut s = text.to_string();
    match SECRETS.try_lock() {
        Ok(secrets) => {
            for v in secrets.iter() {
                s = s.replace(v.as_str(), REDACTED);
            }
        }
        Err(std::sync::TryLockError::Poisoned(p)) => {
            for v in p.into_inner().iter() {
                s = s.replace(v.as_str(), REDACTED);
            }
        }
        // A panic while registering a secret: the list is mid-update.
        Err(std::sync::TryLockError::WouldBlock) => {
            return "(message withheld: the secret list was busy)".into();
        }
    }
    let s = url_userinfo(&s);
    let s = quoted_strings(&s);
    let s = words(&s);
    if s.len() > MAX_MESSAGE {
        let mut end = MAX_MESSAGE;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        format!("{}…", &s[..end])
    } else {
        s
    }
}

/// `scheme://user:pass@host` → `scheme://[redacted]@host`.
fn url_userinfo(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find("://") {
        out.push_str(&rest[..i + 3]);
        rest = &rest[i + 3..];
        let end = rest
            .find(|c: char| c == '/' || c == '"' || c == '\'' || c.is_whitespace())
            .unwrap_or(rest.len());
        if let Some(at) = rest[..end].rfind('@') {
            out.push_str(REDACTED);
            rest = &rest[at..];
        }
    }
    out.push_str(rest);
    out
}

/// `"anything"` → `"[redacted]"` (backslash escapes honoured).
fn quoted_strings(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        out.push(c);
        if c != '"' {
            continue;
        }
        let mut closed = false;
        while let Some(d) = chars.next() {
            match d {
                '\\' => {
                    chars.next();
                }
                '"' => {
                    closed = true;
                    break;
                }
                _ => {}
            }
        }
        out.push_str(REDACTED);
        if closed {
            out.push('"');
        }
    }
    out
}

/// Redacts words that look like ids, keys or addresses.
fn words(s: &str) -> String {
    let is_word = |c: char| c.is_alphanumeric() || matches!(c, '-' | '_' | '@' | '.' | '+');
    let mut out = String::with_capacity(s.len());
    let mut word = String::new();
    let flush = |word: &mut String, out: &mut String| {
        if !word.is_empty() {
            if suspicious(word) {
                out.push_str(REDACTED);
            } else {
                out.push_str(word);
            }
            word.clear();
        }
    };
    for c in s.chars() {
        if is_word(c) {
            word.push(c);
        } else {
            flush(&mut word, &mut out);
            out.push(c);
        }
    }
    flush(&mut word, &mut out);
    out
}

fn suspicious(word: &str) -> bool {
    let digits = word.chars().filter(char::is_ascii_digit).count();
    let hex_run = word
        .split(|c: char| !c.is_ascii_hexdigit())
        .map(str::len)
        .max()
        .unwrap_or(0);
    digits >= 4 || word.contains('@') || hex_run >= 16 || word.starts_with("AGE-SECRET-KEY-")
}

/// Panics on purpose when the test hook asks for `place` (see the module
/// docs); `context` builds the message. Only in builds with the
/// `test-hooks` feature; a no-op in every other.
#[track_caller]
pub fn test_panic_point(place: &str, context: impl FnOnce() -> String) {
    if !cfg!(feature = "test-hooks") {
        return;
    }
    let armed = std::env::var("LETHE_TEST_HOOKS").is_ok_and(|v| v == "crash-on-purpose");
    if armed && std::env::var("LETHE_TEST_PANIC").is_ok_and(|v| v == place) {
        let message = context();
        // The hook below is what is being tested: this is the careless bug.
        #[allow(clippy::panic)]
        {
            panic!("test panic at {place}: {message}");
        }
    }
}

#[cfg(test)]
#[path = "panic_tests.rs"]
mod tests;
