//! ON UPDATE actions under a rewritten key, added to a restore plan.

use super::defaults::rewrite_entries;
use super::types::{Edge, PendingDefault, PlanError};
use super::types::{Effect, FkCheck, Replacement, SetRef, TablePlan};
use crate::repo::manifest::{FkAction, ForeignKey, Manifest};
use crate::restore::keys::{self, KeyForm};

/// A SET NULL / SET DEFAULT that rewrites a column another key
/// references: PostgreSQL then applies that key's ON UPDATE action
/// to the rows referencing the old key. The rewritten table records
/// the old keys (`TablePlan::rewrites`), and the referencing table
/// gets a check against them: CASCADE writes the new values (NULL or
/// the default), SET NULL / SET DEFAULT its own, RESTRICT / NO ACTION
/// stop the restore (PostgreSQL would refuse the delete). Repeated
/// until no new rewrite appears (a cascade can rewrite keys others
/// reference in turn).
pub(super) fn model_on_update(
    m: &Manifest,
    foreign_keys: &[ForeignKey],
    edges: &[Edge],
    tables: &mut [TablePlan],
    pending_defaults: &mut Vec<PendingDefault>,
) -> Result<(), PlanError> {
    let ctype = m.ctype.as_deref();
    let col = |t: usize, name: &str| m.tables[t].columns.iter().position(|c| c.name == name);
    let mut modelled = std::collections::HashSet::new();
    loop {
        let mut added = false;
        for (ei, e) in edges.iter().enumerate() {
            let fk = &foreign_keys[e.fk];
            let mut sources = Vec::new();
            let mut new_values: Vec<Option<Replacement>> = Vec::new();
            let mut ref_cols_first = None;
            for &p in &e.parents {
                if modelled.contains(&(ei, p)) {
                    continue;
                }
                // Columns of p a rewrite changes, with the value it writes.
                let written: Vec<(usize, Replacement)> = tables[p]
                    .fks
                    .iter()
                    .filter_map(|f| match &f.effect {
                        Effect::Rewrite(entries) => Some(entries.clone()),
                        _ => None,
                    })
                    .flatten()
                    .collect();
                let Ok(ref_cols) = fk
                    .ref_columns
                    .iter()
                    .map(|r| col(p, r).ok_or(()))
                    .collect::<Result<Vec<usize>, ()>>()
                else {
                    continue;
                };
                if !ref_cols.iter().any(|c| written.iter().any(|(w, _)| w == c)) {
                    continue;
                }
                if fk.on_update.is_none() {
                    return Err(PlanError::UpdateNotModelled {
                        fk: fk.name.clone(),
                        table: m.tables[e.child].qualified(),
                        ref_table: m.tables[p].qualified(),
                        column: fk.ref_columns.join(", "),
                    });
                }
                modelled.insert((ei, p));
                new_values = ref_cols
                    .iter()
                    .map(|c| written.iter().find(|(w, _)| w == c).map(|(_, r)| r.clone()))
                    .collect();
                let parent_forms: Vec<KeyForm> = ref_cols
                    .iter()
                    .map(|&c| keys::parent_form(&keys::classify(&m.tables[p].columns[c]), ctype))
                    .collect();
                let plan = &mut tables[p];
                let slot = match plan.rewrites.iter().position(|r| *r == ref_cols) {
                    Some(s) => s,
                    None => {
                        plan.rewrites.push(ref_cols.clone());
                        plan.forms.rewrites.push(parent_forms);
                        plan.rewrites.len() - 1
                    }
                };
                sources.push((p, slot));
                ref_cols_first.get_or_insert(ref_cols);
            }
            if sources.is_empty() {
                continue;
            }
            // Slots count after the dropped-key records.
            let sources: Vec<(usize, usize)> = sources
                .into_iter()
                .map(|(p, s)| (p, tables[p].records.len() + s))
                .collect();
            let child_cols: Vec<usize> = fk
                .columns
                .iter()
                .map(|c| {
                    col(e.child, c).ok_or_else(|| PlanError::FkColumn {
                        fk: fk.name.clone(),
                        table: m.tables[e.child].qualified(),
                        column: c.clone(),
                    })
                })
                .collect::<Result<_, _>>()?;
            let child_forms: Vec<KeyForm> = match &ref_cols_first {
                Some(rc) => child_cols
                    .iter()
                    .zip(rc)
                    .map(|(&cc, &pc)| {
                        let p = sources[0].0;
                        keys::child_form(
                            &keys::classify(&m.tables[e.child].columns[cc]),
                            &keys::classify(&m.tables[p].columns[pc]),
                            ctype,
                        )
                        .unwrap_or(KeyForm::Plain)
                    })
                    .collect(),
                None => vec![KeyForm::Plain; child_cols.len()],
            };
            let effect = match fk.on_update {
                Some(FkAction::Cascade) => Effect::Rewrite(
                    child_cols
                        .iter()
                        .zip(&new_values)
                        .filter_map(|(&c, v)| v.clone().map(|v| (c, v)))
                        .collect(),
                ),
                Some(FkAction::SetNull) => {
                    Effect::Rewrite(child_cols.iter().map(|&c| (c, Replacement::Null)).collect())
                }
                Some(FkAction::SetDefault) => Effect::Rewrite(rewrite_entries(
                    m,
                    (e.child, tables[e.child].fks.len()),
                    &fk.name,
                    &child_cols,
                    true,
                    pending_defaults,
                )),
                _ => Effect::Refuse,
            };
            tables[e.child].fks.push(FkCheck {
                name: format!("{} (ON UPDATE)", fk.name),
                columns: child_cols,
                set: SetRef::Dropped(sources),
                effect,
                path: None,
                redacts: false,
            });
            tables[e.child].forms.fks.push(child_forms);
            added = true;
        }
        if !added {
            break;
        }
    }
    Ok(())
}
