//! What a restore plan is made of: per table, what the filter does to its
//! rows ([`TablePlan`] with its checks and key forms); the components and
//! the order they are filtered in; and what planning can refuse.
//! The filter reads these; `plan` builds them.

use crate::restore::keys::KeyForm;

/// What a field becomes when a `SET NULL` / `SET DEFAULT` reference is rewritten.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Replacement {
    Null,
    /// The column default as COPY text (already escaped).
    Value(Vec<u8>),
    /// A default not evaluated yet (`--dry-run` counts rows without it;
    /// writing such a row is refused).
    Unresolved(String),
    /// A redaction's keyed hash of the value the field held (NULL stays
    /// NULL), spelled for the column's type.
    Pseudonym(crate::erasure::pseudonym::PseudonymKind),
}

/// What happens to a row that belongs to an erased subject: its root
/// value is listed, or a check whose effect is [`Effect::Hit`] matched.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Action {
    /// The row goes, and its keys go into the table's record sets (what
    /// the foreign keys' rules do; `drop` policies and tables without one).
    #[default]
    Drop,
    /// The row stays with these columns overwritten (a `redact` policy);
    /// its keys stay, so rows referencing it keep their references. Its
    /// keys go into the record sets all the same: there they mean "an
    /// erased subject's row", which only tables with a policy of their own
    /// check against (see `plan`).
    Redact(Vec<(usize, Replacement)>),
    /// The row stays as it is (a `keep` policy), counted in the report; its
    /// keys are recorded as for `Redact`.
    Keep,
}

/// A table's configured policy, for reports and the erasure map.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyNote {
    pub action: crate::erasure::policy::PolicyAction,
    pub reason: Option<String>,
    /// The redacted columns by name, with what they get as configured.
    pub set: Vec<(String, String)>,
}

/// What a hit on a foreign-key check does to the child row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    /// The row is the erased subject's (CASCADE, RESTRICT, NO ACTION, a
    /// declared reference that drops, or any owning key into a table with
    /// a policy): the table's [`Action`] applies.
    Hit,
    /// SET NULL / SET DEFAULT: these columns get these values.
    Rewrite(Vec<(usize, Replacement)>),
    /// ON UPDATE RESTRICT / NO ACTION under a rewritten key: PostgreSQL
    /// would refuse the delete, so the restore stops.
    Refuse,
}

/// Which set a foreign-key check looks its key up in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SetRef {
    /// The union of these `(table, record slot)` sets (indexes in the plan's
    /// tables): one for a plain table, one per partition for a key that
    /// references a partitioned table.
    Dropped(Vec<(usize, usize)>),
    /// The erasure list itself, via `key_of`: a self-reference to the root
    /// column whose rows are dropped only for being listed.
    Root,
}

/// One foreign key of a child table, tested against its parent's dropped set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FkCheck {
    pub name: String,
    /// Referencing columns (COPY field indexes).
    pub columns: Vec<usize>,
    pub set: SetRef,
    pub effect: Effect,
    /// For a declared reference into a json/jsonb column: the path of the
    /// key inside the document (`columns` is then that one column).
    pub path: Option<crate::jsonpath::JsonPath>,
    /// A declared reference's `on_erase = "redact"` (its rewrite is a
    /// redaction, counted as one, and never a SET DEFAULT).
    pub redacts: bool,
}

/// What the filter does to one table's rows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TablePlan {
    /// `schema.table`, for messages.
    pub table: String,
    /// Columns in the COPY stream.
    pub ncols: usize,
    /// Root subject columns: a listed value drops the row.
    pub roots: Vec<usize>,
    pub fks: Vec<FkCheck>,
    /// Column tuples referenced by other tables' foreign keys: when a row is
    /// dropped, the key of each tuple goes into the set of that slot.
    pub records: Vec<Vec<usize>>,
    /// How the values of roots, records and checks are spelled before they
    /// are keyed (`keys`); empty means every value as it is.
    pub forms: KeyForms,
    /// Column tuples referenced by other tables' keys whose ON UPDATE
    /// action applies: when a kept row's SET NULL / SET DEFAULT rewrites
    /// one of them, its old key goes into set `records.len() + i`.
    pub rewrites: Vec<Vec<usize>>,
    /// What happens to the rows of erased subjects.
    pub action: Action,
    /// The configured policy, if any (`Action::Drop` without one).
    pub policy: Option<PolicyNote>,
}

/// Per key of a [`TablePlan`], the [`KeyForm`] of each of its columns; an
/// empty list (or a missing entry) means all [`KeyForm::Plain`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyForms {
    pub roots: Vec<KeyForm>,
    /// Per root: a reusable natural key, looked up among the erasures that
    /// apply to this snapshot only (`keys::reuse_key`).
    pub reusable: Vec<bool>,
    /// Per root: the named subject its ids belong to (`None`: unnamed),
    /// looked up under `erasure::subject::subject_key`.
    pub subjects: Vec<Option<String>>,
    pub records: Vec<Vec<KeyForm>>,
    pub fks: Vec<Vec<KeyForm>>,
    pub rewrites: Vec<Vec<KeyForm>>,
}

impl KeyForms {
    fn pick(v: Option<&Vec<KeyForm>>) -> Option<Vec<KeyForm>> {
        v.filter(|f| f.iter().any(|&k| k != KeyForm::Plain))
            .cloned()
    }
    /// The forms of record slot `i`, `None` when all plain.
    pub fn record(&self, i: usize) -> Option<Vec<KeyForm>> {
        Self::pick(self.records.get(i))
    }
    /// The forms of rewrite slot `i`, `None` when all plain.
    pub fn rewrite(&self, i: usize) -> Option<Vec<KeyForm>> {
        Self::pick(self.rewrites.get(i))
    }
    /// The forms of check `i`, `None` when all plain.
    pub fn fk(&self, i: usize) -> Option<Vec<KeyForm>> {
        Self::pick(self.fks.get(i))
    }
    pub fn root(&self, i: usize) -> KeyForm {
        self.roots.get(i).copied().unwrap_or(KeyForm::Plain)
    }
    pub fn subject(&self, i: usize) -> Option<&str> {
        self.subjects.get(i).and_then(Option::as_deref)
    }
    pub fn reusable(&self, i: usize) -> bool {
        self.reusable.get(i).copied().unwrap_or(false)
    }
}

impl TablePlan {
    /// True when no row can be touched and nothing is recorded: rows are
    /// counted and passed through untouched.
    /// Sets this table records into: dropped keys, then rewritten keys.
    pub fn sets(&self) -> usize {
        self.records.len() + self.rewrites.len()
    }

    pub fn is_passthrough(&self) -> bool {
        self.roots.is_empty() && self.fks.is_empty()
    }

    pub(crate) fn max_col(&self) -> Option<usize> {
        let fk = self.fks.iter().flat_map(|f| {
            f.columns.iter().copied().chain(match &f.effect {
                Effect::Hit | Effect::Refuse => Vec::new(),
                Effect::Rewrite(r) => r.iter().map(|(c, _)| *c).collect(),
            })
        });
        let redacted = match &self.action {
            Action::Redact(entries) => entries.iter().map(|(c, _)| *c).collect(),
            Action::Drop | Action::Keep => Vec::new(),
        };
        self.roots
            .iter()
            .copied()
            .chain(fk)
            .chain(redacted)
            .chain(self.records.iter().flatten().copied())
            .chain(self.rewrites.iter().flatten().copied())
            .max()
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PlanError {
    #[error(
        "{key} names table {table}, which is not in snapshot {snapshot}; fix the config (tables in the snapshot: {available})"
    )]
    UnknownTable {
        key: String,
        table: String,
        snapshot: String,
        available: String,
    },
    #[error(
        "{key} names column {column} of {table}, which has no such column (columns: {available})"
    )]
    UnknownColumn {
        key: String,
        table: String,
        column: String,
        available: String,
    },
    #[error(
        "{key}: {table}.{column} is part of a key that {referenced_by} references; a redaction keeps the row's keys so that references to it stay valid: redact other columns, or drop the row"
    )]
    RedactKey {
        key: String,
        table: String,
        column: String,
        referenced_by: String,
    },
    #[error(
        "{key}: {table}.{column} is a generated column; PostgreSQL computes it, so it cannot be redacted: redact the columns it is computed from"
    )]
    RedactGenerated {
        key: String,
        table: String,
        column: String,
    },
    #[error("{key}: {table}.{column} cannot hold a pseudonym: {message}")]
    PseudonymType {
        key: String,
        table: String,
        column: String,
        message: String,
    },
    #[error(
        "{key}: {fk} makes rows of {child} belong to rows of {parent}, which a restore drops for an erased subject, but the policy {action}s the rows of {child}: the kept rows would reference rows that are gone. Either give {parent} a redact or keep policy too (its rows then stay), or make the policy of {child} drop (or the key ON DELETE SET NULL)"
    )]
    Dangling {
        key: String,
        fk: String,
        child: String,
        parent: String,
        action: String,
    },
    #[error(
        "{key}: {table}.{column} is of type {type_name}; a path can only be followed inside a json or jsonb column"
    )]
    PathType {
        key: String,
        table: String,
        column: String,
        type_name: String,
    },
    #[error(
        "erasure.subjects names table {table}, which is not in snapshot {snapshot}; fix the config (tables in the snapshot: {available})"
    )]
    UnknownRoot {
        table: String,
        snapshot: String,
        available: String,
    },
    #[error(
        "erasure.subjects names column {column} of {table}, which has no such column in snapshot {snapshot} (columns: {available})"
    )]
    UnknownRootColumn {
        table: String,
        column: String,
        snapshot: String,
        available: String,
    },
    #[error(
        "erasure.subjects column {table}.{column} is of type {type_name}, which lethe cannot match exactly against erasure.subject_type = {subject_type} ids (bigint ids match integer and numeric columns without a scale; uuid ids uuid and text columns; text ids text, varchar, char and citext columns); name the right column or set subject_type to match it"
    )]
    RootType {
        table: String,
        column: String,
        type_name: String,
        subject_type: String,
    },
    #[error(
        "foreign key {fk} compares {column} with {ref_column}; lethe cannot compare these types as PostgreSQL does, so it refuses to restore rather than risk bringing erased rows back or dropping kept ones (use integer, numeric, text, varchar, char, citext or uuid keys, or keys of one identical type)"
    )]
    KeyType {
        fk: String,
        /// `schema.table.column (type)` of the referencing side.
        column: String,
        /// The same of the referenced side.
        ref_column: String,
    },
    #[error(
        "foreign key {fk} on {table} references {ref_table} ({column}), which an ON DELETE SET NULL / SET DEFAULT rewrites when an erased row goes; PostgreSQL would then apply {fk}'s ON UPDATE action, which this snapshot did not record (taken by an older lethe), so lethe refuses to restore rather than leave references to erased rows; take a new snapshot"
    )]
    UpdateNotModelled {
        fk: String,
        table: String,
        ref_table: String,
        column: String,
    },
    #[error(
        "foreign key {fk} on {table} is ON DELETE SET DEFAULT, and its default {value} is itself an erased subject; PostgreSQL would refuse to delete the rows it references, so lethe refuses the restore: change the default, or the key to SET NULL or CASCADE"
    )]
    DefaultErased {
        fk: String,
        table: String,
        value: String,
    },
    #[error(
        "foreign key {fk} on {table} uses column {column}, which is not in the snapshot's data for that table (a generated column?); lethe cannot follow it, so it refuses to restore rather than risk bringing erased rows back"
    )]
    FkColumn {
        fk: String,
        table: String,
        column: String,
    },
}

/// How often a component is read before it is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PrePass {
    /// No internal references: filtered and written in one pass.
    None,
    /// Internal SET NULL / SET DEFAULT references only: one recording pass
    /// settles the dropped sets.
    Once,
    /// Internal CASCADE-like references: recording passes until no set grows.
    UntilStable,
}

/// Tables filtered together: one table, or a foreign-key cycle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Component {
    /// Manifest table indexes, in manifest order.
    pub tables: Vec<usize>,
    pub pre_pass: PrePass,
    /// Earlier components whose dropped sets these tables read.
    pub deps: Vec<usize>,
}

/// A SET DEFAULT whose default is not a plain constant: evaluated against
/// the target after the schema is loaded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingDefault {
    pub table: usize,
    pub fk: usize,
    pub entry: usize,
    pub fk_name: String,
    pub column: String,
    pub type_name: String,
    pub expr: String,
}

/// A foreign key resolved to the snapshot: one referencing table and the
/// tables holding the referenced rows (several for a partitioned table).
pub struct Edge {
    pub fk: usize,
    pub child: usize,
    pub parents: Vec<usize>,
}
