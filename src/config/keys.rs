//! Unknown keys, all of them at once: serde stops at the first, so each
//! table of the file is checked against the keys its section accepts, and
//! a near miss (`evrey`) gets a suggestion (`every`).
//!
//! The accepted keys come from the config types themselves: a table holding
//! only a probe key is deserialised at the same path, and serde's "unknown
//! field, expected one of …" lists them. Tables whose type takes any key
//! (or that serde reads some other way) are not checked here; serde's own
//! error then stands.

use super::{Config, ConfigIssue};
use toml::Value;

const PROBE: &str = "\u{1}lethe-probe";

#[derive(Clone)]
enum Seg {
    Key(String),
    Index(usize),
}

/// Every key in `text` that its section does not accept, each with a
/// suggestion for a near miss. Empty when the TOML does not parse (the
/// parse error is reported instead) or every key is known.
pub(super) fn unknown_keys(text: &str) -> Vec<ConfigIssue> {
    let Ok(table) = text.parse::<toml::Table>() else {
        return Vec::new();
    };
    let mut out = Vec::new();
    walk(&mut Vec::new(), &Value::Table(table), &mut out);
    out
}

fn walk(path: &mut Vec<Seg>, value: &Value, out: &mut Vec<ConfigIssue>) {
    match value {
        Value::Table(t) => {
            let Some(known) = known_keys(path) else {
                return;
            };
            for (k, v) in t {
                path.push(Seg::Key(k.clone()));
                if known.iter().any(|n| n == k) {
                    walk(path, v, out);
                } else {
                    out.push(issue(path, k, v, &known));
                }
                path.pop();
            }
        }
        Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                path.push(Seg::Index(i));
                walk(path, v, out);
                path.pop();
            }
        }
        _ => {}
    }
}

fn issue(path: &[Seg], key: &str, value: &Value, known: &[String]) -> ConfigIssue {
    let section = dotted(&path[..path.len() - 1]);
    let what = if section.is_empty() {
        "unknown section".to_string()
    } else {
        format!("unknown key in [{section}]")
    };
    let message = match suggest(key, known) {
        Some(s) => format!("{what}: did you mean `{s}`?"),
        None => format!("{what}: valid keys are {}", known.join(", ")),
    };
    let value = match value {
        Value::Table(_) => "{…}".to_string(),
        Value::Array(_) => "[…]".to_string(),
        v => v.to_string(),
    };
    ConfigIssue {
        key: dotted(path),
        value,
        message,
    }
}

fn dotted(path: &[Seg]) -> String {
    let mut s = String::new();
    for seg in path {
        match seg {
            Seg::Key(k) => {
                if !s.is_empty() {
                    s.push('.');
                }
                s.push_str(k);
            }
            Seg::Index(i) => s.push_str(&format!("[{i}]")),
        }
    }
    s
}

/// The keys the table at `path` accepts, from serde's unknown-field error
/// for a probe key; `None` if the probe is not refused that way.
fn known_keys(path: &[Seg]) -> Option<Vec<String>> {
    let mut probe = Value::Table(toml::Table::from_iter([(
        PROBE.to_string(),
        Value::Integer(0),
    )]));
    for seg in path.iter().rev() {
        probe = match seg {
            Seg::Key(k) => Value::Table(toml::Table::from_iter([(k.clone(), probe)])),
            Seg::Index(_) => Value::Array(vec![probe]),
        };
    }
    let err = probe.try_into::<Config>().err()?.to_string();
    let rest = &err[err.find("unknown field")?..];
    let expected = rest.split_once("expected").map_or("", |(_, e)| e);
    let expected = expected.lines().next().unwrap_or("");
    Some(
        expected
            .split('`')
            .skip(1)
            .step_by(2)
            .map(str::to_string)
            .collect(),
    )
}

/// The known key nearest to `key` if it is a near miss: at most one edit
/// for short keys, two for longer ones (a swap of neighbours is one edit).
pub(super) fn suggest<'a>(key: &str, known: &'a [String]) -> Option<&'a str> {
    let limit = if key.chars().count() <= 4 { 1 } else { 2 };
    known
        .iter()
        .map(|k| (distance(&key.to_lowercase(), k), k))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k.as_str())
}

/// Edit distance with adjacent transpositions (optimal string alignment).
pub(super) fn distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut v = (d[i - 1][j] + 1)
                .min(d[i][j - 1] + 1)
                .min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                v = v.min(d[i - 2][j - 2] + 1);
            }
            d[i][j] = v;
        }
    }
    d[a.len()][b.len()]
}
