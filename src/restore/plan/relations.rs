//! The snapshot's relations as roots and keys name them: partitioned
//! tables and inheritance parents resolved to the tables that hold rows.

use crate::repo::manifest::Manifest;
use std::collections::{BTreeSet, HashMap};

/// The snapshot's tables and partitioned tables, by `schema.table`, with
/// who inherits from whom.
pub(super) struct Relations {
    tables: HashMap<String, usize>,
    partitioned: BTreeSet<String>,
    children: HashMap<String, Vec<String>>,
    parents: HashMap<String, Vec<String>>,
}

impl Relations {
    pub(super) fn new(m: &Manifest) -> Relations {
        let mut children: HashMap<String, Vec<String>> = HashMap::new();
        let mut parents: HashMap<String, Vec<String>> = HashMap::new();
        let edges = m
            .tables
            .iter()
            .map(|t| (t.qualified(), &t.parents))
            .chain(m.partitioned.iter().map(|r| (r.qualified(), &r.parents)));
        for (child, ps) in edges {
            for p in ps {
                children.entry(p.clone()).or_default().push(child.clone());
                parents.entry(child.clone()).or_default().push(p.clone());
            }
        }
        Relations {
            tables: m
                .tables
                .iter()
                .enumerate()
                .map(|(i, t)| (t.qualified(), i))
                .collect(),
            partitioned: m.partitioned.iter().map(|r| r.qualified()).collect(),
            children,
            parents,
        }
    }

    pub(super) fn names(&self) -> impl Iterator<Item = String> + '_ {
        self.tables.keys().chain(&self.partitioned).cloned()
    }

    /// `name` and every table below it (partitions and inheriting tables,
    /// at any depth) that holds rows in the snapshot.
    pub(super) fn below(&self, name: &str) -> Vec<usize> {
        let mut out = BTreeSet::new();
        let mut seen = BTreeSet::new();
        let mut stack = vec![name.to_string()];
        while let Some(n) = stack.pop() {
            if !seen.insert(n.clone()) {
                continue;
            }
            if let Some(&t) = self.tables.get(&n) {
                out.insert(t);
            }
            if let Some(cs) = self.children.get(&n) {
                stack.extend(cs.iter().cloned());
            }
        }
        out.into_iter().collect()
    }

    /// The tables a foreign key on `name` stands for: the table itself, or
    /// every partition of a partitioned table (keys are not inherited by
    /// inheritance children, and a key to an inheritance parent checks
    /// only its own rows).
    pub(super) fn leaves(&self, name: &str) -> Vec<usize> {
        if self.partitioned.contains(name) {
            self.below(name)
        } else {
            self.tables.get(name).map(|&t| vec![t]).unwrap_or_default()
        }
    }

    /// The tables a root on `name` covers: everything `DELETE FROM name`
    /// reaches. A partition stands for its whole partitioned table (the
    /// subject's id space is the table, and a partition added later must
    /// not escape), said in a note. `None` if the snapshot has no such table.
    pub(super) fn root_cover(&self, name: &str, notes: &mut Vec<String>) -> Option<Vec<usize>> {
        if !self.tables.contains_key(name) && !self.partitioned.contains(name) {
            return None;
        }
        let mut top = name.to_string();
        while let Some(p) = self
            .parents
            .get(&top)
            .and_then(|ps| ps.iter().find(|p| self.partitioned.contains(*p)))
        {
            top = p.clone();
        }
        if top != name {
            notes.push(format!(
                "erasure.subjects names {name}, a partition of {top}: every partition of {top} is filtered; name {top} in the config"
            ));
        }
        Some(self.below(&top))
    }
}
