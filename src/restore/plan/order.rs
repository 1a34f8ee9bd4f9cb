//! The order tables are filtered in: strongly connected components of the
//! "reads the dropped set of" graph, parents first.

use super::types::{Component, PrePass};
use super::types::{Effect, SetRef, TablePlan};
use crate::repo::manifest::Manifest;
use std::collections::{BTreeSet, BinaryHeap};

/// Groups tables into strongly connected components of the "reads the
/// dropped set of" graph and orders them parents first; ties keep manifest
/// order, so the order is stable.
pub(super) fn order(tables: &[TablePlan], notes: &mut Vec<String>, m: &Manifest) -> Vec<Component> {
    let n = tables.len();
    // parents[t]: tables whose sets t reads.
    let parents: Vec<BTreeSet<usize>> = tables
        .iter()
        .map(|p| {
            p.fks
                .iter()
                .flat_map(|f| match &f.set {
                    SetRef::Dropped(sources) => sources.iter().map(|&(t, _)| t).collect(),
                    SetRef::Root => Vec::new(),
                })
                .collect()
        })
        .collect();
    let comp_of = tarjan(n, &parents);
    let ncomp = comp_of.iter().copied().max().map_or(0, |c| c + 1);
    let mut members: Vec<Vec<usize>> = vec![Vec::new(); ncomp];
    for (t, &c) in comp_of.iter().enumerate() {
        members[c].push(t);
    }
    let mut deps: Vec<BTreeSet<usize>> = vec![BTreeSet::new(); ncomp];
    let mut pre: Vec<PrePass> = vec![PrePass::None; ncomp];
    for (t, ps) in parents.iter().enumerate() {
        let c = comp_of[t];
        for &p in ps {
            if comp_of[p] != c {
                deps[c].insert(comp_of[p]);
            }
        }
        for f in &tables[t].fks {
            if let SetRef::Dropped(sources) = &f.set
                && sources.iter().any(|&(table, _)| comp_of[table] == c)
            {
                let kind = if f.effect == Effect::Hit {
                    PrePass::UntilStable
                } else {
                    PrePass::Once
                };
                if pre[c] != PrePass::UntilStable {
                    pre[c] = kind;
                }
            }
        }
    }
    // Kahn's algorithm, smallest manifest index first among the ready.
    let mut indeg: Vec<usize> = deps.iter().map(BTreeSet::len).collect();
    let mut children: Vec<Vec<usize>> = vec![Vec::new(); ncomp];
    for (c, ds) in deps.iter().enumerate() {
        for &d in ds {
            children[d].push(c);
        }
    }
    let key = |c: usize| std::cmp::Reverse(members[c][0]);
    let mut ready: BinaryHeap<(std::cmp::Reverse<usize>, usize)> = (0..ncomp)
        .filter(|&c| indeg[c] == 0)
        .map(|c| (key(c), c))
        .collect();
    let mut out_idx = vec![usize::MAX; ncomp];
    let mut out = Vec::with_capacity(ncomp);
    while let Some((_, c)) = ready.pop() {
        out_idx[c] = out.len();
        out.push(c);
        for &ch in &children[c] {
            indeg[ch] -= 1;
            if indeg[ch] == 0 {
                ready.push((key(ch), ch));
            }
        }
    }
    debug_assert_eq!(out.len(), ncomp, "the component graph is acyclic");
    out.iter()
        .map(|&c| {
            if members[c].len() > 1 || pre[c] != PrePass::None {
                let names: Vec<String> = members[c].iter().map(|&t| m.tables[t].qualified()).collect();
                notes.push(format!(
                    "{} reference{} {} through foreign keys: read {} before writing, until the dropped rows are settled",
                    names.join(", "),
                    if names.len() == 1 { "s" } else { "" },
                    if names.len() == 1 { "itself" } else { "each other" },
                    if pre[c] == PrePass::UntilStable { "repeatedly" } else { "once" },
                ));
            }
            Component { tables: members[c].clone(), pre_pass: pre[c], deps: deps[c].iter().map(|&d| out_idx[d]).collect() }
        })
        .collect()
}

/// Tarjan's strongly connected components, iteratively (schemas can be
/// large). Returns each node's component number.
fn tarjan(n: usize, edges: &[BTreeSet<usize>]) -> Vec<usize> {
    let adj: Vec<Vec<usize>> = edges.iter().map(|s| s.iter().copied().collect()).collect();
    let mut index = vec![usize::MAX; n];
    let mut low = vec![0; n];
    let mut on_stack = vec![false; n];
    let mut stack = Vec::new();
    let mut comp = vec![usize::MAX; n];
    let mut next_index = 0;
    let mut next_comp = 0;
    for s in 0..n {
        if index[s] != usize::MAX {
            continue;
        }
        let mut call: Vec<(usize, usize)> = vec![(s, 0)];
        index[s] = next_index;
        low[s] = next_index;
        next_index += 1;
        stack.push(s);
        on_stack[s] = true;
        while let Some(top) = call.last_mut() {
            let v = top.0;
            if top.1 < adj[v].len() {
                let w = adj[v][top.1];
                top.1 += 1;
                if index[w] == usize::MAX {
                    index[w] = next_index;
                    low[w] = next_index;
                    next_index += 1;
                    stack.push(w);
                    on_stack[w] = true;
                    call.push((w, 0));
                } else if on_stack[w] {
                    low[v] = low[v].min(index[w]);
                }
            } else {
                call.pop();
                if let Some(&(u, _)) = call.last() {
                    low[u] = low[u].min(low[v]);
                }
                if low[v] == index[v] {
                    while let Some(w) = stack.pop() {
                        on_stack[w] = false;
                        comp[w] = next_comp;
                        if w == v {
                            break;
                        }
                    }
                    next_comp += 1;
                }
            }
        }
    }
    comp
}
