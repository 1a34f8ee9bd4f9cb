//! Planning with `erasure.policy` and `erasure.reference` on hand-built
//! manifests: which tables get which checks, and what is refused.

use super::tests::{fk, manifest, table};
use super::*;
use crate::erasure::policy::{DeclaredReference, OnErase, PolicyAction, TablePolicy};

fn root(t: &str) -> SubjectRoot {
    SubjectRoot {
        table: t.into(),
        column: "id".into(),
        reusable: false,
        subject: None,
    }
}

fn policy(t: &str, action: PolicyAction, set: &[(&str, &str)]) -> TablePolicy {
    TablePolicy {
        table: t.into(),
        action,
        set: set
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        reason: Some("law".into()),
    }
}

/// customers (root) <- invoices (RESTRICT) <- lines (CASCADE); orders
/// (CASCADE) under customers; events hold customer ids without a key.
fn shop() -> Manifest {
    manifest(
        vec![
            table("public.customers", &["id", "name:text", "email:text"]),
            table("public.invoices", &["id", "customer_id", "name:text"]),
            table("public.lines", &["id", "invoice_id"]),
            table("public.orders", &["id", "customer_id"]),
            table("public.events", &["id", "actor", "payload:jsonb"]),
        ],
        vec![
            fk(
                "inv_cust",
                "public.invoices",
                &["customer_id"],
                "public.customers",
                &["id"],
                FkAction::Restrict,
            ),
            fk(
                "line_inv",
                "public.lines",
                &["invoice_id"],
                "public.invoices",
                &["id"],
                FkAction::Cascade,
            ),
            fk(
                "ord_cust",
                "public.orders",
                &["customer_id"],
                "public.customers",
                &["id"],
                FkAction::Cascade,
            ),
        ],
    )
}

fn plan(
    policies: &[TablePolicy],
    references: &[DeclaredReference],
) -> Result<RestorePlan, PlanError> {
    RestorePlan::build_rules(
        &shop(),
        &Rules {
            roots: &[root("public.customers")],
            subject_type: SubjectType::Bigint,
            large_objects: &[],
            policies,
            references,
        },
    )
}

#[test]
fn a_kept_child_of_a_dropped_parent_is_refused_naming_the_key_and_the_ways_out() {
    let err = plan(&[policy("public.invoices", PolicyAction::Keep, &[])], &[]).unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, PlanError::Dangling { .. }), "{text}");
    assert!(
        text.contains("erasure.policy[0]") && text.contains("inv_cust"),
        "{text}"
    );
    assert!(text.contains("redact or keep policy"), "{text}");
    // Dropping the invoices too is fine.
    plan(&[policy("public.invoices", PolicyAction::Drop, &[])], &[]).unwrap();
}

#[test]
fn a_redacted_root_keeps_its_children_unless_they_have_a_policy() {
    let p = plan(
        &[
            policy(
                "public.customers",
                PolicyAction::Redact,
                &[("name", "NULL")],
            ),
            policy("public.invoices", PolicyAction::Redact, &[("name", "'x'")]),
        ],
        &[],
    )
    .unwrap();
    let t = |n: &str| p.tables.iter().find(|t| t.table == n).unwrap();
    assert_eq!(
        t("public.customers").action,
        Action::Redact(vec![(1, Replacement::Null)])
    );
    // Invoices: hit through their RESTRICT key, redacted.
    assert_eq!(t("public.invoices").fks.len(), 1);
    assert_eq!(t("public.invoices").fks[0].effect, Effect::Hit);
    // Orders (CASCADE, no policy) and lines (under redacted invoices) are
    // never touched: their parents' rows stay.
    assert!(t("public.orders").fks.is_empty());
    assert!(t("public.lines").fks.is_empty());
}

#[test]
fn a_redaction_of_a_referenced_key_is_refused() {
    let err = plan(
        &[
            policy("public.invoices", PolicyAction::Redact, &[("id", "NULL")]),
            policy("public.customers", PolicyAction::Keep, &[]),
        ],
        &[],
    )
    .unwrap_err();
    assert!(
        matches!(&err, PlanError::RedactKey { column, .. } if column == "id"),
        "{err}"
    );
}

#[test]
fn declared_references_become_checks_and_a_path_needs_json() {
    let reference = |column: &str, path: Option<&str>, on_erase| DeclaredReference {
        table: "public.events".into(),
        column: column.into(),
        path: path.map(str::to_string),
        references: "public.customers.id".into(),
        on_erase,
        set: Default::default(),
    };
    let p = plan(
        &[],
        &[reference("payload", Some("$.actor.id"), OnErase::Drop)],
    )
    .unwrap();
    let events = p
        .tables
        .iter()
        .find(|t| t.table == "public.events")
        .unwrap();
    assert_eq!(events.fks.len(), 1);
    assert_eq!(events.fks[0].effect, Effect::Hit);
    assert!(events.fks[0].path.is_some());
    // Never the list shortcut: the document's value must be extracted.
    assert!(matches!(events.fks[0].set, SetRef::Dropped(_)));

    let p = plan(&[], &[reference("actor", None, OnErase::SetNull)]).unwrap();
    let events = p
        .tables
        .iter()
        .find(|t| t.table == "public.events")
        .unwrap();
    assert_eq!(
        events.fks[0].effect,
        Effect::Rewrite(vec![(1, Replacement::Null)])
    );

    // Ids kept as text in a plain column: compared as the key spells them.
    let manifest = manifest(
        vec![
            table("public.customers", &["id"]),
            table("public.events", &["id", "actor:text"]),
        ],
        vec![],
    );
    let p = RestorePlan::build_rules(
        &manifest,
        &Rules {
            roots: &[root("public.customers")],
            subject_type: SubjectType::Bigint,
            large_objects: &[],
            policies: &[],
            references: &[reference("actor", None, OnErase::Drop)],
        },
    )
    .unwrap();
    assert_eq!(p.tables[1].fks.len(), 1);

    let err = plan(&[], &[reference("actor", Some("$.id"), OnErase::Drop)]).unwrap_err();
    assert!(matches!(err, PlanError::PathType { .. }), "{err}");
    let err = plan(
        &[],
        &[DeclaredReference {
            references: "public.nope.id".into(),
            ..reference("actor", None, OnErase::Drop)
        }],
    )
    .unwrap_err();
    assert!(
        matches!(&err, PlanError::UnknownTable { key, .. } if key == "erasure.reference[0].references"),
        "{err}"
    );
}
