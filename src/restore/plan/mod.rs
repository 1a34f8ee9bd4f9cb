//! From the manifest and the configured subject roots to what the filter
//! does per table, and the order tables are filtered in.
//!
//! Every foreign key whose parent can lose rows becomes a check on the
//! child: CASCADE / RESTRICT / NO ACTION drop the child row, SET NULL / SET
//! DEFAULT rewrite its referencing columns. The parent records the keys of
//! its dropped rows (one set per referenced column tuple), so children must
//! be filtered after their parents: tables are grouped into strongly
//! connected components of the foreign-key graph and the components are
//! ordered parents first. A component with internal references (a
//! self-reference such as `users.invited_by`, or a cycle) is re-read until
//! its dropped sets stop growing before it is written.

mod defaults;
mod on_update;
mod order;
pub mod policy;
mod relations;
pub mod types;

use super::keys::{self, KeyForm};
use crate::erasure::config::LargeObjectRef;
use crate::erasure::config::SubjectRoot;
use crate::erasure::config::SubjectType;
use crate::erasure::policy::{DeclaredReference, OnErase, TablePolicy};
use crate::repo::manifest::{FkAction, Manifest};
pub use defaults::constant_default;
use defaults::rewrite_entries;
use order::order;
use relations::Relations;
pub use types::{
    Action, Component, Edge, Effect, FkCheck, KeyForms, PendingDefault, PlanError, PolicyNote,
    PrePass, Replacement, SetRef, TablePlan,
};

/// Everything in `[erasure]` a plan is built from.
#[derive(Debug, Clone, Copy)]
pub struct Rules<'a> {
    pub roots: &'a [SubjectRoot],
    pub subject_type: SubjectType,
    pub large_objects: &'a [LargeObjectRef],
    pub policies: &'a [TablePolicy],
    pub references: &'a [DeclaredReference],
}

impl<'a> Rules<'a> {
    pub fn of(cfg: &'a crate::erasure::config::ErasureConfig) -> Rules<'a> {
        Rules {
            roots: &cfg.subjects,
            subject_type: cfg.subject_type,
            large_objects: &cfg.large_objects,
            policies: &cfg.policy,
            references: &cfg.reference,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestorePlan {
    /// Per manifest table, same index.
    pub tables: Vec<TablePlan>,
    /// Parents first.
    pub components: Vec<Component>,
    pub pending_defaults: Vec<PendingDefault>,
    /// Things an operator should know (cycles, skipped keys).
    pub notes: Vec<String>,
}

fn type_label(st: SubjectType) -> &'static str {
    match st {
        SubjectType::Bigint => "bigint",
        SubjectType::Uuid => "uuid",
        SubjectType::Text => "text",
    }
}

impl RestorePlan {
    /// Builds the plan.
    ///
    /// Roots and keys may name partitioned tables and inheritance parents:
    /// a root covers every partition (at any depth) or inheriting table in
    /// this snapshot, as PostgreSQL's `DELETE FROM parent` would; a key on
    /// or to a partitioned table covers all its partitions, the referenced
    /// side as one set (the union of its partitions' dropped keys).
    ///
    /// # Errors
    /// A root table or column not in the snapshot, a root column whose type
    /// cannot match the subject type exactly, a followed key over columns
    /// Lethe cannot compare as PostgreSQL does, or over a column missing
    /// from the data.
    pub fn build(
        m: &Manifest,
        roots: &[SubjectRoot],
        subject_type: SubjectType,
    ) -> Result<RestorePlan, PlanError> {
        Self::build_with(m, roots, subject_type, &[])
    }

    /// [`RestorePlan::build`], with the columns that hold large objects
    /// owned by their row (`erasure.large_objects`): a large object goes
    /// when a row holding its oid there is dropped, as a key from the
    /// snapshot's large objects to those columns would have it.
    ///
    /// # Errors
    /// As [`RestorePlan::build`].
    pub fn build_with(
        m: &Manifest,
        roots: &[SubjectRoot],
        subject_type: SubjectType,
        large_objects: &[LargeObjectRef],
    ) -> Result<RestorePlan, PlanError> {
        Self::build_rules(
            m,
            &Rules {
                roots,
                subject_type,
                large_objects,
                policies: &[],
                references: &[],
            },
        )
    }

    /// The plan for all of `[erasure]`: roots, large objects, per-table
    /// policies and declared references.
    ///
    /// A table without a policy follows its foreign keys as PostgreSQL's
    /// `DELETE` of the erased rows would: a row goes when a CASCADE /
    /// RESTRICT / NO ACTION key points at a dropped row, SET NULL / SET
    /// DEFAULT keys are rewritten. A table with a policy applies it to
    /// every row that belongs to an erased subject: a listed root value, or
    /// an owning key (CASCADE / RESTRICT / NO ACTION, or a declared
    /// reference) to such a row, whatever the parent's own action. A
    /// redacted or kept parent's rows stay, so the keys of tables without a
    /// policy under it never fire, as in the application's own SQL
    /// (`UPDATE` the parent, nothing else). A declared reference fires when
    /// the row it points at is the erased subject's, dropped or not.
    ///
    /// # Errors
    /// As [`RestorePlan::build`]; also unknown policy or reference tables
    /// and columns, redactions of keys, generated columns or into types
    /// that cannot hold a pseudonym, and a redacted or kept table whose
    /// owning key points at rows that are dropped (`Dangling`).
    pub fn build_rules(m: &Manifest, rules: &Rules<'_>) -> Result<RestorePlan, PlanError> {
        let (roots, subject_type, large_objects) =
            (rules.roots, rules.subject_type, rules.large_objects);
        let rels = Relations::new(m);
        let mut foreign_keys = m.foreign_keys.clone();
        if let Some(lo) = m.tables.iter().find(|t| t.large_objects) {
            for r in large_objects {
                foreign_keys.push(crate::repo::manifest::ForeignKey {
                    name: format!("large objects in {}.{}", r.table, r.column),
                    table: lo.qualified(),
                    columns: vec!["oid".into()],
                    ref_table: crate::pg::qualified(&r.table),
                    ref_columns: vec![r.column.clone()],
                    on_delete: FkAction::Cascade,
                    set_columns: Vec::new(),
                    on_update: Some(FkAction::NoAction),
                });
            }
        }
        let first_declared = foreign_keys.len();
        let declared = policy::declare(m, &rels, rules.references, &mut foreign_keys)?;
        let declared_of = |fk: usize| fk.checked_sub(first_declared).map(|i| &declared[i]);
        let referenced = policy::referenced_columns(m, &rels, &foreign_keys);
        let policies = policy::resolve_policies(m, &rels, rules.policies, &referenced)?;
        let ctype = m.ctype.as_deref();
        let col = |t: usize, name: &str| m.tables[t].columns.iter().position(|c| c.name == name);
        let mut tables: Vec<TablePlan> = m
            .tables
            .iter()
            .zip(&policies)
            .map(|(t, p)| TablePlan {
                table: t.qualified(),
                ncols: t.columns.len(),
                action: p.as_ref().map(|p| p.action.clone()).unwrap_or_default(),
                policy: p.as_ref().map(|p| p.note.clone()),
                ..Default::default()
            })
            .collect();
        let mut notes = Vec::new();

        for r in roots {
            let name = crate::pg::qualified(&r.table);
            let Some(cover) = rels.root_cover(&name, &mut notes) else {
                let mut names: Vec<String> = rels.names().collect();
                names.sort();
                return Err(PlanError::UnknownRoot {
                    table: r.table.clone(),
                    snapshot: m.id.to_string(),
                    available: match names.len() {
                        0 => "none".into(),
                        n if n > 20 => format!("{}, … {} more", names[..20].join(", "), n - 20),
                        _ => names.join(", "),
                    },
                });
            };
            for t in cover {
                let Some(c) = col(t, &r.column) else {
                    return Err(PlanError::UnknownRootColumn {
                        table: m.tables[t].qualified(),
                        column: r.column.clone(),
                        snapshot: m.id.to_string(),
                        available: m.tables[t]
                            .columns
                            .iter()
                            .map(|c| c.name.as_str())
                            .collect::<Vec<_>>()
                            .join(", "),
                    });
                };
                let column = &m.tables[t].columns[c];
                let Some(form) = keys::root_form(&keys::classify(column), subject_type, ctype)
                else {
                    return Err(PlanError::RootType {
                        table: m.tables[t].qualified(),
                        column: r.column.clone(),
                        type_name: column.base_type.clone().unwrap_or(column.type_name.clone()),
                        subject_type: type_label(subject_type).into(),
                    });
                };
                let forms = &tables[t].forms;
                let same = (0..tables[t].roots.len())
                    .find(|&i| tables[t].roots[i] == c && forms.subject(i) == r.subject.as_deref());
                match same {
                    // Named twice: reusable only if every naming says so.
                    Some(i) => tables[t].forms.reusable[i] &= r.reusable,
                    None => {
                        tables[t].roots.push(c);
                        tables[t].forms.roots.push(form);
                        tables[t].forms.reusable.push(r.reusable);
                        tables[t].forms.subjects.push(r.subject.clone());
                    }
                }
            }
        }

        // Resolve the foreign keys to the tables in the snapshot: the
        // referencing side to each of its partitions, the referenced side
        // to the set of its partitions.
        let mut edges = Vec::new();
        for (i, fk) in foreign_keys.iter().enumerate() {
            let (children, parents) = (rels.leaves(&fk.table), rels.leaves(&fk.ref_table));
            if children.is_empty() || parents.is_empty() {
                notes.push(format!(
                    "foreign key {} ({} -> {}) is skipped: one side has no table in the snapshot",
                    fk.name, fk.table, fk.ref_table
                ));
                continue;
            }
            for child in children {
                edges.push(Edge {
                    fk: i,
                    child,
                    parents: parents.clone(),
                });
            }
        }

        // Which tables hold rows of erased subjects: roots, and tables an
        // owning key leads to from such rows (see `build_rules`). Keys into
        // other tables can never match, so they cost nothing at restore time.
        let has_policy = |t: usize| policies[t].is_some();
        let owning = |a: FkAction| {
            matches!(
                a,
                FkAction::Cascade | FkAction::Restrict | FkAction::NoAction
            )
        };
        let mut can_hit: Vec<bool> = tables.iter().map(|t| !t.roots.is_empty()).collect();
        let keeps_rows: Vec<bool> = policies
            .iter()
            .map(|p| p.as_ref().is_some_and(policy::Resolved::keeps_rows))
            .collect();
        let drops = |can_hit: &[bool], t: usize| can_hit[t] && !keeps_rows[t];
        loop {
            let mut changed = false;
            for e in &edges {
                let fk = &foreign_keys[e.fk];
                let hit_parent = e.parents.iter().any(|&p| can_hit[p]);
                let hits = match declared_of(e.fk) {
                    Some(d) => hit_parent && (has_policy(e.child) || d.on_erase == OnErase::Drop),
                    None if owning(fk.on_delete) => {
                        if has_policy(e.child) {
                            hit_parent
                        } else {
                            e.parents.iter().any(|&p| drops(&can_hit, p))
                        }
                    }
                    None => false,
                };
                if hits && !can_hit[e.child] {
                    can_hit[e.child] = true;
                    changed = true;
                }
            }
            if !changed {
                break;
            }
        }

        let mut pending_defaults = Vec::new();
        for e in &edges {
            let fk = &foreign_keys[e.fk];
            let decl = declared_of(e.fk);
            let hitting: Vec<usize> = e.parents.iter().copied().filter(|&p| can_hit[p]).collect();
            let dropping: Vec<usize> = e
                .parents
                .iter()
                .copied()
                .filter(|&p| drops(&can_hit, p))
                .collect();
            // Which parents' sets the check reads, and whether a match makes
            // the row the subject's (`Hit`) or only rewrites it.
            let (sources_t, hit) = match decl {
                Some(d) => (hitting, has_policy(e.child) || d.on_erase == OnErase::Drop),
                None if owning(fk.on_delete) => {
                    if let Some(p) = &policies[e.child]
                        && p.keeps_rows()
                        && let Some(&parent) = dropping.first()
                    {
                        return Err(PlanError::Dangling {
                            key: p.key.clone(),
                            fk: fk.name.clone(),
                            child: m.tables[e.child].qualified(),
                            parent: m.tables[parent].qualified(),
                            action: p.note.action.as_str().into(),
                        });
                    }
                    (
                        if has_policy(e.child) {
                            hitting
                        } else {
                            dropping
                        },
                        true,
                    )
                }
                None => (dropping, false),
            };
            if sources_t.is_empty() {
                continue;
            }
            let cols = |t: usize, names: &[String]| -> Result<Vec<usize>, PlanError> {
                names
                    .iter()
                    .map(|c| {
                        col(t, c).ok_or_else(|| PlanError::FkColumn {
                            fk: fk.name.clone(),
                            table: m.tables[t].qualified(),
                            column: c.clone(),
                        })
                    })
                    .collect()
            };
            let child_cols = cols(e.child, &fk.columns)?;
            let path = decl.and_then(|d| d.path.clone());
            let mut child_forms = Vec::new();
            let mut sources = Vec::new();
            for &p in &sources_t {
                let ref_cols = cols(p, &fk.ref_columns)?;
                let mut parent_forms = Vec::new();
                child_forms.clear();
                for (&cc, &pc) in child_cols.iter().zip(&ref_cols) {
                    let (cdef, pdef) = (&m.tables[e.child].columns[cc], &m.tables[p].columns[pc]);
                    let (ck, pk) = (keys::classify(cdef), keys::classify(pdef));
                    // A declared reference may hold ids as text (an event
                    // log's `actor text`): its value is then compared as the
                    // referenced column spells it, as one in a document is.
                    let form = match (&path, decl) {
                        (Some(_), _) => keys::json_form(&pk, ctype),
                        (None, Some(_)) => keys::child_form(&ck, &pk, ctype).or_else(|| {
                            matches!(ck, keys::KeyClass::Text)
                                .then(|| keys::json_form(&pk, ctype))
                                .flatten()
                        }),
                        (None, None) => keys::child_form(&ck, &pk, ctype),
                    };
                    let Some(form) = form else {
                        let shown = |t: usize, c: &crate::repo::manifest::Column| {
                            format!(
                                "{}.{} ({})",
                                m.tables[t].qualified(),
                                c.name,
                                c.base_type.as_deref().unwrap_or(&c.type_name)
                            )
                        };
                        return Err(PlanError::KeyType {
                            fk: fk.name.clone(),
                            column: shown(e.child, cdef),
                            ref_column: shown(p, pdef),
                        });
                    };
                    child_forms.push(form);
                    parent_forms.push(keys::parent_form(&pk, ctype));
                }
                let parent = &mut tables[p];
                let slot = match parent.records.iter().position(|r| *r == ref_cols) {
                    Some(s) => s,
                    None => {
                        parent.records.push(ref_cols);
                        parent.forms.records.push(parent_forms);
                        parent.records.len() - 1
                    }
                };
                sources.push((p, slot));
            }
            let effect = if hit {
                Effect::Hit
            } else if let Some(d) = decl {
                match d.on_erase {
                    OnErase::SetNull => Effect::Rewrite(
                        child_cols.iter().map(|&c| (c, Replacement::Null)).collect(),
                    ),
                    _ => Effect::Rewrite(d.set.get(&e.child).cloned().unwrap_or_default()),
                }
            } else {
                let targets = if fk.set_columns.is_empty() {
                    child_cols.clone()
                } else {
                    cols(e.child, &fk.set_columns)?
                };
                Effect::Rewrite(rewrite_entries(
                    m,
                    (e.child, tables[e.child].fks.len()),
                    &fk.name,
                    &targets,
                    fk.on_delete == FkAction::SetDefault,
                    &mut pending_defaults,
                ))
            };
            tables[e.child].fks.push(FkCheck {
                name: fk.name.clone(),
                columns: child_cols,
                set: SetRef::Dropped(sources),
                effect,
                path,
                redacts: !hit && decl.is_some_and(|d| d.on_erase == OnErase::Redact),
            });
            tables[e.child].forms.fks.push(child_forms);
        }

        on_update::model_on_update(m, &foreign_keys, &edges, &mut tables, &mut pending_defaults)?;

        // A reference to the root column of a table whose rows are dropped
        // only for being listed (users.id, whose only other check is
        // invited_by -> users.id SET NULL): "the parent row was dropped" is
        // "the value is listed", so the list answers directly. The child then
        // needs neither the parent's dropped set nor to wait for the parent
        // (and a self-reference needs no pre-pass). A listed value with no
        // parent row is the erased subject's too, so it is dropped as well.
        // Only for values keyed as they are: a folded key (numeric, padded,
        // case-insensitive) keeps its dropped set.
        let only_root: Vec<Option<(usize, Vec<Vec<usize>>)>> = tables
            .iter()
            .map(|p| {
                (p.roots.len() == 1
                    && p.forms.root(0) == KeyForm::Plain
                    && !p.forms.reusable(0)
                    && p.forms.subject(0).is_none()
                    && p.fks.iter().all(|f| f.effect != Effect::Hit))
                .then(|| (p.roots[0], p.records.clone()))
            })
            .collect();
        let record_plain: Vec<Vec<bool>> = tables
            .iter()
            .map(|p| {
                (0..p.records.len())
                    .map(|i| p.forms.record(i).is_none())
                    .collect()
            })
            .collect();
        for plan in &mut tables {
            for (i, f) in plan.fks.iter_mut().enumerate() {
                if let SetRef::Dropped(sources) = &f.set
                    && let [(table, slot)] = sources[..]
                    && let Some((root, records)) = &only_root[table]
                    && records[slot] == [*root]
                    && record_plain[table][slot]
                    && f.columns.len() == 1
                    && f.path.is_none()
                    && plan.forms.fk(i).is_none()
                {
                    f.set = SetRef::Root;
                }
            }
        }

        let components = order(&tables, &mut notes, m);
        Ok(RestorePlan {
            tables,
            components,
            pending_defaults,
            notes,
        })
    }

    /// Refuses, before anything is written, a SET DEFAULT check against the
    /// erasure list itself whose constant default is on the list (the
    /// filter also stops at the first row such a default would orphan,
    /// for defaults pointing at rows dropped through other keys).
    ///
    /// # Errors
    /// `DefaultErased`, naming the key.
    pub fn check_defaults(
        &self,
        list: &dyn crate::erasure::ErasureSet,
        st: SubjectType,
    ) -> Result<(), PlanError> {
        for t in &self.tables {
            for f in t.fks.iter().filter(|f| f.set == SetRef::Root) {
                let Effect::Rewrite(entries) = &f.effect else {
                    continue;
                };
                let Some((_, Replacement::Value(v))) =
                    entries.iter().find(|(c, _)| f.columns.first() == Some(c))
                else {
                    continue;
                };
                let mut d = Vec::new();
                super::filter::decode_escapes(v, &mut d);
                if crate::erasure::key_of(st, &d).is_some_and(|k| list.contains(k)) {
                    return Err(PlanError::DefaultErased {
                        fk: f.name.clone(),
                        table: t.table.clone(),
                        value: String::from_utf8_lossy(&d).into_owned(),
                    });
                }
            }
        }
        Ok(())
    }

    /// The folds the erasure list must also be held in for the roots of
    /// this plan to find their ids (`keys::folds_list`).
    pub fn list_folds(&self, st: SubjectType) -> Vec<KeyForm> {
        let mut forms: Vec<KeyForm> = self
            .tables
            .iter()
            .flat_map(|t| t.forms.roots.iter().copied())
            .filter(|&f| keys::folds_list(f, st))
            .collect();
        forms.sort();
        forms.dedup();
        forms
    }

    /// Whether some redaction writes pseudonyms (the key must be loaded).
    pub fn uses_pseudonyms(&self) -> bool {
        let pseudo = |e: &[(usize, Replacement)]| {
            e.iter()
                .any(|(_, r)| matches!(r, Replacement::Pseudonym(_)))
        };
        self.tables.iter().any(|t| {
            matches!(&t.action, Action::Redact(e) if pseudo(e))
                || t.fks
                    .iter()
                    .any(|f| matches!(&f.effect, Effect::Rewrite(e) if pseudo(e)))
        })
    }

    /// Whether a root is a reusable natural key (the list must then be read
    /// with each erasure's time).
    pub fn has_reusable(&self) -> bool {
        self.tables
            .iter()
            .any(|t| t.forms.reusable.iter().any(|&r| r))
    }

    /// Manifest table indexes in load order (parents first).
    pub fn load_order(&self) -> impl Iterator<Item = usize> + '_ {
        self.components
            .iter()
            .flat_map(|c| c.tables.iter().copied())
    }

    /// Sets a pending default to its evaluated value.
    pub fn resolve_default(&mut self, d: &PendingDefault, value: Replacement) {
        if let Some(Effect::Rewrite(entries)) = self
            .tables
            .get_mut(d.table)
            .and_then(|t| t.fks.get_mut(d.fk))
            .map(|f| &mut f.effect)
            && let Some(e) = entries.get_mut(d.entry)
        {
            e.1 = value;
        }
    }
}

#[cfg(test)]
pub(super) mod tests;

#[cfg(test)]
mod partition_tests;

#[cfg(test)]
mod policy_tests;
