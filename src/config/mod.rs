//! Configuration: the TOML file, its defaults, and the validation that names
//! the offending key, its value and what would be valid.

mod residency;

pub use residency::{EU_REGIONS, check_region, is_loopback_host};

use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Where the config is read from when `--config` and `LETHE_CONFIG` are absent.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/lethe/lethe.toml";

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub source: SourceConfig,
    pub storage: StorageConfig,
    pub schedule: ScheduleConfig,
    pub retention: RetentionConfig,
    pub snapshot: SnapshotConfig,
    pub encryption: EncryptionConfig,
    pub erasure: ErasureConfig,
    pub api: ApiConfig,
    pub log: LogConfig,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct SourceConfig {
    /// libpq-style URL; the password comes from PGPASSFILE or the environment.
    pub url: String,
    /// Parallel COPY workers sharing one exported snapshot.
    pub jobs: usize,
    /// Directory holding `pg_dump`/`psql`; empty means `$PATH`.
    pub bin_dir: Option<PathBuf>,
}

impl Default for SourceConfig {
    fn default() -> Self {
        Self {
            url: "postgres://postgres@127.0.0.1:5432/postgres".into(),
            jobs: 4,
            bin_dir: None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ChecksumMode {
    /// Send a CRC checksum with every upload (the SDK default; Garage, AWS).
    Always,
    /// Only where the API requires one: for stores that reject the SDK's
    /// checksum headers (older OVHcloud, Linode). The manifest's BLAKE3
    /// checksums still guard every object.
    WhenRequired,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct StorageConfig {
    /// `s3://bucket/prefix` or `file:///path`.
    pub url: String,
    /// S3 endpoint; omitted means AWS.
    pub endpoint: Option<String>,
    pub region: String,
    pub path_style: bool,
    /// Regions accepted in addition to the built-in EU allow-list.
    pub allowed_regions: Vec<String>,
    pub checksum: ChecksumMode,
    /// Multipart parts uploaded concurrently per object.
    pub parts_in_flight: usize,
}

impl Default for StorageConfig {
    fn default() -> Self {
        Self {
            url: "file:///var/lib/lethe/repo".into(),
            endpoint: None,
            region: "eu-central-1".into(),
            path_style: false,
            allowed_regions: Vec::new(),
            checksum: ChecksumMode::Always,
            parts_in_flight: 4,
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ScheduleConfig {
    /// Interval between snapshots, e.g. `1h`, `15m`. The 1h default applies
    /// only when `[schedule]` is absent: a section that sets just `cron`
    /// must not also inherit `every`.
    #[serde(with = "humantime_opt", default)]
    pub every: Option<Duration>,
    /// Cron expression (5 fields, UTC); exclusive with `every`.
    pub cron: Option<String>,
}

impl Default for ScheduleConfig {
    fn default() -> Self {
        Self {
            every: Some(Duration::from_secs(3600)),
            cron: None,
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetentionConfig {
    pub days: u32,
}

impl Default for RetentionConfig {
    fn default() -> Self {
        Self { days: 35 }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct SnapshotConfig {
    /// zstd level, 1..=19.
    pub zstd_level: i32,
    /// A table's COPY stream is cut into a new object after this many raw bytes.
    pub object_bytes: u64,
}

impl Default for SnapshotConfig {
    fn default() -> Self {
        Self {
            zstd_level: 3,
            object_bytes: 1 << 30,
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct EncryptionConfig {
    /// age X25519 public keys (`age1…`). The daemon needs nothing more.
    pub recipients: Vec<String>,
    /// The age identity, only on hosts that restore.
    pub identity_file: Option<PathBuf>,
    /// Explicitly store plaintext. Logged as a warning at every start.
    pub disabled: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SubjectType {
    Bigint,
    Uuid,
    Text,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SubjectRoot {
    /// `schema.table`, as psql spells it (`"app.v2".users`).
    pub table: String,
    pub column: String,
    /// The column is a natural key that can come back (an e-mail erased,
    /// later registered again by a new account): an erasure applies only to
    /// snapshots taken before it plus `erasure.reuse_grace`; a later
    /// snapshot holding the key is kept and reported by the leak check.
    /// Surrogate ids that are never reused should leave this `false`.
    #[serde(default)]
    pub reusable: bool,
    /// The subject these rows are (`customer`, `employee`): ids are listed
    /// per subject (`lethe erase add --subject customer 7`), so customer 7
    /// and employee 7 are different people. Unset: the one unnamed subject
    /// (what every list held before names existed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
}

/// A column holding the oids of large objects that belong to its row: a
/// dropped row's large objects are dropped with it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct LargeObjectRef {
    /// `schema.table`, as psql spells it.
    pub table: String,
    pub column: String,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ErasureConfig {
    /// RocksDB directory.
    pub path: PathBuf,
    pub subject_type: SubjectType,
    /// Root tables whose rows are subjects; foreign keys are followed from here.
    pub subjects: Vec<SubjectRoot>,
    /// For `reusable` roots: how long after an erasure a snapshot may still
    /// hold the erased row (the application deletes it after calling
    /// `lethe erase`), so the erasure still applies to it.
    #[serde(with = "humantime_serde_dur")]
    pub reuse_grace: Duration,
    /// Columns holding large objects owned by their row.
    pub large_objects: Vec<LargeObjectRef>,
}

impl ErasureConfig {
    /// The subject names the roots use (`None` for the unnamed subject),
    /// sorted, each once.
    pub fn subject_names(&self) -> Vec<Option<String>> {
        let mut v: Vec<Option<String>> = self.subjects.iter().map(|s| s.subject.clone()).collect();
        v.sort();
        v.dedup();
        v
    }
}

impl Default for ErasureConfig {
    fn default() -> Self {
        Self {
            path: "/var/lib/lethe/erasure".into(),
            subject_type: SubjectType::Bigint,
            subjects: vec![SubjectRoot {
                table: "public.users".into(),
                column: "id".into(),
                reusable: false,
                subject: None,
            }],
            reuse_grace: Duration::from_secs(24 * 3600),
            large_objects: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ApiConfig {
    /// `unix:/path/to.sock` or `tcp:127.0.0.1:PORT` (loopback only).
    pub listen: String,
    /// Bearer token file for the TCP listener (must not be group/world readable).
    pub token_file: Option<PathBuf>,
}

impl Default for ApiConfig {
    fn default() -> Self {
        Self {
            listen: "unix:/run/lethe/api.sock".into(),
            token_file: None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    Json,
    Text,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    pub format: LogFormat,
    /// tracing filter directive, e.g. `info` or `lethe=debug`.
    pub level: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            format: LogFormat::Json,
            level: "info".into(),
        }
    }
}

/// One problem found in a config: the key, the value, and what would be valid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key} = {value}: {message}")]
pub struct ConfigIssue {
    pub key: String,
    pub value: String,
    pub message: String,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}; pass --config FILE or set LETHE_CONFIG")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path} is not valid: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("config file {path} has {} problem(s):\n  {}", issues.len(), issues.iter().map(|i| i.to_string()).collect::<Vec<_>>().join("\n  "))]
    Invalid {
        path: PathBuf,
        issues: Vec<ConfigIssue>,
    },
}

/// Picks the config path: `--config`, else `LETHE_CONFIG`, else the default.
pub fn resolve_path(flag: Option<&Path>) -> PathBuf {
    if let Some(p) = flag {
        return p.to_path_buf();
    }
    match std::env::var_os("LETHE_CONFIG") {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => PathBuf::from(DEFAULT_CONFIG_PATH),
    }
}

impl Config {
    /// Reads, parses and validates a config file.
    ///
    /// # Errors
    /// Unreadable file, TOML or type errors (unknown keys included), and every
    /// validation issue at once.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let cfg = Self::parse(&text).map_err(|message| ConfigError::Parse {
            path: path.to_path_buf(),
            message,
        })?;
        let issues = cfg.validate();
        if issues.is_empty() {
            Ok(cfg)
        } else {
            Err(ConfigError::Invalid {
                path: path.to_path_buf(),
                issues,
            })
        }
    }

    /// Parses TOML without validating.
    pub fn parse(text: &str) -> Result<Config, String> {
        toml::from_str(text).map_err(|e| e.to_string().trim_end().replace('\n', " "))
    }

    /// Every problem in the config, each naming its key. Empty means valid.
    pub fn validate(&self) -> Vec<ConfigIssue> {
        let mut out = Vec::new();
        let mut issue = |key: &str, value: &dyn std::fmt::Display, message: &str| {
            out.push(ConfigIssue {
                key: key.into(),
                value: value.to_string(),
                message: message.into(),
            })
        };
        if self.source.jobs == 0 || self.source.jobs > 64 {
            issue("source.jobs", &self.source.jobs, "must be between 1 and 64");
        }
        if !(self.source.url.starts_with("postgres://")
            || self.source.url.starts_with("postgresql://"))
        {
            issue(
                "source.url",
                &redact_url(&self.source.url),
                "must be a postgres:// or postgresql:// URL",
            );
        }
        match crate::storage::StorageUrl::parse(&self.storage.url) {
            Err(e) => issue("storage.url", &self.storage.url, &e),
            Ok(crate::storage::StorageUrl::S3 { .. }) => {
                if let Err(e) = check_region(&self.storage.region, &self.storage.allowed_regions) {
                    issue("storage.region", &self.storage.region, &e);
                }
                if let Some(ep) = &self.storage.endpoint
                    && let Err(e) = check_endpoint(ep)
                {
                    issue("storage.endpoint", ep, &e);
                }
            }
            Ok(crate::storage::StorageUrl::File { .. }) => {}
        }
        if self.storage.parts_in_flight == 0 || self.storage.parts_in_flight > 32 {
            issue(
                "storage.parts_in_flight",
                &self.storage.parts_in_flight,
                "must be between 1 and 32",
            );
        }
        match (&self.schedule.every, &self.schedule.cron) {
            (Some(_), Some(_)) => issue(
                "schedule.cron",
                &self.schedule.cron.clone().unwrap_or_default(),
                "set either schedule.every or schedule.cron, not both",
            ),
            (None, None) => issue(
                "schedule.every",
                &"(unset)",
                "set schedule.every (e.g. \"1h\") or schedule.cron",
            ),
            (Some(d), None) if *d < Duration::from_secs(1) => issue(
                "schedule.every",
                &humantime::format_duration(*d),
                "must be at least 1s",
            ),
            (None, Some(expr)) => {
                if let Err(e) = crate::schedule::parse_cron(expr) {
                    issue("schedule.cron", expr, &e);
                }
            }
            _ => {}
        }
        if self.retention.days == 0 || self.retention.days > 3650 {
            issue(
                "retention.days",
                &self.retention.days,
                "must be between 1 and 3650 (the promise is 35)",
            );
        }
        if !(1..=19).contains(&self.snapshot.zstd_level) {
            issue(
                "snapshot.zstd_level",
                &self.snapshot.zstd_level,
                "must be between 1 and 19 (3 is the default)",
            );
        }
        if self.snapshot.object_bytes < (1 << 20) {
            issue(
                "snapshot.object_bytes",
                &self.snapshot.object_bytes,
                "must be at least 1048576 (1 MiB)",
            );
        }
        if self.encryption.disabled {
            if !self.encryption.recipients.is_empty() {
                issue(
                    "encryption.disabled",
                    &true,
                    "recipients are set too: remove encryption.disabled or the recipients",
                );
            }
        } else if self.encryption.recipients.is_empty() {
            issue(
                "encryption.recipients",
                &"[]",
                "no recipients: add an age public key from `lethe keygen`, or set encryption.disabled = true to store plaintext",
            );
        } else {
            for (i, r) in self.encryption.recipients.iter().enumerate() {
                if let Err(e) = crate::crypto::parse_recipient(r) {
                    issue(&format!("encryption.recipients[{i}]"), r, &e.to_string());
                }
            }
        }
        if self.erasure.subjects.is_empty() {
            issue(
                "erasure.subjects",
                &"[]",
                "name at least one root, e.g. { table = \"public.users\", column = \"id\" }",
            );
        }
        for (i, s) in self.erasure.subjects.iter().enumerate() {
            if let Err(e) = parse_table(&s.table) {
                issue(&format!("erasure.subjects[{i}].table"), &s.table, &e);
            }
            if let Some(name) = &s.subject
                && !crate::erasure::subject::valid_subject_name(name)
            {
                issue(
                    &format!("erasure.subjects[{i}].subject"),
                    name,
                    "must be a lower-case word: a-z first, then a-z, 0-9 or _ (at most 63)",
                );
            }
            if s.column.is_empty() {
                issue(
                    &format!("erasure.subjects[{i}].column"),
                    &"\"\"",
                    "must name a column",
                );
            }
        }
        for (i, r) in self.erasure.large_objects.iter().enumerate() {
            if let Err(e) = parse_table(&r.table) {
                issue(&format!("erasure.large_objects[{i}].table"), &r.table, &e);
            }
        }
        if let Some(addr) = self.api.listen.strip_prefix("tcp:") {
            match addr.parse::<std::net::SocketAddr>() {
                Ok(a) if a.ip().is_loopback() => {
                    if self.api.token_file.is_none() {
                        issue(
                            "api.token_file",
                            &"(unset)",
                            "a TCP listener needs a bearer token file",
                        );
                    }
                }
                _ => issue(
                    "api.listen",
                    &self.api.listen,
                    "TCP listeners must be a loopback address with a port, e.g. tcp:127.0.0.1:7878",
                ),
            }
        } else if !self.api.listen.starts_with("unix:/") {
            issue(
                "api.listen",
                &self.api.listen,
                "must be unix:/absolute/path.sock or tcp:127.0.0.1:PORT",
            );
        }
        if tracing_subscriber::EnvFilter::try_new(&self.log.level).is_err() {
            issue(
                "log.level",
                &self.log.level,
                "must be a level (error, warn, info, debug, trace) or a tracing directive",
            );
        }
        out
    }
}

/// Refuses plain-HTTP endpoints unless they are on loopback.
pub fn check_endpoint(endpoint: &str) -> Result<(), String> {
    let url = url::Url::parse(endpoint)
        .map_err(|e| format!("not a URL ({e}); use https://host[:port]"))?;
    match url.scheme() {
        "https" => Ok(()),
        "http" if url.host_str().is_some_and(is_loopback_host) => Ok(()),
        "http" => Err(
            "plain HTTP to a remote endpoint is refused (data in transit must be encrypted); use https://"
                .into(),
        ),
        other => Err(format!("scheme {other}:// is not supported; use https://")),
    }
}

/// Hides the password in a connection URL for messages and logs.
/// A schema-qualified table name as `psql` spells it: `public.users`, or
/// with double quotes around a part that holds a dot, a quote or capitals
/// as created (`"app.v2".users`, `"Sales"."Order ""X"""`). Unquoted parts
/// are taken as written. Returns `(schema, table)`.
///
/// # Errors
/// Not two non-empty parts, or an unterminated quote: the message says what
/// is expected.
pub fn parse_table(s: &str) -> Result<(String, String), String> {
    let mut parts = Vec::new();
    let mut chars = s.chars().peekable();
    loop {
        let mut part = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            loop {
                match chars.next() {
                    Some('"') if chars.peek() == Some(&'"') => {
                        chars.next();
                        part.push('"');
                    }
                    Some('"') => break,
                    Some(c) => part.push(c),
                    None => {
                        return Err(
                            "has an unterminated double quote; spell it as psql does, e.g. \"app.v2\".users".into(),
                        );
                    }
                }
            }
            if !matches!(chars.peek(), None | Some('.')) {
                return Err("has text right after a closing double quote; separate schema and table with a dot, e.g. \"app.v2\".users".into());
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c == '.' {
                    break;
                }
                if c == '"' {
                    return Err("has a double quote inside a name; quote the whole part, e.g. \"app.v2\".users".into());
                }
                part.push(c);
                chars.next();
            }
        }
        if part.is_empty() {
            return Err("must be schema-qualified, e.g. \"public.users\" (or \"\\\"app.v2\\\".users\" for a schema with a dot)".into());
        }
        parts.push(part);
        match chars.next() {
            Some('.') => continue,
            None => break,
            Some(_) => unreachable!("a part ends at a dot or the end"),
        }
    }
    match <[String; 2]>::try_from(parts) {
        Ok([schema, table]) => Ok((schema, table)),
        Err(_) => Err("must be schema-qualified, e.g. \"public.users\"; quote a part that holds a dot, e.g. \"\\\"app.v2\\\".users\"".into()),
    }
}

pub fn redact_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        _ => url.to_string(),
    }
}

/// Reads a secret file, refusing it when group or others can read it.
///
/// # Errors
/// Missing or unreadable file, or loose permissions.
pub fn read_secret_file(path: &Path) -> Result<String, String> {
    use std::os::unix::fs::PermissionsExt;
    let meta =
        std::fs::metadata(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let mode = meta.permissions().mode();
    if mode & 0o077 != 0 {
        return Err(format!(
            "{} is readable by group or others (mode {:o}); run chmod 600 {}",
            path.display(),
            mode & 0o777,
            path.display()
        ));
    }
    std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))
}

mod humantime_serde_dur {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&humantime::format_duration(*d).to_string())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let s = String::deserialize(d)?;
        humantime::parse_duration(&s).map_err(|e| {
            serde::de::Error::custom(format!(
                "invalid duration {s:?} ({e}); use e.g. \"12h\", \"7d\""
            ))
        })
    }
}

mod humantime_opt {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.serialize_str(&humantime::format_duration(*d).to_string()),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        let s = String::deserialize(d)?;
        humantime::parse_duration(&s).map(Some).map_err(|e| {
            serde::de::Error::custom(format!(
                "invalid duration {s:?} ({e}); use e.g. \"30s\", \"15m\", \"1h\""
            ))
        })
    }
}

#[cfg(test)]
mod tests;
