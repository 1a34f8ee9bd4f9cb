//! Configuration: the TOML file, its defaults, and the validation that names
//! the offending key, its value and what would be valid.

pub use crate::continuous::ContinuousConfig;
pub use crate::crypto::EncryptionConfig;
pub use crate::drill_config::DrillConfig;
pub use crate::erasure::config::{
    ApiConfig, ErasureConfig, LargeObjectRef, SubjectRoot, SubjectType,
};
pub use crate::pg::{SourceConfig, parse_table};
pub use crate::repo::evidence::EvidenceConfig;
pub use crate::residency::{EU_REGIONS, check_endpoint, check_region, is_loopback_host};
pub use crate::retention::RetentionConfig;
pub use crate::schedule::ScheduleConfig;
pub use crate::secrets::{read_secret_file, redact_url};
pub use crate::storage::{ChecksumMode, StorageConfig};
pub use crate::telemetry::metrics::MetricsConfig;
pub use crate::telemetry::{LogConfig, LogFormat};

mod keys;

use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

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
    pub continuous: ContinuousConfig,
    pub encryption: EncryptionConfig,
    pub erasure: ErasureConfig,
    pub api: ApiConfig,
    pub evidence: EvidenceConfig,
    pub drill: DrillConfig,
    pub metrics: MetricsConfig,
    pub log: LogConfig,
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
        let cfg = Self::parse(&text).map_err(|message| {
            // serde names only the first unknown key: name them all.
            let issues = keys::unknown_keys(&text);
            if issues.is_empty() {
                ConfigError::Parse {
                    path: path.to_path_buf(),
                    message,
                }
            } else {
                ConfigError::Invalid {
                    path: path.to_path_buf(),
                    issues,
                }
            }
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
        if let Err(e) = crate::schedule::Schedule::check(&self.schedule) {
            issue(e.key, &e.value, &e.message);
        }
        if self.retention.days == 0 || self.retention.days > 3650 {
            issue(
                "retention.days",
                &self.retention.days,
                "must be between 1 and 3650 (the promise is 35)",
            );
        }
        for (key, message) in self.drill.check() {
            let value = match key {
                "drill.every" => self.drill.every.clone().unwrap_or_default(),
                _ => self
                    .drill
                    .target
                    .as_deref()
                    .map(redact_url)
                    .unwrap_or_else(|| "(unset)".into()),
            };
            issue(key, &value, &message);
        }
        if let Err(e) = self.metrics.addr() {
            issue(
                "metrics.listen",
                &self.metrics.listen.as_deref().unwrap_or_default(),
                &e,
            );
        }
        if self.evidence.keep_days < self.retention.days || self.evidence.keep_days > 36_500 {
            issue(
                "evidence.keep_days",
                &self.evidence.keep_days,
                "must be at least retention.days (evidence outlives the backups it describes) and at most 36500; the default is 1825 (5 years)",
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
        for i in self.continuous.check(self.retention.days) {
            issue(i.key, &i.value, &i.message);
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
        for p in crate::erasure::policy::check(
            &self.erasure.policy,
            &self.erasure.reference,
            self.erasure.pseudonym_key_file.is_some(),
        ) {
            issue(&p.key, &p.value, &p.message);
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
        if let Err(e) = crate::telemetry::check_level(&self.log.level) {
            issue("log.level", &format!("{:?}", self.log.level), &e);
        }
        out
    }
}

#[cfg(test)]
mod tests;
