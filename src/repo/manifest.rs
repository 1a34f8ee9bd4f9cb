//! The manifest: the one object whose presence makes a snapshot complete.
//! It names every object with its stored size and BLAKE3 checksum, and
//! carries what a filtered restore needs (columns, foreign keys, sequences).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Format version written by this build; newer manifests are refused.
pub const FORMAT_VERSION: u32 = 1;

/// A snapshot id: `YYYYMMDDTHHMMSSZ-xxxx`, sorts by time.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct SnapshotId(String);

impl SnapshotId {
    /// A new id for a snapshot started at `at`.
    pub fn new(at: DateTime<Utc>) -> SnapshotId {
        let suffix: u16 = rand::random();
        SnapshotId(format!("{}-{:04x}", at.format("%Y%m%dT%H%M%SZ"), suffix))
    }

    /// When the snapshot started, from the id itself.
    pub fn started_at(&self) -> DateTime<Utc> {
        chrono::NaiveDateTime::parse_from_str(&self.0[..16], "%Y%m%dT%H%M%SZ")
            .map(|n| n.and_utc())
            .unwrap_or(DateTime::<Utc>::MIN_UTC)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for SnapshotId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for SnapshotId {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        s.parse()
    }
}

impl From<SnapshotId> for String {
    fn from(id: SnapshotId) -> String {
        id.0
    }
}

impl std::str::FromStr for SnapshotId {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let b = s.as_bytes();
        let ok = b.len() == 21
            && b[8] == b'T'
            && b[15] == b'Z'
            && b[16] == b'-'
            && b[..8].iter().chain(&b[9..15]).all(u8::is_ascii_digit)
            && b[17..]
                .iter()
                .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase());
        if ok && chrono::NaiveDateTime::parse_from_str(&s[..16], "%Y%m%dT%H%M%SZ").is_ok() {
            Ok(SnapshotId(s.to_string()))
        } else {
            Err(format!(
                "{s:?} is not a snapshot id (expected e.g. 20261122T130000Z-3f9a, or `latest`)"
            ))
        }
    }
}

/// One stored object: key relative to the repository, stored size and the
/// BLAKE3 of the stored (sealed) bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ObjectEntry {
    pub key: String,
    pub size: u64,
    pub blake3: String,
    /// Uncompressed bytes of the payload.
    pub raw_size: u64,
    /// COPY rows in this object (0 for schema objects).
    pub rows: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Column {
    pub name: String,
    /// `format_type()` of the column, e.g. `bigint`, `uuid`, `text[]`.
    pub type_name: String,
    /// The column default expression, if any (used for ON DELETE SET DEFAULT).
    pub default: Option<String>,
    /// `format_type()` of the type under any domains, e.g. `numeric(12,2)`
    /// for a domain over it: what decides how keys compare. Absent in
    /// manifests written before it was recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_type: Option<String>,
    /// The column's collation is nondeterministic (equal strings may differ
    /// in bytes), so its values cannot be compared as bytes.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub nondeterministic: bool,
    /// A `STORED` generated column a foreign key uses: copied (after every
    /// other column) so the filter can follow the key, never loaded (the
    /// target computes it again).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub generated: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TableEntry {
    pub schema: String,
    pub name: String,
    /// COPY column order (generated columns excluded).
    pub columns: Vec<Column>,
    pub rows: u64,
    pub raw_bytes: u64,
    /// The table's COPY stream, in order; concatenated they are the table.
    pub objects: Vec<ObjectEntry>,
    /// `schema.table` of the tables it is a partition of or inherits from
    /// (`pg_inherits`): a copied table or a partitioned one in `partitioned`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub parents: Vec<String>,
    /// An extension's configuration table (`pg_extension_config_dump`): the
    /// objects hold the rows users added; `CREATE EXTENSION` makes the rest.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub extension_config: bool,
    /// Not a table: the large objects, rows of `(oid, off, data)` (see
    /// `pg::catalog::LO_CHUNK`), loaded with `lo_put` into
    /// the objects pre-data creates.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub large_objects: bool,
}

impl TableEntry {
    /// Generated columns at the end of the COPY stream, which the load
    /// leaves out (see [`Column::generated`]).
    pub fn generated_tail(&self) -> usize {
        self.columns
            .iter()
            .rev()
            .take_while(|c| c.generated)
            .count()
    }

    /// `schema.name`, unquoted.
    pub fn qualified(&self) -> String {
        format!("{}.{}", self.schema, self.name)
    }
}

/// What the database does to referencing rows when the referenced row is deleted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FkAction {
    Cascade,
    Restrict,
    NoAction,
    SetNull,
    SetDefault,
}

impl FkAction {
    /// From `pg_constraint.confdeltype`.
    pub fn from_pg(c: char) -> Option<FkAction> {
        match c {
            'c' => Some(FkAction::Cascade),
            'r' => Some(FkAction::Restrict),
            'a' => Some(FkAction::NoAction),
            'n' => Some(FkAction::SetNull),
            'd' => Some(FkAction::SetDefault),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ForeignKey {
    pub name: String,
    /// Referencing table `schema.table`.
    pub table: String,
    pub columns: Vec<String>,
    /// Referenced table `schema.table`.
    pub ref_table: String,
    pub ref_columns: Vec<String>,
    pub on_delete: FkAction,
    /// For SET NULL / SET DEFAULT with a column list (PostgreSQL 15+); empty
    /// means all of `columns`.
    #[serde(default)]
    pub set_columns: Vec<String>,
    /// What the database does to referencing rows when the referenced key
    /// is updated (`None` in manifests written before it was recorded):
    /// a SET NULL / SET DEFAULT that rewrites a referenced key triggers it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_update: Option<FkAction>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SequenceValue {
    pub schema: String,
    pub name: String,
    pub last_value: i64,
    pub is_called: bool,
}

/// The erasure list as it stood: entry count and order-independent digest.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListState {
    pub count: u64,
    pub digest: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SchemaObjects {
    pub pre: ObjectEntry,
    pub post: ObjectEntry,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub format: u32,
    pub id: SnapshotId,
    pub server_version: String,
    pub database: String,
    pub started_at: DateTime<Utc>,
    pub finished_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    /// `zstd`
    pub compression: String,
    /// Fingerprints of the age recipients; empty means stored unencrypted.
    pub recipients: Vec<String>,
    pub schema: SchemaObjects,
    pub tables: Vec<TableEntry>,
    pub foreign_keys: Vec<ForeignKey>,
    pub sequences: Vec<SequenceValue>,
    /// Erasure list state when the snapshot was taken.
    pub erasure_list: ListState,
    /// Partitioned tables: they hold no rows themselves (their leaf
    /// partitions are in `tables`), but subject roots and foreign keys may
    /// name them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub partitioned: Vec<Relation>,
    /// The source as configured, `host:port/dbname`
    /// (`pg::source_identity`): `latest` and explicit ids
    /// resolve only within the configured source.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// The database's `LC_CTYPE` (`pg_database.datctype`): how `lower()`,
    /// and so `citext`, folds case.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ctype: Option<String>,
    /// Set on a base of continuous capture: the snapshot a replication
    /// slot exported, so the stream's changes from `consistent_lsn` on
    /// continue exactly where this snapshot ends.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub continuous: Option<BaseInfo>,
}

/// Where a base stands in its change stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BaseInfo {
    /// The stream (`changes/<source>/<epoch>/`).
    pub epoch: crate::repo::changes::Epoch,
    /// The snapshot holds every transaction that committed before this
    /// LSN and none after.
    pub consistent_lsn: crate::repo::changes::Lsn,
    /// The slot that exported the snapshot.
    pub slot: String,
    /// A temporary slot (a later base of the epoch) or the stream's own.
    pub temporary: bool,
    /// Tables (`schema.name`) the publication did not carry when the base
    /// was taken (unlogged, or without a replica identity): the stream has
    /// no changes for them, so a point restore gives them as of this base.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub not_captured: Vec<String>,
    /// The schema's digest in the base's snapshot (`pg::digest`): the
    /// capture compares the source's with it, so a schema change the
    /// stream does not show (a foreign key added) is never restored past
    /// in this base's shape. Absent in bases of lethe before 2026-12-07.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema_digest: Option<String>,
}

/// A relation that holds no rows of its own: a partitioned table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Relation {
    pub schema: String,
    pub name: String,
    /// As [`TableEntry::parents`]: set for a partition that is itself partitioned.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub parents: Vec<String>,
}

impl Relation {
    pub fn qualified(&self) -> String {
        format!("{}.{}", self.schema, self.name)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("manifest {key} is not valid JSON for this format: {message}")]
    Parse { key: String, message: String },
    #[error(
        "manifest {key} has format {found}, newer than this lethe understands ({FORMAT_VERSION}); upgrade lethe to read it"
    )]
    TooNew { key: String, found: u32 },
    #[error("manifest {key} is inconsistent: {message}")]
    Inconsistent { key: String, message: String },
}

impl Manifest {
    /// The tables and keys of a live database as a manifest with no data
    /// (id `source`): what `lethe config check` and `lethe erasure map
    /// --source` plan against before any snapshot holds the schema.
    pub fn of_catalog(c: &crate::pg::Catalog) -> Manifest {
        let now = Utc::now();
        let none = || ObjectEntry {
            key: String::new(),
            size: 0,
            blake3: String::new(),
            raw_size: 0,
            rows: 0,
        };
        Manifest {
            format: FORMAT_VERSION,
            id: SnapshotId("source".into()),
            server_version: c.server_version.clone(),
            database: c.database.clone(),
            started_at: now,
            finished_at: now,
            expires_at: now,
            compression: "zstd".into(),
            recipients: Vec::new(),
            schema: SchemaObjects {
                pre: none(),
                post: none(),
            },
            tables: c
                .tables
                .iter()
                .map(|t| TableEntry {
                    schema: t.schema.clone(),
                    name: t.name.clone(),
                    columns: t.columns.clone(),
                    rows: 0,
                    raw_bytes: 0,
                    objects: Vec::new(),
                    parents: t.parents.clone(),
                    extension_config: t.extension_rows.is_some(),
                    large_objects: t.large_objects,
                })
                .collect(),
            foreign_keys: c.foreign_keys.clone(),
            sequences: Vec::new(),
            erasure_list: ListState::default(),
            partitioned: c.partitioned.clone(),
            source: None,
            ctype: Some(c.ctype.clone()),
            continuous: None,
        }
    }

    /// Parses and checks a manifest read from `key`.
    ///
    /// # Errors
    /// Bad JSON, a newer format, or object keys outside the snapshot.
    pub fn from_json(key: &str, data: &[u8]) -> Result<Manifest, ManifestError> {
        #[derive(Deserialize)]
        struct Version {
            format: u32,
        }
        let v: Version = serde_json::from_slice(data).map_err(|e| ManifestError::Parse {
            key: key.to_string(),
            message: e.to_string(),
        })?;
        if v.format > FORMAT_VERSION {
            return Err(ManifestError::TooNew {
                key: key.to_string(),
                found: v.format,
            });
        }
        let m: Manifest = serde_json::from_slice(data).map_err(|e| ManifestError::Parse {
            key: key.to_string(),
            message: e.to_string(),
        })?;
        let own = format!("snapshots/{}/", m.id);
        for o in m.objects() {
            if !o.key.starts_with(&own) || crate::storage::validate_key(&o.key).is_err() {
                return Err(ManifestError::Inconsistent {
                    key: key.to_string(),
                    message: format!("object key {:?} is outside {own}", o.key),
                });
            }
        }
        Ok(m)
    }

    /// Pretty JSON for storage.
    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec_pretty(self).expect("manifest serialises")
    }

    /// Every object the manifest names: schema first, then table data.
    pub fn objects(&self) -> impl Iterator<Item = &ObjectEntry> {
        [&self.schema.pre, &self.schema.post]
            .into_iter()
            .chain(self.tables.iter().flat_map(|t| t.objects.iter()))
    }

    pub fn total_rows(&self) -> u64 {
        self.tables.iter().map(|t| t.rows).sum()
    }

    pub fn stored_bytes(&self) -> u64 {
        self.objects().map(|o| o.size).sum()
    }

    pub fn raw_bytes(&self) -> u64 {
        self.objects().map(|o| o.raw_size).sum()
    }
}

#[cfg(test)]
#[path = "manifest_tests.rs"]
mod tests;
