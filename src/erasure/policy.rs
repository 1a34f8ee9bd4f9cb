//! `[[erasure.policy]]` and `[[erasure.reference]]`: what a restore does to
//! an erased subject's rows table by table (drop, redact, keep), and the
//! references to subjects that the schema does not declare as foreign keys.
//!
//! These are the config's shapes and the checks that need no catalog; the
//! restore plan resolves them against a snapshot's tables (`restore::plan`),
//! and `lethe config check` against the source's.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// What a table's policy does to an erased subject's rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PolicyAction {
    /// Remove the row (what the foreign keys' rules do without a policy).
    Drop,
    /// Keep the row with the `set` columns overwritten.
    Redact,
    /// Keep the row unchanged, and say so in the report.
    Keep,
}

impl PolicyAction {
    pub fn as_str(self) -> &'static str {
        match self {
            PolicyAction::Drop => "drop",
            PolicyAction::Redact => "redact",
            PolicyAction::Keep => "keep",
        }
    }
}

/// One `[[erasure.policy]]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TablePolicy {
    /// `schema.table`, as psql spells it; a partitioned table or an
    /// inheritance parent covers its partitions and children.
    pub table: String,
    pub action: PolicyAction,
    /// For `redact`: column → `NULL`, a SQL literal (`'erased@invalid'`,
    /// `0`, `true`) or `pseudonym`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub set: BTreeMap<String, String>,
    /// Why (the law or the policy): required for `redact` and `keep`, and
    /// written into every report.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// What a declared reference does to a row that references an erased
/// subject's row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OnErase {
    #[default]
    Drop,
    SetNull,
    Redact,
}

impl OnErase {
    pub fn as_str(self) -> &'static str {
        match self {
            OnErase::Drop => "drop",
            OnErase::SetNull => "set_null",
            OnErase::Redact => "redact",
        }
    }
}

/// One `[[erasure.reference]]`: a column (or a path in a jsonb column)
/// holding keys of another table's rows without a foreign key.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DeclaredReference {
    /// `schema.table` of the referencing rows.
    pub table: String,
    pub column: String,
    /// A path inside a json/jsonb `column`: `$.actor.id`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// `schema.table.column` of the referenced key.
    pub references: String,
    #[serde(default)]
    pub on_erase: OnErase,
    /// For `on_erase = "redact"`: as a policy's `set`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub set: BTreeMap<String, String>,
}

impl DeclaredReference {
    /// Its name in plans, reports and messages.
    pub fn name(&self) -> String {
        match &self.path {
            Some(p) => format!(
                "declared reference {}.{} {} -> {}",
                self.table, self.column, p, self.references
            ),
            None => format!(
                "declared reference {}.{} -> {}",
                self.table, self.column, self.references
            ),
        }
    }

    /// `references` split into `(schema.table, column)`.
    ///
    /// # Errors
    /// Not `schema.table.column`.
    pub fn target(&self) -> Result<(String, String), String> {
        split_column(&self.references)
    }
}

/// `schema.table.column` into `(schema.table, column)`; the column is the
/// part after the last dot outside double quotes, and the table must be
/// schema-qualified as everywhere in the config.
///
/// # Errors
/// No column, or a table part psql would not read.
pub fn split_column(s: &str) -> Result<(String, String), String> {
    let mut quoted = false;
    let mut last_dot = None;
    for (i, c) in s.char_indices() {
        match c {
            '"' => quoted = !quoted,
            '.' if !quoted => last_dot = Some(i),
            _ => {}
        }
    }
    let Some(dot) = last_dot else {
        return Err("must be schema.table.column, e.g. app.users.id".into());
    };
    let (table, column) = (&s[..dot], &s[dot + 1..]);
    let column = column
        .strip_prefix('"')
        .and_then(|c| c.strip_suffix('"'))
        .map_or_else(|| column.to_string(), |c| c.replace("\"\"", "\""));
    if column.is_empty() {
        return Err("must be schema.table.column, e.g. app.users.id".into());
    }
    let (schema, name) = crate::pg::parse_table(table)?;
    Ok((format!("{schema}.{name}"), column))
}

/// A value a redaction writes into a column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SetValue {
    Null,
    /// A literal's text, as the column's input function reads it.
    Text(String),
    /// A keyed hash of the original value (`erasure.pseudonym_key_file`).
    Pseudonym,
}

impl SetValue {
    /// Reads a `set` value: `NULL`, `pseudonym`, a single-quoted SQL string
    /// (`''` for a quote), a number, `true` or `false`.
    ///
    /// # Errors
    /// Anything else, saying what is accepted.
    pub fn parse(s: &str) -> Result<SetValue, String> {
        let t = s.trim();
        if t.eq_ignore_ascii_case("null") {
            return Ok(SetValue::Null);
        }
        if t == "pseudonym" {
            return Ok(SetValue::Pseudonym);
        }
        if t.eq_ignore_ascii_case("true") || t.eq_ignore_ascii_case("false") {
            return Ok(SetValue::Text(t.to_ascii_lowercase()));
        }
        if let Some(body) = t.strip_prefix('\'').and_then(|b| b.strip_suffix('\''))
            && t.len() >= 2
        {
            let mut out = String::with_capacity(body.len());
            let mut chars = body.chars().peekable();
            while let Some(c) = chars.next() {
                if c == '\'' {
                    if chars.peek() == Some(&'\'') {
                        chars.next();
                    } else {
                        return Err(
                            "has a lone quote inside the literal; write '' for a quote, e.g. 'O''Brien'"
                                .into(),
                        );
                    }
                }
                out.push(c);
            }
            return Ok(SetValue::Text(out));
        }
        if is_number(t) {
            return Ok(SetValue::Text(t.to_string()));
        }
        Err(
            "must be NULL, pseudonym, a quoted SQL literal such as 'erased@invalid', a number, true or false"
                .into(),
        )
    }
}

fn is_number(t: &str) -> bool {
    let b = t.as_bytes();
    let mut i = 0;
    if matches!(b.first(), Some(b'-' | b'+')) {
        i = 1;
    }
    let digits = |i: &mut usize| {
        let s = *i;
        while *i < b.len() && b[*i].is_ascii_digit() {
            *i += 1;
        }
        *i - s
    };
    let mut n = digits(&mut i);
    if i < b.len() && b[i] == b'.' {
        i += 1;
        n += digits(&mut i);
    }
    if n == 0 {
        return false;
    }
    if i < b.len() && (b[i] == b'e' || b[i] == b'E') {
        i += 1;
        if i < b.len() && (b[i] == b'-' || b[i] == b'+') {
            i += 1;
        }
        if digits(&mut i) == 0 {
            return false;
        }
    }
    i == b.len()
}

/// One problem with the policies or references: the key it is under, the
/// value, and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub key: String,
    pub value: String,
    pub message: String,
}

/// The checks that need no catalog: names that parse, a reason where one is
/// required, `set` only where it applies and with values that parse, a
/// key for pseudonyms, a table named by one policy only.
pub fn check(
    policies: &[TablePolicy],
    references: &[DeclaredReference],
    has_pseudonym_key: bool,
) -> Vec<Problem> {
    let mut out = Vec::new();
    let mut push = |key: String, value: &str, message: &str| {
        out.push(Problem {
            key,
            value: value.to_string(),
            message: message.to_string(),
        })
    };
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    for (i, p) in policies.iter().enumerate() {
        let at = |k: &str| format!("erasure.policy[{i}].{k}");
        match crate::pg::parse_table(&p.table) {
            Err(e) => push(at("table"), &p.table, &e),
            Ok((s, n)) => {
                if let Some(first) = seen.insert(format!("{s}.{n}"), i) {
                    push(
                        at("table"),
                        &p.table,
                        &format!(
                            "erasure.policy[{first}] names this table already: one policy per table"
                        ),
                    );
                }
            }
        }
        let reason_missing = p.reason.as_deref().is_none_or(|r| r.trim().is_empty());
        if p.action != PolicyAction::Drop && reason_missing {
            push(
                at("reason"),
                "(unset)",
                &format!(
                    "a {} policy needs a reason (the law or policy that keeps these rows); it goes into every report",
                    p.action.as_str()
                ),
            );
        }
        match p.action {
            PolicyAction::Redact if p.set.is_empty() => push(
                at("set"),
                "{}",
                "a redact policy needs the columns it overwrites, e.g. set = { email = \"NULL\" }",
            ),
            PolicyAction::Drop | PolicyAction::Keep if !p.set.is_empty() => push(
                at("set"),
                "{…}",
                &format!(
                    "only a redact policy overwrites columns; remove set or make the action redact (it is {})",
                    p.action.as_str()
                ),
            ),
            _ => {}
        }
        check_set(&p.set, &at("set"), has_pseudonym_key, &mut push);
    }
    for (i, r) in references.iter().enumerate() {
        let at = |k: &str| format!("erasure.reference[{i}].{k}");
        if let Err(e) = crate::pg::parse_table(&r.table) {
            push(at("table"), &r.table, &e);
        }
        if r.column.is_empty() {
            push(at("column"), "\"\"", "must name a column");
        }
        if let Err(e) = r.target() {
            push(at("references"), &r.references, &e);
        }
        if let Some(path) = &r.path {
            if let Err(e) = crate::jsonpath::JsonPath::parse(path) {
                push(at("path"), path, &e.to_string());
            }
            if r.on_erase == OnErase::SetNull {
                push(
                    at("on_erase"),
                    "set_null",
                    "set_null would have to rewrite inside the JSON document; use drop, or redact with set = { <column> = \"NULL\" }",
                );
            }
        }
        match r.on_erase {
            OnErase::Redact if r.set.is_empty() => push(
                at("set"),
                "{}",
                "on_erase = \"redact\" needs the columns it overwrites, e.g. set = { actor = \"NULL\" }",
            ),
            OnErase::Drop | OnErase::SetNull if !r.set.is_empty() => push(
                at("set"),
                "{…}",
                "only on_erase = \"redact\" overwrites columns; remove set or make on_erase redact",
            ),
            _ => {}
        }
        check_set(&r.set, &at("set"), has_pseudonym_key, &mut push);
    }
    out
}

fn check_set(
    set: &BTreeMap<String, String>,
    at: &str,
    has_key: bool,
    push: &mut impl FnMut(String, &str, &str),
) {
    for (col, v) in set {
        match SetValue::parse(v) {
            Err(e) => push(format!("{at}.{col}"), v, &e),
            Ok(SetValue::Pseudonym) if !has_key => push(
                format!("{at}.{col}"),
                v,
                "a pseudonym needs a key: set erasure.pseudonym_key_file (make one with `lethe keygen --pseudonym-key FILE`)",
            ),
            Ok(_) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_values_parse_as_sql_spells_them() {
        assert_eq!(SetValue::parse("NULL"), Ok(SetValue::Null));
        assert_eq!(SetValue::parse("null"), Ok(SetValue::Null));
        assert_eq!(SetValue::parse("pseudonym"), Ok(SetValue::Pseudonym));
        assert_eq!(
            SetValue::parse("'erased@invalid'"),
            Ok(SetValue::Text("erased@invalid".into()))
        );
        assert_eq!(
            SetValue::parse("'O''Brien'"),
            Ok(SetValue::Text("O'Brien".into()))
        );
        assert_eq!(SetValue::parse("''"), Ok(SetValue::Text(String::new())));
        assert_eq!(
            SetValue::parse("-1.5e3"),
            Ok(SetValue::Text("-1.5e3".into()))
        );
        assert_eq!(SetValue::parse("TRUE"), Ok(SetValue::Text("true".into())));
        for bad in [
            "erased",
            "'",
            "'a'b'",
            "1.2.3",
            "e5",
            "NULL; DROP",
            "'x'::text",
        ] {
            assert!(SetValue::parse(bad).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn columns_split_after_the_last_unquoted_dot() {
        assert_eq!(
            split_column("app.users.id"),
            Ok(("app.users".into(), "id".into()))
        );
        assert_eq!(
            split_column("\"a.b\".users.\"Id\""),
            Ok(("a.b.users".into(), "Id".into()))
        );
        // Tables are schema-qualified everywhere in the config.
        assert!(split_column("users.id").is_err());
        assert!(split_column("users").is_err());
        assert!(split_column("app.users.").is_err());
    }

    fn policy(action: PolicyAction, set: &[(&str, &str)], reason: Option<&str>) -> TablePolicy {
        TablePolicy {
            table: "billing.invoices".into(),
            action,
            set: set
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            reason: reason.map(str::to_string),
        }
    }

    #[test]
    fn each_bad_policy_is_named_by_its_key() {
        let keys = |p: &[TablePolicy], r: &[DeclaredReference], key: bool| {
            check(p, r, key)
                .into_iter()
                .map(|p| p.key)
                .collect::<Vec<_>>()
        };
        assert!(keys(&[policy(PolicyAction::Keep, &[], Some("law"))], &[], false).is_empty());
        assert_eq!(
            keys(&[policy(PolicyAction::Keep, &[], None)], &[], false),
            ["erasure.policy[0].reason"]
        );
        assert_eq!(
            keys(&[policy(PolicyAction::Redact, &[], Some(" "))], &[], false),
            ["erasure.policy[0].reason", "erasure.policy[0].set"]
        );
        assert_eq!(
            keys(
                &[policy(
                    PolicyAction::Redact,
                    &[("email", "pseudonym"), ("n", "x")],
                    Some("law")
                )],
                &[],
                false
            ),
            ["erasure.policy[0].set.email", "erasure.policy[0].set.n"]
        );
        assert_eq!(
            keys(
                &[
                    policy(PolicyAction::Drop, &[], None),
                    policy(PolicyAction::Drop, &[("a", "NULL")], None)
                ],
                &[],
                false
            ),
            ["erasure.policy[1].table", "erasure.policy[1].set"]
        );
        let reference = DeclaredReference {
            table: "analytics.events".into(),
            column: "payload".into(),
            path: Some("$.actor.id".into()),
            references: "app.users.id".into(),
            on_erase: OnErase::SetNull,
            set: BTreeMap::new(),
        };
        assert_eq!(
            keys(&[], std::slice::from_ref(&reference), false),
            ["erasure.reference[0].on_erase"]
        );
        let bad_path = DeclaredReference {
            path: Some("$.actor[0]".into()),
            on_erase: OnErase::Drop,
            references: "users".into(),
            ..reference
        };
        assert_eq!(
            keys(&[], &[bad_path], false),
            [
                "erasure.reference[0].references",
                "erasure.reference[0].path"
            ]
        );
    }
}
