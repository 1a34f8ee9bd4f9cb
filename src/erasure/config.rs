//! The `[erasure]` and `[api]` sections: the list, the subject roots the
//! filter starts from, and where the list's API listens.

use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::time::Duration;

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
    #[serde(with = "crate::units::humantime_serde_dur")]
    pub reuse_grace: Duration,
    /// Columns holding large objects owned by their row.
    pub large_objects: Vec<LargeObjectRef>,
    /// `[[erasure.policy]]`: per table, what happens to an erased
    /// subject's rows (drop, redact, keep).
    pub policy: Vec<super::policy::TablePolicy>,
    /// `[[erasure.reference]]`: references the schema does not declare.
    pub reference: Vec<super::policy::DeclaredReference>,
    /// The key `pseudonym` redactions hash with (`lethe keygen
    /// --pseudonym-key`); refused when group or others can read it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pseudonym_key_file: Option<PathBuf>,
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
            policy: Vec::new(),
            reference: Vec::new(),
            pseudonym_key_file: None,
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
