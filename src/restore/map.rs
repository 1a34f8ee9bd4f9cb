//! The erasure map: per table, what a restore does to an erased subject's
//! rows and why (the root, or the chain of keys and declared references
//! from one), which columns it overwrites, and the columns that look like
//! they hold subject ids but that no key or declaration reaches (suspected
//! soft references). Built from a restore plan, so it says exactly what
//! the filter will do; `lethe erasure map` prints it as text, JSON or a
//! Graphviz picture.

use super::plan::{Action, Effect, RestorePlan, SetRef};
use crate::erasure::policy::DeclaredReference;
use crate::repo::manifest::Manifest;
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ErasureMap {
    /// The snapshot the map was drawn from (`source`: the live database).
    pub snapshot: String,
    /// Every table, sorted by name.
    pub tables: Vec<MapTable>,
    /// Columns that look like subject references no key reaches.
    pub suspects: Vec<Suspect>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MapTable {
    pub table: String,
    /// `drop`, `redact`, `keep` (what an erased subject's rows get; also
    /// `redact` for rows a declared reference redacts), `rewrite` (only
    /// references set to NULL or a default), or `untouched`.
    pub action: String,
    /// From the table's `erasure.policy`, if any.
    pub reason: Option<String>,
    /// Columns an erased subject's rows get overwritten, with the value.
    pub redacts: Vec<Rewrite>,
    /// Columns rewritten when the row they reference goes.
    pub rewrites: Vec<Rewrite>,
    /// Why rows of this table are an erased subject's: the root columns
    /// and the keys from tables whose erased rows they reference.
    pub reached_by: Vec<Reach>,
    /// One chain from a root table to this one (the first of `reached_by`
    /// followed back).
    pub chain: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Rewrite {
    pub column: String,
    /// What it becomes (`NULL`, a literal, `pseudonym`, `default`).
    pub value: String,
    /// The key or policy that does it.
    pub by: String,
    /// The referenced table whose erased rows trigger it (empty for a
    /// policy's redaction).
    pub from: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Reach {
    /// `root`, `foreign_key` or `declared`.
    pub kind: String,
    /// The root column, or the key's name.
    pub via: String,
    /// The referencing columns (for a declared path, `column path`).
    pub columns: Vec<String>,
    /// The referenced table (empty for a root).
    pub from: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Suspect {
    pub table: String,
    pub column: String,
    #[serde(rename = "type")]
    pub type_name: String,
    pub why: String,
}

/// Words for people in column names (`user_id`, `customer_email`).
const PERSON_WORDS: &[&str] = &[
    "user",
    "customer",
    "account",
    "person",
    "member",
    "client",
    "owner",
    "author",
    "actor",
    "subject",
    "patient",
    "employee",
    "contact",
    "buyer",
    "seller",
    "recipient",
    "sender",
    "creator",
    "assignee",
    "reporter",
    "visitor",
    "viewer",
    "profile",
];

fn singular(name: &str) -> String {
    let n = name.to_ascii_lowercase();
    if let Some(s) = n.strip_suffix("ies") {
        format!("{s}y")
    } else if let Some(s) = n.strip_suffix('s') {
        s.to_string()
    } else {
        n
    }
}

impl ErasureMap {
    /// The map of `plan`, built from `m` with `references` (the config's,
    /// for the tables declared references point at).
    pub fn build(m: &Manifest, plan: &RestorePlan, references: &[DeclaredReference]) -> ErasureMap {
        let parent_of = |child: usize, check: &str| -> String {
            let name = check.strip_suffix(" (ON UPDATE)").unwrap_or(check);
            if let Some(r) = references.iter().find(|r| r.name() == name) {
                return r.target().map(|(t, _)| t).unwrap_or_default();
            }
            if let Some(rest) = name.strip_prefix("large objects in ") {
                return rest
                    .rsplit_once('.')
                    .map(|(t, _)| t.to_string())
                    .unwrap_or_default();
            }
            let t = &m.tables[child];
            let mut mine: Vec<String> = t.parents.clone();
            mine.push(t.qualified());
            let fks: Vec<_> = m.foreign_keys.iter().filter(|f| f.name == name).collect();
            fks.iter()
                .find(|f| mine.contains(&f.table))
                .or(fks.first())
                .map(|f| f.ref_table.clone())
                .unwrap_or_default()
        };
        let mut tables: Vec<MapTable> = Vec::with_capacity(plan.tables.len());
        // First hit parent per table, for the chains.
        let mut first: BTreeMap<String, String> = BTreeMap::new();
        for (t, p) in plan.tables.iter().enumerate() {
            let entry = &m.tables[t];
            let col = |c: usize| {
                entry
                    .columns
                    .get(c)
                    .map_or(String::new(), |c| c.name.clone())
            };
            let mut reached_by: Vec<Reach> = p
                .roots
                .iter()
                .map(|&c| Reach {
                    kind: "root".into(),
                    via: col(c),
                    columns: vec![col(c)],
                    from: String::new(),
                })
                .collect();
            let mut rewrites = Vec::new();
            let mut redacts = Vec::new();
            for f in &p.fks {
                let from = match &f.set {
                    SetRef::Dropped(sources) => sources
                        .first()
                        .map_or_else(|| parent_of(t, &f.name), |&(s, _)| top(m, s)),
                    SetRef::Root => parent_of(t, &f.name),
                };
                let mut columns: Vec<String> = f.columns.iter().map(|&c| col(c)).collect();
                if let (Some(path), Some(c)) = (&f.path, columns.first_mut()) {
                    *c = format!("{c} {}", path.as_str());
                }
                match &f.effect {
                    Effect::Hit => {
                        first.entry(p.table.clone()).or_insert_with(|| from.clone());
                        reached_by.push(Reach {
                            kind: if f.name.starts_with("declared reference") {
                                "declared".into()
                            } else {
                                "foreign_key".into()
                            },
                            via: f.name.clone(),
                            columns,
                            from,
                        });
                    }
                    Effect::Rewrite(entries) => {
                        let target = if f.redacts {
                            &mut redacts
                        } else {
                            &mut rewrites
                        };
                        for (c, r) in entries {
                            target.push(Rewrite {
                                column: col(*c),
                                value: replacement_text(r),
                                by: f.name.clone(),
                                from: from.clone(),
                            });
                        }
                    }
                    Effect::Refuse => {}
                }
            }
            let hit = !reached_by.is_empty();
            if let Action::Redact(entries) = &p.action
                && hit
            {
                for (c, r) in entries {
                    redacts.push(Rewrite {
                        column: col(*c),
                        value: p
                            .policy
                            .as_ref()
                            .and_then(|n| n.set.iter().find(|(k, _)| *k == col(*c)))
                            .map_or_else(|| replacement_text(r), |(_, v)| v.clone()),
                        by: "erasure.policy".into(),
                        from: String::new(),
                    });
                }
            }
            let action = match (&p.action, hit) {
                (Action::Drop, true) => "drop",
                (Action::Redact(_), true) => "redact",
                (Action::Keep, true) => "keep",
                (_, false) if !redacts.is_empty() => "redact",
                (_, false) if !rewrites.is_empty() => "rewrite",
                _ => "untouched",
            };
            tables.push(MapTable {
                table: p.table.clone(),
                action: action.into(),
                reason: p.policy.as_ref().and_then(|n| n.reason.clone()),
                redacts,
                rewrites,
                reached_by,
                chain: Vec::new(),
            });
        }
        for t in &mut tables {
            if t.action == "untouched" || t.action == "rewrite" {
                continue;
            }
            let mut chain = vec![t.table.clone()];
            let mut at = t.table.clone();
            while let Some(p) = first.get(&at) {
                if chain.contains(p) {
                    break;
                }
                chain.push(p.clone());
                at = p.clone();
            }
            chain.reverse();
            t.chain = chain;
        }
        let suspects = suspects(m, plan, references);
        tables.sort_by(|a, b| a.table.cmp(&b.table));
        ErasureMap {
            snapshot: m.id.to_string(),
            tables,
            suspects,
        }
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self)
            .unwrap_or_else(|e| format!("{{\"error\": \"map does not serialise: {e}\"}}"))
    }

    /// The map for a terminal: tables an erasure touches, then the
    /// suspects.
    pub fn human(&self) -> String {
        let mut s = format!("erasure map of snapshot {}\n", self.snapshot);
        s.push_str(&format!("{:<36} {:<10} WHY\n", "TABLE", "ACTION"));
        for t in self.tables.iter().filter(|t| t.action != "untouched") {
            let why = if t.chain.len() > 1 {
                let via = t
                    .reached_by
                    .iter()
                    .find(|r| r.kind != "root")
                    .map(|r| format!(" (via {})", r.via))
                    .unwrap_or_default();
                format!("{}{via}", t.chain.join(" -> "))
            } else if let Some(r) = t.reached_by.first() {
                format!("listed subject ({}.{})", t.table, r.via)
            } else {
                String::new()
            };
            s.push_str(&format!("{:<36} {:<10} {why}\n", t.table, t.action));
            if let Some(r) = &t.reason {
                s.push_str(&format!("{:<36}   reason: {r}\n", ""));
            }
            for r in &t.redacts {
                s.push_str(&format!(
                    "{:<36}   redacts {} = {} ({})\n",
                    "", r.column, r.value, r.by
                ));
            }
            for r in &t.rewrites {
                s.push_str(&format!(
                    "{:<36}   sets {} = {} ({})\n",
                    "", r.column, r.value, r.by
                ));
            }
        }
        let untouched = self
            .tables
            .iter()
            .filter(|t| t.action == "untouched")
            .count();
        s.push_str(&format!("{untouched} other table(s) untouched\n"));
        if self.suspects.is_empty() {
            s.push_str("no suspected soft references\n");
        } else {
            s.push_str("SUSPECTED SOFT REFERENCES (no key or erasure.reference reaches them; declare them or check them):\n");
            for x in &self.suspects {
                s.push_str(&format!(
                    "  {}.{} ({}): {}\n",
                    x.table, x.column, x.type_name, x.why
                ));
            }
        }
        s
    }

    /// The map as a Graphviz digraph: erased subjects flow from roots along
    /// keys; suspects hang off dashed.
    pub fn dot(&self) -> String {
        let q = |s: &str| format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""));
        let mut s = String::from(
            "digraph erasure {\n  rankdir=LR;\n  node [shape=box, style=filled, fontname=\"sans-serif\"];\n",
        );
        for t in &self.tables {
            if t.action == "untouched" && !self.suspects.iter().any(|x| x.table == t.table) {
                continue;
            }
            let color = match t.action.as_str() {
                "drop" => "#f4b6b6",
                "redact" => "#fde9a9",
                "keep" => "#c9e7c1",
                "rewrite" => "#cfe2f3",
                _ => "#ffffff",
            };
            let mut label = format!("{}\\n{}", t.table, t.action);
            for r in &t.redacts {
                label.push_str(&format!("\\n{} = {}", r.column, r.value));
            }
            s.push_str(&format!(
                "  {} [fillcolor=\"{color}\", label={}];\n",
                q(&t.table),
                q(&label).replace("\\\\n", "\\n")
            ));
        }
        let mut edges = BTreeSet::new();
        for t in &self.tables {
            for r in t.reached_by.iter().filter(|r| r.kind != "root") {
                edges.insert((r.from.clone(), t.table.clone(), r.via.clone(), ""));
            }
            for r in t.rewrites.iter().chain(&t.redacts) {
                edges.insert((r.from.clone(), t.table.clone(), r.by.clone(), "dotted"));
            }
        }
        for (from, to, via, style) in edges {
            if from.is_empty() {
                continue;
            }
            let style = if style.is_empty() {
                String::new()
            } else {
                format!(", style={style}")
            };
            s.push_str(&format!(
                "  {} -> {} [label={}{style}];\n",
                q(&from),
                q(&to),
                q(&via)
            ));
        }
        for x in &self.suspects {
            s.push_str(&format!(
                "  {} [fillcolor=\"#ffffff\", style=\"filled,dashed\"];\n  \"suspect: {}.{}\" [shape=note, style=dashed, label={}];\n  {} -> \"suspect: {}.{}\" [style=dashed];\n",
                q(&x.table),
                x.table,
                x.column,
                q(&format!("{} ({})?", x.column, x.type_name)),
                q(&x.table),
                x.table,
                x.column
            ));
        }
        s.push_str("}\n");
        s
    }
}

/// Table `t` as keys name it: a partition by its topmost partitioned table.
fn top(m: &Manifest, t: usize) -> String {
    let mut name = m.tables[t].qualified();
    let mut parents = m.tables[t].parents.clone();
    while let Some(p) = parents
        .iter()
        .find(|p| m.partitioned.iter().any(|r| &r.qualified() == *p))
        .cloned()
    {
        parents = m
            .partitioned
            .iter()
            .find(|r| r.qualified() == p)
            .map(|r| r.parents.clone())
            .unwrap_or_default();
        name = p;
    }
    name
}

fn replacement_text(r: &super::plan::Replacement) -> String {
    use super::plan::Replacement as R;
    match r {
        R::Null => "NULL".into(),
        R::Value(v) => format!("'{}'", String::from_utf8_lossy(v)),
        R::Unresolved(e) => e.clone(),
        R::Pseudonym(_) => "pseudonym".into(),
    }
}

/// Columns of tables without roots that look like subject references
/// (a person word with `_id`, an e-mail, a root's type under a name that
/// mentions the root's table) but that no key, declared reference or
/// redaction covers.
fn suspects(m: &Manifest, plan: &RestorePlan, references: &[DeclaredReference]) -> Vec<Suspect> {
    let mut covered: BTreeSet<(String, String)> = references
        .iter()
        .map(|r| (crate::pg::qualified(&r.table), r.column.clone()))
        .collect();
    for fk in &m.foreign_keys {
        for c in &fk.columns {
            covered.insert((fk.table.clone(), c.clone()));
        }
    }
    let roots: Vec<(String, crate::restore::keys::KeyClass)> = plan
        .tables
        .iter()
        .enumerate()
        .flat_map(|(t, p)| {
            p.roots.iter().map(move |&c| {
                (
                    singular(&m.tables[t].name),
                    crate::restore::keys::classify(&m.tables[t].columns[c]),
                )
            })
        })
        .collect();
    let mut out = Vec::new();
    for (t, p) in plan.tables.iter().enumerate() {
        let entry = &m.tables[t];
        if !p.roots.is_empty() {
            continue;
        }
        let mut used: BTreeSet<usize> = p.fks.iter().flat_map(|f| f.columns.clone()).collect();
        if let Action::Redact(e) = &p.action {
            used.extend(e.iter().map(|(c, _)| *c));
        }
        let mut mine = entry.parents.clone();
        mine.push(entry.qualified());
        for (c, column) in entry.columns.iter().enumerate() {
            if used.contains(&c)
                || mine
                    .iter()
                    .any(|t| covered.contains(&(t.clone(), column.name.clone())))
            {
                continue;
            }
            if let Some(why) = suspicion(&column.name, column, &roots) {
                out.push(Suspect {
                    table: entry.qualified(),
                    column: column.name.clone(),
                    type_name: column.type_name.clone(),
                    why,
                });
            }
        }
    }
    out.sort_by(|a, b| (&a.table, &a.column).cmp(&(&b.table, &b.column)));
    out
}

fn suspicion(
    name: &str,
    column: &crate::repo::manifest::Column,
    roots: &[(String, crate::restore::keys::KeyClass)],
) -> Option<String> {
    let n = name.to_ascii_lowercase();
    if n == "email" || n.ends_with("_email") || n.starts_with("email_") || n == "e_mail" {
        return Some("the name says it holds e-mail addresses".into());
    }
    let class = crate::restore::keys::classify(column);
    for (root, root_class) in roots {
        if n.contains(root.as_str()) && class == *root_class {
            return Some(format!(
                "the name mentions {root} and the type is that of its subject ids"
            ));
        }
    }
    if let Some(stem) = n.strip_suffix("_id").or_else(|| n.strip_suffix("id")) {
        let word = stem.rsplit('_').next().unwrap_or(stem);
        if PERSON_WORDS.contains(&word) {
            return Some(format!(
                "the name ({name}) looks like a reference to a person"
            ));
        }
    }
    None
}
