//! Drives the filter over every table of a snapshot in plan order: objects
//! are downloaded, checked and decrypted as they stream, filtered on a
//! blocking thread, and handed through a small bounded channel to a
//! destination (the target database, the SQL file, or nothing in a dry run).
//!
//! With `jobs > 1` components run in parallel, but a component starts only
//! when every component whose dropped-key sets it reads is complete.

use super::RestoreError;
use super::dest::TableDest;
use super::filter::KeySet;
pub use super::pass::{Progress, Shared, TableOutcome};
use super::pass::{RunError, collect, pass, settle};
use super::plan::PrePass;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use tokio::sync::mpsc;

use crate::framed::DEPTH;
pub use crate::framed::Frame;

/// Filters (and loads) one component; returns its outcomes and the final
/// dropped sets of its tables.
async fn run_component(
    shared: &Arc<Shared>,
    dest: Option<&Arc<dyn TableDest>>,
    ci: usize,
    published: &HashMap<usize, Arc<Vec<KeySet>>>,
) -> Result<(Vec<TableOutcome>, HashMap<usize, Arc<Vec<KeySet>>>), RestoreError> {
    let comp = &shared.plan.components[ci];
    let mut local: HashMap<usize, Vec<KeySet>> = comp
        .tables
        .iter()
        .map(|&t| (t, vec![KeySet::default(); shared.plan.tables[t].sets()]))
        .collect();
    let mut passes: HashMap<usize, u32> = comp.tables.iter().map(|&t| (t, 0)).collect();
    // The sets a table reads: published ones, and its component's current ones.
    let parents_of =
        |t: usize, local: &HashMap<usize, Vec<KeySet>>| -> Arc<HashMap<usize, Arc<Vec<KeySet>>>> {
            let mut m = HashMap::new();
            for fk in &shared.plan.tables[t].fks {
                let super::filter::SetRef::Dropped(sources) = &fk.set else {
                    continue;
                };
                for &(table, _) in sources {
                    if table == t || m.contains_key(&table) {
                        continue;
                    }
                    if let Some(s) = local.get(&table) {
                        m.insert(table, Arc::new(s.clone()));
                    } else if let Some(s) = published.get(&table) {
                        m.insert(table, s.clone());
                    }
                }
            }
            Arc::new(m)
        };
    match comp.pre_pass {
        PrePass::None => {}
        // SET NULL / SET DEFAULT inside the component: one recording pass
        // settles the sets (no row drops because of another's rewrite).
        PrePass::Once => {
            for &t in &comp.tables {
                let parents = parents_of(t, &local);
                let own = local.remove(&t).unwrap_or_default();
                let (own, _) = pass(shared, t, &parents, own, None).await?;
                local.insert(t, own);
                *passes.entry(t).or_default() += 1;
            }
        }
        // Drops propagate inside the component (a reply thread, a cycle):
        // one collecting pass per table, then the closure in memory, so a
        // chain of any depth costs two reads of each table, not one per level.
        PrePass::UntilStable => {
            let mut collected = Vec::with_capacity(comp.tables.len());
            for &t in &comp.tables {
                let parents = parents_of(t, &local);
                let internal = shared.plan.tables[t]
                    .fks
                    .iter()
                    .map(|f| {
                        f.effect == super::filter::Effect::Hit
                            && matches!(&f.set, super::filter::SetRef::Dropped(s)
                                if s.iter().any(|(x, _)| comp.tables.contains(x)))
                    })
                    .collect();
                collected.push(collect(shared, t, &parents, internal).await?);
                *passes.entry(t).or_default() += 1;
            }
            local = settle(shared, &comp.tables, &collected);
        }
    }
    let mut outcomes = Vec::new();
    for &t in &comp.tables {
        let parents = parents_of(t, &local);
        let own = local.remove(&t).unwrap_or_default();
        let (own, stats) = match dest {
            None => pass(shared, t, &parents, own, None).await?,
            Some(dest) => {
                let (tx, rx) = mpsc::channel(DEPTH);
                let entry = &shared.manifest.tables[t];
                let (filtered, loaded) = tokio::join!(
                    pass(shared, t, &parents, own, Some(tx)),
                    dest.load(entry, rx)
                );
                match (filtered, loaded) {
                    (Ok(r), Ok(())) => {
                        if let Some(l) = &shared.loaded {
                            let _ = l.send(t);
                        }
                        // Test hook: a table's rows are committed in the target.
                        crate::snapshot::pause::at("restore").await;
                        r
                    }
                    (Err(RunError::DestinationGone(_)), Err(l)) => return Err(l),
                    (Err(f), _) => return Err(f.into()),
                    (Ok(_), Err(l)) => return Err(l),
                }
            }
        };
        local.insert(t, own);
        *passes.entry(t).or_default() += 1;
        shared.progress.tables_done.fetch_add(1, Ordering::Relaxed);
        outcomes.push(TableOutcome {
            table: t,
            stats,
            passes: passes[&t],
        });
    }
    Ok((
        outcomes,
        local.into_iter().map(|(t, s)| (t, Arc::new(s))).collect(),
    ))
}

/// Per component: its bytes plus the largest such sum over the components
/// that wait for it (its critical path). Components start in this order
/// when several are ready, so a long chain (orders, then order_items) is not
/// left to run alone at the end.
fn critical_paths(shared: &Shared) -> Vec<u64> {
    let comps = &shared.plan.components;
    let bytes: Vec<u64> = comps
        .iter()
        .map(|c| {
            c.tables
                .iter()
                .map(|&t| shared.manifest.tables[t].raw_bytes.max(1))
                .sum()
        })
        .collect();
    // Components are in dependency order: dependants come later.
    let mut path = bytes.clone();
    for ci in (0..comps.len()).rev() {
        for &d in &comps[ci].deps {
            path[d] = path[d].max(bytes[d] + path[ci]);
        }
    }
    path
}

/// Runs every component. `jobs <= 1` runs them one after another in load
/// order (the SQL file needs that); otherwise up to `jobs` at once, each
/// waiting for the components it depends on, the longest critical path
/// first among those ready.
///
/// # Errors
/// The first failure; the others are cancelled (their tables roll back).
pub async fn run_all(
    shared: Arc<Shared>,
    dest: Option<Arc<dyn TableDest>>,
    jobs: usize,
) -> Result<Vec<TableOutcome>, RestoreError> {
    let ncomp = shared.plan.components.len();
    if jobs <= 1 {
        let mut published = HashMap::new();
        let mut out = Vec::new();
        for ci in 0..ncomp {
            let (o, sets) = run_component(&shared, dest.as_ref(), ci, &published).await?;
            out.extend(o);
            published.extend(sets);
        }
        return Ok(out);
    }
    // A list scheduler: a component is ready once every component it reads
    // from is done; up to `jobs` run at once, the ready one with the longest
    // critical path first (decided here, when a slot frees, so a component
    // that just became ready competes with those that waited).
    let comps = &shared.plan.components;
    let priority = critical_paths(&shared);
    let mut waiting_on: Vec<usize> = comps.iter().map(|c| c.deps.len()).collect();
    let mut dependants: Vec<Vec<usize>> = vec![Vec::new(); ncomp];
    for (ci, c) in comps.iter().enumerate() {
        for &d in &c.deps {
            dependants[d].push(ci);
        }
    }
    let mut ready: std::collections::BinaryHeap<(u64, std::cmp::Reverse<usize>)> = (0..ncomp)
        .filter(|&ci| waiting_on[ci] == 0)
        .map(|ci| (priority[ci], std::cmp::Reverse(ci)))
        .collect();
    let mut published: HashMap<usize, Arc<Vec<KeySet>>> = HashMap::new();
    let mut set = tokio::task::JoinSet::new();
    let mut out = Vec::new();
    let mut first_err: Option<RestoreError> = None;
    loop {
        while set.len() < jobs {
            let Some((_, std::cmp::Reverse(ci))) = ready.pop() else {
                break;
            };
            let (shared, dest, published) = (shared.clone(), dest.clone(), published.clone());
            set.spawn(async move {
                (
                    ci,
                    run_component(&shared, dest.as_ref(), ci, &published).await,
                )
            });
        }
        let Some(joined) = set.join_next().await else {
            break;
        };
        match joined {
            Ok((ci, Ok((outcomes, sets)))) => {
                out.extend(outcomes);
                published.extend(sets);
                for &d in &dependants[ci] {
                    waiting_on[d] -= 1;
                    if waiting_on[d] == 0 {
                        ready.push((priority[d], std::cmp::Reverse(d)));
                    }
                }
            }
            Ok((_, Err(e))) => {
                first_err = Some(e);
                break;
            }
            Err(e) => {
                first_err = Some(RestoreError::Internal(format!("table task: {e}")));
                break;
            }
        }
    }
    if let Some(e) = first_err {
        // The others are cancelled (their tables roll back).
        set.abort_all();
        while set.join_next().await.is_some() {}
        return Err(e);
    }
    if out.len() != shared.plan.tables.len() {
        return Err(RestoreError::Internal(format!(
            "{} of {} tables were restored",
            out.len(),
            shared.plan.tables.len()
        )));
    }
    let order: HashMap<usize, usize> = shared
        .plan
        .load_order()
        .enumerate()
        .map(|(i, t)| (t, i))
        .collect();
    out.sort_by_key(|o| order.get(&o.table).copied().unwrap_or(usize::MAX));
    Ok(out)
}

#[cfg(test)]
#[path = "runner_tests.rs"]
mod tests;
