//! `erasure.policy` and `erasure.reference` resolved against a snapshot's
//! tables: per table the [`Action`] its erased rows get, and the declared
//! references as extra keys with what they do.

use super::relations::Relations;
use super::types::{Action, PlanError, PolicyNote, Replacement};
use crate::copytext::escape::encode_copy_text;
use crate::erasure::policy::{DeclaredReference, OnErase, PolicyAction, SetValue, TablePolicy};
use crate::erasure::pseudonym::PseudonymKind;
use crate::jsonpath::JsonPath;
use crate::repo::manifest::{FkAction, ForeignKey, Manifest};
use std::collections::BTreeMap;

/// A table's policy as the plan applies it.
#[derive(Debug, Clone)]
pub(crate) struct Resolved {
    pub action: Action,
    pub note: PolicyNote,
    /// `erasure.policy[i]`, for messages.
    pub key: String,
}

impl Resolved {
    pub(super) fn keeps_rows(&self) -> bool {
        !matches!(self.action, Action::Drop)
    }
}

/// A declared reference as a key of the plan: a synthetic foreign key (so
/// partitions, slots and ordering work as for declared ones) and what it
/// does beyond one.
#[derive(Debug, Clone)]
pub(crate) struct Declared {
    pub on_erase: OnErase,
    pub path: Option<JsonPath>,
    /// Per referencing table (manifest index): the redaction's entries.
    pub set: BTreeMap<usize, Vec<(usize, Replacement)>>,
}

use crate::pg::qualified;

pub(super) fn unknown_table(rels: &Relations, m: &Manifest, key: String, table: &str) -> PlanError {
    let mut names: Vec<String> = rels.names().collect();
    names.sort();
    PlanError::UnknownTable {
        key,
        table: table.to_string(),
        snapshot: m.id.to_string(),
        available: match names.len() {
            0 => "none".into(),
            n if n > 20 => format!("{}, … {} more", names[..20].join(", "), n - 20),
            _ => names.join(", "),
        },
    }
}

fn column_of(m: &Manifest, t: usize, key: &str, column: &str) -> Result<usize, PlanError> {
    m.tables[t]
        .columns
        .iter()
        .position(|c| c.name == column)
        .ok_or_else(|| PlanError::UnknownColumn {
            key: key.to_string(),
            table: m.tables[t].qualified(),
            column: column.to_string(),
            available: m.tables[t]
                .columns
                .iter()
                .filter(|c| !c.generated)
                .map(|c| c.name.as_str())
                .collect::<Vec<_>>()
                .join(", "),
        })
}

/// The entries a `set` writes into table `t`, refusing unknown and
/// generated columns, columns other tables' keys reference (a redaction
/// keeps the row's keys), and pseudonyms in types that cannot hold one.
fn set_entries(
    m: &Manifest,
    t: usize,
    key: &str,
    set: &BTreeMap<String, String>,
    referenced: &BTreeMap<(usize, usize), String>,
) -> Result<Vec<(usize, Replacement)>, PlanError> {
    let mut out = Vec::new();
    for (name, value) in set {
        let at = format!("{key}.{name}");
        let c = column_of(m, t, &at, name)?;
        let column = &m.tables[t].columns[c];
        if column.generated {
            return Err(PlanError::RedactGenerated {
                key: at,
                table: m.tables[t].qualified(),
                column: name.clone(),
            });
        }
        if let Some(by) = referenced.get(&(t, c)) {
            return Err(PlanError::RedactKey {
                key: at,
                table: m.tables[t].qualified(),
                column: name.clone(),
                referenced_by: by.clone(),
            });
        }
        // Checked by `config::validate` already; a config that skipped it
        // still gets a refusal rather than a guess.
        let parsed = SetValue::parse(value).map_err(|e| PlanError::UnknownColumn {
            key: at.clone(),
            table: m.tables[t].qualified(),
            column: format!("{name} = {value} ({e})"),
            available: String::new(),
        })?;
        let r = match parsed {
            SetValue::Null => Replacement::Null,
            SetValue::Text(s) => Replacement::Value(encode_copy_text(s.as_bytes())),
            SetValue::Pseudonym => {
                let ty = column.base_type.as_deref().unwrap_or(&column.type_name);
                Replacement::Pseudonym(PseudonymKind::for_type(ty).map_err(|e| {
                    PlanError::PseudonymType {
                        key: at.clone(),
                        table: m.tables[t].qualified(),
                        column: name.clone(),
                        message: e.to_string(),
                    }
                })?)
            }
        };
        out.push((c, r));
    }
    Ok(out)
}

/// Every `(table, column)` some key references, with the key's name: a
/// redaction must leave them alone.
pub(super) fn referenced_columns(
    m: &Manifest,
    rels: &Relations,
    foreign_keys: &[ForeignKey],
) -> BTreeMap<(usize, usize), String> {
    let mut out = BTreeMap::new();
    for fk in foreign_keys {
        for p in rels.leaves(&fk.ref_table) {
            for rc in &fk.ref_columns {
                if let Some(c) = m.tables[p].columns.iter().position(|x| &x.name == rc) {
                    out.entry((p, c)).or_insert_with(|| fk.name.clone());
                }
            }
        }
    }
    out
}

/// Per manifest table, its policy (a policy on a partitioned table or an
/// inheritance parent covers what `DELETE FROM` it would).
///
/// # Errors
/// An unknown table or column, or a redaction Lethe refuses.
pub(super) fn resolve_policies(
    m: &Manifest,
    rels: &Relations,
    policies: &[TablePolicy],
    referenced: &BTreeMap<(usize, usize), String>,
) -> Result<Vec<Option<Resolved>>, PlanError> {
    let mut out: Vec<Option<Resolved>> = vec![None; m.tables.len()];
    for (i, p) in policies.iter().enumerate() {
        let key = format!("erasure.policy[{i}]");
        let name = qualified(&p.table);
        let cover = rels.below(&name);
        if cover.is_empty() {
            return Err(unknown_table(rels, m, format!("{key}.table"), &p.table));
        }
        for t in cover {
            let action = match p.action {
                PolicyAction::Drop => Action::Drop,
                PolicyAction::Keep => Action::Keep,
                PolicyAction::Redact => Action::Redact(set_entries(
                    m,
                    t,
                    &format!("{key}.set"),
                    &p.set,
                    referenced,
                )?),
            };
            out[t] = Some(Resolved {
                key: key.clone(),
                action,
                note: PolicyNote {
                    action: p.action,
                    reason: p.reason.clone(),
                    set: p.set.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
                },
            });
        }
    }
    Ok(out)
}

/// The declared references as synthetic foreign keys (appended to
/// `foreign_keys`, in order) and what each does; `declared[i]` belongs to
/// `foreign_keys[first + i]`.
///
/// # Errors
/// An unknown table or column, a path on a column that is not json, or a
/// redaction Lethe refuses.
pub(super) fn declare(
    m: &Manifest,
    rels: &Relations,
    references: &[DeclaredReference],
    foreign_keys: &mut Vec<ForeignKey>,
) -> Result<Vec<Declared>, PlanError> {
    let mut out = Vec::new();
    let mut pending = Vec::new();
    for (i, r) in references.iter().enumerate() {
        let key = format!("erasure.reference[{i}]");
        let table = qualified(&r.table);
        let children = rels.leaves(&table);
        if children.is_empty() {
            return Err(unknown_table(rels, m, format!("{key}.table"), &r.table));
        }
        let (ref_table, ref_column) = r.target().map_err(|e| PlanError::UnknownColumn {
            key: format!("{key}.references"),
            table: r.references.clone(),
            column: e,
            available: String::new(),
        })?;
        let parents = rels.leaves(&ref_table);
        if parents.is_empty() {
            return Err(unknown_table(
                rels,
                m,
                format!("{key}.references"),
                &ref_table,
            ));
        }
        for &p in &parents {
            column_of(m, p, &format!("{key}.references"), &ref_column)?;
        }
        let path = match &r.path {
            Some(p) => Some(JsonPath::parse(p).map_err(|e| PlanError::UnknownColumn {
                key: format!("{key}.path"),
                table: table.clone(),
                column: format!("{} ({e})", r.column),
                available: String::new(),
            })?),
            None => None,
        };
        for &c in &children {
            let col = column_of(m, c, &format!("{key}.column"), &r.column)?;
            let column = &m.tables[c].columns[col];
            let ty = column.base_type.as_deref().unwrap_or(&column.type_name);
            if path.is_some() && !matches!(ty, "json" | "jsonb") {
                return Err(PlanError::PathType {
                    key: format!("{key}.path"),
                    table: m.tables[c].qualified(),
                    column: r.column.clone(),
                    type_name: ty.to_string(),
                });
            }
        }
        foreign_keys.push(ForeignKey {
            name: r.name(),
            table,
            columns: vec![r.column.clone()],
            ref_table,
            ref_columns: vec![ref_column],
            on_delete: match r.on_erase {
                OnErase::SetNull => FkAction::SetNull,
                OnErase::Drop | OnErase::Redact => FkAction::Cascade,
            },
            set_columns: Vec::new(),
            on_update: Some(FkAction::NoAction),
        });
        pending.push((i, key, children));
        out.push(Declared {
            on_erase: r.on_erase,
            path,
            set: BTreeMap::new(),
        });
    }
    // Redactions are checked once every key (declared ones too) is known.
    let referenced = referenced_columns(m, rels, foreign_keys);
    for (d, (i, key, children)) in out.iter_mut().zip(pending) {
        if references[i].on_erase != OnErase::Redact {
            continue;
        }
        for c in children {
            let entries =
                set_entries(m, c, &format!("{key}.set"), &references[i].set, &referenced)?;
            d.set.insert(c, entries);
        }
    }
    Ok(out)
}

/// Every SQL literal a `set` writes, with its key and the type of the
/// column it goes into (the first table the policy or reference covers):
/// for `lethe config check` to have the source's PostgreSQL read each one
/// as that type.
pub fn set_literals(
    m: &Manifest,
    policies: &[TablePolicy],
    references: &[DeclaredReference],
) -> Vec<SetLiteral> {
    let rels = Relations::new(m);
    let sets = policies
        .iter()
        .enumerate()
        .map(|(i, p)| (format!("erasure.policy[{i}].set"), &p.table, &p.set))
        .chain(
            references
                .iter()
                .enumerate()
                .map(|(i, r)| (format!("erasure.reference[{i}].set"), &r.table, &r.set)),
        );
    let mut out = Vec::new();
    for (key, table, set) in sets {
        let Some(&t) = rels.below(&qualified(table)).first() else {
            continue;
        };
        for (column, value) in set {
            let (Ok(SetValue::Text(literal)), Some(c)) = (
                SetValue::parse(value),
                m.tables[t].columns.iter().find(|c| &c.name == column),
            ) else {
                continue;
            };
            out.push(SetLiteral {
                key: format!("{key}.{column}"),
                type_name: c.type_name.clone(),
                literal,
            });
        }
    }
    out
}

/// One literal of a `set` (see [`set_literals`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetLiteral {
    pub key: String,
    /// `format_type()` of the column.
    pub type_name: String,
    pub literal: String,
}
