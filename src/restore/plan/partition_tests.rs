//! Plans over partitioned tables and inheritance: roots and keys naming a
//! parent cover every partition or child in the snapshot.

use super::tests::{fk, manifest, table};
use super::*;
use crate::erasure::config::SubjectRoot;
use crate::repo::manifest::Relation;

fn root(t: &str) -> Vec<SubjectRoot> {
    vec![SubjectRoot {
        table: t.into(),
        column: "id".into(),
        reusable: false,
        subject: None,
    }]
}

fn part_of(
    mut t: crate::repo::manifest::TableEntry,
    parent: &str,
) -> crate::repo::manifest::TableEntry {
    t.parents = vec![parent.into()];
    t
}

fn rel(name: &str, parents: &[&str]) -> Relation {
    let (schema, name) = name.split_once('.').unwrap();
    Relation {
        schema: schema.into(),
        name: name.into(),
        parents: parents.iter().map(|p| p.to_string()).collect(),
    }
}

/// users partitioned by region (apac sub-partitioned), orders and
/// order_items partitioned by month with a key between the two parents.
fn partitioned_shop() -> Manifest {
    let mut m = manifest(
        vec![
            part_of(
                table("public.users_eu", &["id", "region:text"]),
                "public.users",
            ),
            part_of(
                table("public.users_apac_1", &["id", "region:text"]),
                "public.users_apac",
            ),
            part_of(
                table("public.users_apac_2", &["id", "region:text"]),
                "public.users_apac",
            ),
            part_of(
                table("public.orders_01", &["id", "user_id"]),
                "public.orders",
            ),
            part_of(
                table("public.orders_02", &["id", "user_id"]),
                "public.orders",
            ),
            part_of(
                table("public.items_01", &["id", "order_id"]),
                "public.items",
            ),
            part_of(
                table("public.items_02", &["id", "order_id"]),
                "public.items",
            ),
        ],
        vec![
            fk(
                "orders_user",
                "public.orders",
                &["user_id"],
                "public.users",
                &["id"],
                FkAction::Cascade,
            ),
            fk(
                "items_order",
                "public.items",
                &["order_id"],
                "public.orders",
                &["id"],
                FkAction::Cascade,
            ),
        ],
    );
    m.partitioned = vec![
        rel("public.users", &[]),
        rel("public.users_apac", &["public.users"]),
        rel("public.orders", &[]),
        rel("public.items", &[]),
    ];
    m
}

fn idx(m: &Manifest, name: &str) -> usize {
    m.tables.iter().position(|t| t.qualified() == name).unwrap()
}

#[test]
fn a_root_on_a_partitioned_table_covers_every_leaf_at_any_depth() {
    let m = partitioned_shop();
    let plan = RestorePlan::build(&m, &root("public.users"), SubjectType::Bigint).unwrap();
    for t in [
        "public.users_eu",
        "public.users_apac_1",
        "public.users_apac_2",
    ] {
        assert_eq!(plan.tables[idx(&m, t)].roots, vec![0], "{t}");
    }
    // A key between two partitioned tables: every items partition reads the
    // union of every orders partition's dropped set.
    let orders: Vec<(usize, usize)> = vec![
        (idx(&m, "public.orders_01"), 0),
        (idx(&m, "public.orders_02"), 0),
    ];
    for t in ["public.items_01", "public.items_02"] {
        let p = &plan.tables[idx(&m, t)];
        assert_eq!(p.fks.len(), 1, "{t}");
        assert_eq!(p.fks[0].set, SetRef::Dropped(orders.clone()), "{t}");
        assert_eq!(p.fks[0].effect, Effect::Hit);
    }
    // Each orders partition checks the users union.
    for t in ["public.orders_01", "public.orders_02"] {
        let p = &plan.tables[idx(&m, t)];
        let SetRef::Dropped(s) = &p.fks[0].set else {
            panic!("{t}: {:?}", p.fks[0].set)
        };
        assert_eq!(s.len(), 3, "{t} reads all three users partitions");
    }
    // Parents are filtered before children.
    let pos = |t: &str| plan.load_order().position(|x| x == idx(&m, t)).unwrap();
    assert!(pos("public.orders_02") < pos("public.items_01"));
    assert!(pos("public.users_apac_2") < pos("public.orders_01"));
}

#[test]
fn a_root_on_one_partition_covers_its_whole_table_and_says_so() {
    let m = partitioned_shop();
    let plan = RestorePlan::build(&m, &root("public.users_apac_1"), SubjectType::Bigint).unwrap();
    assert_eq!(plan.tables[idx(&m, "public.users_eu")].roots, vec![0]);
    assert!(
        plan.notes
            .iter()
            .any(|n| n.contains("a partition of public.users")),
        "{:?}",
        plan.notes
    );
}

#[test]
fn a_root_on_an_inheritance_parent_covers_its_children_but_keys_do_not() {
    let m = manifest(
        vec![
            table("public.users", &["id", "name:text"]),
            part_of(
                table("public.admins", &["id", "name:text", "level:integer"]),
                "public.users",
            ),
            part_of(
                table("public.superadmins", &["id", "name:text", "level:integer"]),
                "public.admins",
            ),
            table("public.posts", &["id", "author_id"]),
        ],
        vec![fk(
            "posts_author",
            "public.posts",
            &["author_id"],
            "public.users",
            &["id"],
            FkAction::Cascade,
        )],
    );
    let plan = RestorePlan::build(&m, &root("public.users"), SubjectType::Bigint).unwrap();
    for t in ["public.users", "public.admins", "public.superadmins"] {
        assert_eq!(plan.tables[idx(&m, t)].roots, vec![0], "{t}");
    }
    // A key to an inheritance parent checks only the parent's own rows.
    let posts = &plan.tables[idx(&m, "public.posts")];
    assert!(
        matches!(&posts.fks[0].set, SetRef::Root)
            || posts.fks[0].set == SetRef::Dropped(vec![(0, 0)])
    );
}

#[test]
fn keys_compare_by_type_and_uncomparable_ones_are_refused_by_name() {
    let m = manifest(
        vec![
            table("public.users", &["id", "score:double precision"]),
            table("public.codes", &["code:character(8)", "owner:bigint"]),
            table("public.uses", &["code:character varying(8)"]),
            table("public.ratings", &["score:double precision"]),
        ],
        vec![
            fk(
                "codes_owner",
                "public.codes",
                &["owner"],
                "public.users",
                &["id"],
                FkAction::Cascade,
            ),
            fk(
                "uses_code",
                "public.uses",
                &["code"],
                "public.codes",
                &["code"],
                FkAction::Cascade,
            ),
        ],
    );
    let plan = RestorePlan::build(&m, &root("public.users"), SubjectType::Bigint).unwrap();
    assert_eq!(plan.tables[2].forms.fks, vec![vec![keys::KeyForm::Trim]]);
    assert_eq!(
        plan.tables[1].forms.records,
        vec![vec![keys::KeyForm::Trim]]
    );

    let mut bad = m.clone();
    bad.foreign_keys.push(fk(
        "ratings_score",
        "public.ratings",
        &["score"],
        "public.users",
        &["score"],
        FkAction::Cascade,
    ));
    let err = RestorePlan::build(&bad, &root("public.users"), SubjectType::Bigint).unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("public.ratings.score") && msg.contains("double precision"),
        "{msg}"
    );

    let mut text_root = m.clone();
    text_root.tables[0].columns[0].type_name = "text".into();
    let err =
        RestorePlan::build(&text_root, &root("public.users"), SubjectType::Bigint).unwrap_err();
    assert!(matches!(err, PlanError::RootType { .. }), "{err}");
}

#[test]
fn quoted_root_names_find_schemas_with_dots() {
    let m = manifest(vec![table("app.v2.users", &["id"])], vec![]);
    // `table()` splits at the first dot: schema "app", name "v2.users";
    // build the real one by hand.
    let mut m = m;
    m.tables[0].schema = "app.v2".into();
    m.tables[0].name = "users".into();
    let plan = RestorePlan::build(&m, &root("\"app.v2\".users"), SubjectType::Bigint).unwrap();
    assert_eq!(plan.tables[0].roots, vec![0]);
}

#[test]
fn a_rewritten_referenced_key_applies_on_update_and_an_erased_default_is_refused() {
    // accounts.owner SET NULL, and owner is referenced by grants (ON UPDATE
    // would apply): refused, naming both keys.
    let m = manifest(
        vec![
            table("public.users", &["id"]),
            table("public.accounts", &["id", "owner"]),
            table("public.grants", &["owner"]),
        ],
        vec![
            fk(
                "acc_owner",
                "public.accounts",
                &["owner"],
                "public.users",
                &["id"],
                FkAction::SetNull,
            ),
            fk(
                "grant_owner",
                "public.grants",
                &["owner"],
                "public.accounts",
                &["owner"],
                FkAction::Cascade,
            ),
        ],
    );
    // NO ACTION on update: the grants check refuses rows that reference a
    // rewritten owner, reading accounts' rewritten keys (after its records).
    let plan = RestorePlan::build(&m, &root("public.users"), SubjectType::Bigint).unwrap();
    let grants = &plan.tables[2];
    assert_eq!(grants.fks.len(), 1, "{:?}", grants.fks);
    assert_eq!(grants.fks[0].effect, Effect::Refuse);
    assert_eq!(grants.fks[0].set, SetRef::Dropped(vec![(1, 0)]));
    assert_eq!(plan.tables[1].rewrites, vec![vec![1]]);
    // ON UPDATE CASCADE writes the new value (NULL) into grants.owner.
    let mut cascade = m.clone();
    cascade.foreign_keys[1].on_update = Some(FkAction::Cascade);
    let plan = RestorePlan::build(&cascade, &root("public.users"), SubjectType::Bigint).unwrap();
    assert_eq!(
        plan.tables[2].fks[0].effect,
        Effect::Rewrite(vec![(0, Replacement::Null)])
    );
    // A snapshot that did not record ON UPDATE actions is refused, naming the key.
    let mut old = m.clone();
    old.foreign_keys[1].on_update = None;
    let err = RestorePlan::build(&old, &root("public.users"), SubjectType::Bigint).unwrap_err();
    assert!(err.to_string().contains("grant_owner"), "{err}");

    // posts.author SET DEFAULT 0, and user 0 is erased.
    let mut m = manifest(
        vec![
            table("public.users", &["id"]),
            table("public.posts", &["id", "author"]),
        ],
        vec![fk(
            "post_author",
            "public.posts",
            &["author"],
            "public.users",
            &["id"],
            FkAction::SetDefault,
        )],
    );
    m.tables[1].columns[1].default = Some("0".into());
    let plan = RestorePlan::build(&m, &root("public.users"), SubjectType::Bigint).unwrap();
    let key = |s: &[u8]| crate::erasure::key_of(SubjectType::Bigint, s).unwrap();
    let list = crate::erasure::MemSet::from_keys(vec![key(b"5")]);
    plan.check_defaults(&list, SubjectType::Bigint).unwrap();
    let list = crate::erasure::MemSet::from_keys(vec![key(b"5"), key(b"0")]);
    let err = plan.check_defaults(&list, SubjectType::Bigint).unwrap_err();
    assert!(matches!(err, PlanError::DefaultErased { .. }), "{err}");
}
