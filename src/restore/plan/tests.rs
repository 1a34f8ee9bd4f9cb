//! Unit tests of restore planning on hand-built manifests.

use super::*;
use crate::repo::manifest::{
    Column, ForeignKey, ListState, ObjectEntry, SchemaObjects, TableEntry,
};

fn obj(key: &str) -> ObjectEntry {
    ObjectEntry {
        key: key.into(),
        size: 0,
        blake3: String::new(),
        raw_size: 0,
        rows: 0,
    }
}

pub fn table(name: &str, cols: &[&str]) -> TableEntry {
    let (schema, name) = name.split_once('.').unwrap();
    TableEntry {
        schema: schema.into(),
        name: name.into(),
        columns: cols
            .iter()
            .map(|c| {
                let (n, t) = c.split_once(':').unwrap_or((c, "bigint"));
                Column {
                    name: n.into(),
                    type_name: t.into(),
                    default: None,
                    base_type: None,
                    nondeterministic: false,
                    generated: false,
                }
            })
            .collect(),
        rows: 0,
        raw_bytes: 0,
        objects: vec![],
        parents: vec![],
        extension_config: false,
        large_objects: false,
    }
}

pub fn fk(
    name: &str,
    t: &str,
    cols: &[&str],
    rt: &str,
    rcols: &[&str],
    on_delete: FkAction,
) -> ForeignKey {
    ForeignKey {
        name: name.into(),
        table: t.into(),
        columns: cols.iter().map(|s| s.to_string()).collect(),
        ref_table: rt.into(),
        ref_columns: rcols.iter().map(|s| s.to_string()).collect(),
        on_delete,
        set_columns: vec![],
        on_update: Some(FkAction::NoAction),
    }
}

pub fn manifest(tables: Vec<TableEntry>, fks: Vec<ForeignKey>) -> Manifest {
    let t = chrono::Utc::now();
    Manifest {
        format: 1,
        id: "20261122T130000Z-3f9a".parse().unwrap(),
        server_version: "15".into(),
        database: "app".into(),
        started_at: t,
        finished_at: t,
        expires_at: t,
        compression: "zstd".into(),
        recipients: vec![],
        schema: SchemaObjects {
            pre: obj("pre"),
            post: obj("post"),
        },
        tables,
        foreign_keys: fks,
        sequences: vec![],
        erasure_list: ListState::default(),
        partitioned: vec![],
        ctype: None,
        continuous: None,
        source: None,
    }
}

fn users_root() -> Vec<SubjectRoot> {
    vec![SubjectRoot {
        table: "public.users".into(),
        column: "id".into(),
        reusable: false,
        subject: None,
    }]
}

/// The acceptance schema: users (self-referencing), orders, order_items,
/// comments (SET NULL), payments (RESTRICT), and an unrelated table.
fn shop() -> Manifest {
    manifest(
        vec![
            table("public.order_items", &["id", "order_id", "sku:text"]),
            table("public.users", &["id", "email:text", "invited_by"]),
            table("public.orders", &["id", "user_id", "total:numeric"]),
            table("public.comments", &["id", "author_id", "body:text"]),
            table("public.payments", &["id", "order_id", "user_id"]),
            table("public.countries", &["code:text", "name:text"]),
        ],
        vec![
            fk(
                "items_order",
                "public.order_items",
                &["order_id"],
                "public.orders",
                &["id"],
                FkAction::Cascade,
            ),
            fk(
                "orders_user",
                "public.orders",
                &["user_id"],
                "public.users",
                &["id"],
                FkAction::Cascade,
            ),
            fk(
                "comments_author",
                "public.comments",
                &["author_id"],
                "public.users",
                &["id"],
                FkAction::SetNull,
            ),
            fk(
                "payments_order",
                "public.payments",
                &["order_id"],
                "public.orders",
                &["id"],
                FkAction::Restrict,
            ),
            fk(
                "payments_user",
                "public.payments",
                &["user_id"],
                "public.users",
                &["id"],
                FkAction::NoAction,
            ),
            fk(
                "users_inviter",
                "public.users",
                &["invited_by"],
                "public.users",
                &["id"],
                FkAction::SetNull,
            ),
        ],
    )
}

#[test]
fn shop_schema_is_planned_parents_first_with_every_action() {
    let m = shop();
    let p = RestorePlan::build(&m, &users_root(), SubjectType::Bigint).unwrap();
    let order: Vec<String> = p.load_order().map(|t| m.tables[t].qualified()).collect();
    let pos = |n: &str| order.iter().position(|o| o == n).unwrap();
    assert!(pos("public.users") < pos("public.orders"));
    assert!(pos("public.orders") < pos("public.order_items"));
    assert!(pos("public.orders") < pos("public.payments"));
    assert!(pos("public.users") < pos("public.comments"));
    assert_eq!(order.len(), 6);

    let users = &p.tables[1];
    assert_eq!(users.roots, vec![0]);
    assert_eq!(users.records, vec![vec![0]]);
    // invited_by checks the list directly: no pre-pass for users.
    assert_eq!(users.fks.len(), 1);
    assert_eq!(users.fks[0].set, SetRef::Root);
    assert_eq!(
        users.fks[0].effect,
        Effect::Rewrite(vec![(2, Replacement::Null)])
    );
    assert!(p.components.iter().all(|c| c.pre_pass == PrePass::None));

    // Users are dropped only for being listed: their children ask the list
    // directly and do not wait for users; orders' children wait for orders.
    let set_of = |t: usize, name: &str| {
        p.tables[t]
            .fks
            .iter()
            .find(|f| f.name == name)
            .map(|f| f.set.clone())
            .unwrap()
    };
    assert_eq!(set_of(2, "orders_user"), SetRef::Root);
    assert_eq!(set_of(3, "comments_author"), SetRef::Root);
    assert_eq!(set_of(4, "payments_order"), SetRef::Dropped(vec![(2, 0)]));
    for t in [2, 3] {
        let c = p.components.iter().find(|c| c.tables.contains(&t)).unwrap();
        assert!(
            c.deps.is_empty(),
            "{} waits for {:?}",
            m.tables[t].qualified(),
            c.deps
        );
    }

    let items = &p.tables[0];
    assert_eq!(items.fks[0].set, SetRef::Dropped(vec![(2, 0)]));
    assert_eq!(items.fks[0].effect, Effect::Hit);
    let payments = &p.tables[4];
    assert_eq!(payments.fks.len(), 2);
    assert!(payments.fks.iter().all(|f| f.effect == Effect::Hit));
    assert_eq!(
        p.tables[3].fks[0].effect,
        Effect::Rewrite(vec![(1, Replacement::Null)])
    );
    assert!(p.tables[5].is_passthrough());
    assert!(p.notes.is_empty(), "{:?}", p.notes);
}

#[test]
fn unknown_roots_and_mismatched_types_are_refused_by_name() {
    let m = shop();
    let err = RestorePlan::build(
        &m,
        &[SubjectRoot {
            table: "public.members".into(),
            column: "id".into(),
            reusable: false,
            subject: None,
        }],
        SubjectType::Bigint,
    )
    .unwrap_err();
    assert!(err.to_string().contains("public.members"), "{err}");
    assert!(
        err.to_string().contains("public.users"),
        "lists what exists: {err}"
    );
    let err = RestorePlan::build(
        &m,
        &[SubjectRoot {
            table: "public.users".into(),
            column: "uid".into(),
            reusable: false,
            subject: None,
        }],
        SubjectType::Bigint,
    )
    .unwrap_err();
    assert!(matches!(err, PlanError::UnknownRootColumn { .. }), "{err}");
    assert!(err.to_string().contains("email"), "{err}");
    let err = RestorePlan::build(&m, &users_root(), SubjectType::Uuid).unwrap_err();
    assert!(matches!(err, PlanError::RootType { .. }), "{err}");
}

#[test]
fn keys_into_tables_that_never_lose_rows_are_not_checked() {
    let m = manifest(
        vec![
            table("public.users", &["id", "country:text"]),
            table("public.countries", &["code:text"]),
            table("public.audit", &["id", "country:text"]),
        ],
        vec![
            fk(
                "users_country",
                "public.users",
                &["country"],
                "public.countries",
                &["code"],
                FkAction::Cascade,
            ),
            fk(
                "audit_country",
                "public.audit",
                &["country"],
                "public.countries",
                &["code"],
                FkAction::Cascade,
            ),
        ],
    );
    let p = RestorePlan::build(&m, &users_root(), SubjectType::Bigint).unwrap();
    assert!(p.tables[0].fks.is_empty());
    assert!(p.tables[1].is_passthrough() && p.tables[1].records.is_empty());
    assert!(p.tables[2].is_passthrough());
}

#[test]
fn composite_and_repeated_keys_share_record_slots_per_column_tuple() {
    let m = manifest(
        vec![
            table("public.users", &["tenant:text", "id", "email:text"]),
            table("public.a", &["tenant:text", "uid"]),
            table("public.b", &["t:text", "u", "email:text"]),
        ],
        vec![
            fk(
                "a_user",
                "public.a",
                &["tenant", "uid"],
                "public.users",
                &["tenant", "id"],
                FkAction::Cascade,
            ),
            fk(
                "b_user",
                "public.b",
                &["t", "u"],
                "public.users",
                &["tenant", "id"],
                FkAction::SetNull,
            ),
            fk(
                "b_email",
                "public.b",
                &["email"],
                "public.users",
                &["email"],
                FkAction::Cascade,
            ),
        ],
    );
    let p = RestorePlan::build(&m, &users_root(), SubjectType::Bigint).unwrap();
    assert_eq!(p.tables[0].records, vec![vec![0, 1], vec![2]]);
    assert_eq!(p.tables[1].fks[0].columns, vec![0, 1]);
    let b = &p.tables[2];
    assert_eq!(b.fks[0].set, SetRef::Dropped(vec![(0, 0)]));
    assert_eq!(
        b.fks[0].effect,
        Effect::Rewrite(vec![(0, Replacement::Null), (1, Replacement::Null)])
    );
    assert_eq!(b.fks[1].set, SetRef::Dropped(vec![(0, 1)]));
}

#[test]
fn self_referencing_cascade_and_cycles_get_pre_passes() {
    let m = manifest(
        vec![
            table("public.users", &["id", "invited_by", "team"]),
            table("public.teams", &["id", "owner"]),
        ],
        vec![
            fk(
                "inviter",
                "public.users",
                &["invited_by"],
                "public.users",
                &["id"],
                FkAction::Cascade,
            ),
            fk(
                "team_owner",
                "public.teams",
                &["owner"],
                "public.users",
                &["id"],
                FkAction::Cascade,
            ),
            fk(
                "user_team",
                "public.users",
                &["team"],
                "public.teams",
                &["id"],
                FkAction::SetNull,
            ),
        ],
    );
    let p = RestorePlan::build(&m, &users_root(), SubjectType::Bigint).unwrap();
    assert_eq!(p.components.len(), 1);
    assert_eq!(p.components[0].tables, vec![0, 1]);
    assert_eq!(p.components[0].pre_pass, PrePass::UntilStable);
    assert_eq!(p.tables[0].fks[0].set, SetRef::Dropped(vec![(0, 0)]));
    assert_eq!(p.notes.len(), 1);
    assert!(p.notes[0].contains("public.teams"), "{:?}", p.notes);

    // Users dropped for a second reason (their org): the self-reference
    // cannot be answered by the list alone.
    let m = manifest(
        vec![
            table("public.orgs", &["id"]),
            table("public.users", &["id", "org", "invited_by"]),
        ],
        vec![
            fk(
                "user_org",
                "public.users",
                &["org"],
                "public.orgs",
                &["id"],
                FkAction::Cascade,
            ),
            fk(
                "inviter",
                "public.users",
                &["invited_by"],
                "public.users",
                &["id"],
                FkAction::SetNull,
            ),
        ],
    );
    let roots = vec![
        SubjectRoot {
            table: "public.users".into(),
            column: "id".into(),
            reusable: false,
            subject: None,
        },
        SubjectRoot {
            table: "public.orgs".into(),
            column: "id".into(),
            reusable: false,
            subject: None,
        },
    ];
    let p = RestorePlan::build(&m, &roots, SubjectType::Bigint).unwrap();
    let order: Vec<usize> = p.load_order().collect();
    assert_eq!(order, vec![0, 1]);
    assert_eq!(p.components[1].pre_pass, PrePass::Once);
    // orgs rows are dropped only for being listed, so users' check against
    // orgs asks the list directly and users need not wait for orgs.
    assert_eq!(p.tables[1].fks[0].set, SetRef::Root);
    assert!(p.components[1].deps.is_empty());
}

#[test]
fn set_default_uses_constants_and_defers_expressions() {
    let mut m = manifest(
        vec![
            table("public.users", &["id"]),
            table("public.posts", &["id", "author", "editor", "reviewer"]),
        ],
        vec![
            fk(
                "author",
                "public.posts",
                &["author"],
                "public.users",
                &["id"],
                FkAction::SetDefault,
            ),
            fk(
                "editor",
                "public.posts",
                &["editor"],
                "public.users",
                &["id"],
                FkAction::SetDefault,
            ),
            fk(
                "reviewer",
                "public.posts",
                &["reviewer"],
                "public.users",
                &["id"],
                FkAction::SetDefault,
            ),
        ],
    );
    m.tables[1].columns[1].default = Some("'-1'::integer".into());
    m.tables[1].columns[2].default = Some("ghost_user()".into());
    let p = RestorePlan::build(&m, &users_root(), SubjectType::Bigint).unwrap();
    let fks = &p.tables[1].fks;
    assert_eq!(
        fks[0].effect,
        Effect::Rewrite(vec![(1, Replacement::Value(b"-1".to_vec()))])
    );
    assert_eq!(
        fks[1].effect,
        Effect::Rewrite(vec![(2, Replacement::Unresolved("ghost_user()".into()))])
    );
    assert_eq!(
        fks[2].effect,
        Effect::Rewrite(vec![(3, Replacement::Null)]),
        "no default: NULL"
    );
    assert_eq!(p.pending_defaults.len(), 1);
    let mut p = p;
    let d = p.pending_defaults[0].clone();
    assert_eq!(
        (d.column.as_str(), d.fk_name.as_str()),
        ("editor", "editor")
    );
    p.resolve_default(&d, Replacement::Value(b"0".to_vec()));
    assert_eq!(
        p.tables[1].fks[1].effect,
        Effect::Rewrite(vec![(2, Replacement::Value(b"0".to_vec()))])
    );
}

#[test]
fn constant_defaults_parse_like_pg_get_expr_prints_them() {
    let v = |s: &str| Some(Replacement::Value(s.as_bytes().to_vec()));
    assert_eq!(constant_default("0"), v("0"));
    assert_eq!(constant_default("(-1)"), v("-1"));
    assert_eq!(constant_default("'-1'::integer"), v("-1"));
    assert_eq!(constant_default("1.50"), v("1.50"));
    assert_eq!(constant_default("'it''s'::text"), v("it's"));
    assert_eq!(constant_default("'a\\b'::character varying"), v("a\\\\b"));
    assert_eq!(
        constant_default("'0b6e6f3c-5c1a-4d2e-9f00-aa11bb22cc33'::uuid"),
        v("0b6e6f3c-5c1a-4d2e-9f00-aa11bb22cc33")
    );
    assert_eq!(constant_default("'{}'::text[]"), v("{}"));
    assert_eq!(constant_default("NULL::bigint"), Some(Replacement::Null));
    assert_eq!(constant_default("true"), v("true"));
    assert_eq!(constant_default("nextval('users_id_seq'::regclass)"), None);
    assert_eq!(constant_default("now()"), None);
    assert_eq!(constant_default("E'a\\\\b'"), None);
    assert_eq!(constant_default("'a'::text || 'b'::text"), None);
    assert_eq!(constant_default("1 + 1"), None);
}
