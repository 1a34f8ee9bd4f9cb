//! The runner over real stored objects (a directory repository, zstd, no
//! encryption) with an in-memory destination: plan order, pre-passes over a
//! foreign-key cycle, parallel components, and a failing object.

use super::*;
use crate::crypto::Sealer;
use crate::erasure::MemSet;
use crate::erasure::config::SubjectRoot;
use crate::erasure::config::SubjectType;
use crate::repo::manifest::FkAction;
use crate::repo::manifest::TableEntry;
use crate::repo::object::ObjectSink;
use crate::restore::pass::strip_fields;
use crate::restore::plan::RestorePlan;
use crate::restore::plan::tests::{fk, manifest, table};
use crate::storage::Storage;
use crate::storage::fs::FsStorage;
use async_trait::async_trait;
use std::io::Write;
use std::sync::Mutex;

/// Collects each table's COPY text.
#[derive(Default)]
struct Collect(Mutex<HashMap<String, Vec<u8>>>);

#[async_trait]
impl TableDest for Collect {
    async fn load(
        &self,
        t: &TableEntry,
        mut rx: mpsc::Receiver<Frame>,
    ) -> Result<(), RestoreError> {
        let mut got = Vec::new();
        loop {
            match rx.recv().await {
                Some(Frame::Data(b)) => got.extend_from_slice(&b),
                Some(Frame::End) => break,
                None => {
                    return Err(RestoreError::Load {
                        table: t.qualified(),
                        message: "stopped".into(),
                    });
                }
            }
        }
        self.0.lock().unwrap().insert(t.name.clone(), got);
        Ok(())
    }
}

/// Stores `rows` as the single object of each table and fills the entries.
async fn store(
    storage: Arc<dyn Storage>,
    m: &mut crate::repo::manifest::Manifest,
    rows: &[(&str, &str)],
) {
    for (i, (name, text)) in rows.iter().enumerate() {
        let t = m.tables.iter_mut().find(|t| t.name == *name).unwrap();
        let key = format!("snapshots/{}/data/{i}.public.{name}.000.copy.zst.age", m.id);
        let (st, text, rt) = (
            storage.clone(),
            text.to_string(),
            tokio::runtime::Handle::current(),
        );
        let entry = tokio::task::spawn_blocking(move || {
            let (mut sink, h) = ObjectSink::create(st, key, &Sealer::Disabled, 3).unwrap();
            sink.write_all(text.as_bytes()).unwrap();
            sink.add_rows(text.matches('\n').count() as u64);
            sink.finish(h, &rt).unwrap()
        })
        .await
        .unwrap();
        t.rows = entry.rows;
        t.objects = vec![entry];
    }
}

/// users ⇄ teams (a cycle: users.team SET NULL, teams.owner CASCADE, and a
/// mentor self-reference CASCADE), members → users and teams.
fn cycle() -> crate::repo::manifest::Manifest {
    manifest(
        vec![
            table("public.members", &["user_id", "team_id"]),
            table("public.users", &["id", "team", "mentor"]),
            table("public.teams", &["id", "owner"]),
        ],
        vec![
            fk(
                "user_team",
                "public.users",
                &["team"],
                "public.teams",
                &["id"],
                FkAction::SetNull,
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
                "mentor",
                "public.users",
                &["mentor"],
                "public.users",
                &["id"],
                FkAction::Cascade,
            ),
            fk(
                "member_user",
                "public.members",
                &["user_id"],
                "public.users",
                &["id"],
                FkAction::Cascade,
            ),
            fk(
                "member_team",
                "public.members",
                &["team_id"],
                "public.teams",
                &["id"],
                FkAction::Cascade,
            ),
        ],
    )
}

const USERS: &str = "5\t11\t4\n4\t10\t3\n3\t\\N\t1\n1\t10\t\\N\n2\t11\t\\N\n6\t10\t2\n";
const TEAMS: &str = "10\t1\n11\t2\n12\t6\n";
const MEMBERS: &str = "2\t11\n6\t12\n6\t10\n5\t11\n2\t12\n";

async fn run(jobs: usize, listed: &[&str]) -> (HashMap<String, Vec<u8>>, Vec<TableOutcome>) {
    let dir = tempfile::tempdir().unwrap();
    let storage: Arc<dyn Storage> = Arc::new(FsStorage::open(dir.path().to_path_buf()).unwrap());
    let mut m = cycle();
    store(
        storage.clone(),
        &mut m,
        &[("users", USERS), ("teams", TEAMS), ("members", MEMBERS)],
    )
    .await;
    let roots = vec![SubjectRoot {
        table: "public.users".into(),
        column: "id".into(),
        reusable: false,
        subject: None,
    }];
    let plan = RestorePlan::build(&m, &roots, SubjectType::Bigint).unwrap();
    let keys = listed
        .iter()
        .map(|s| crate::erasure::key_of(SubjectType::Bigint, s.as_bytes()).unwrap())
        .collect();
    let shared = Arc::new(Shared {
        deltas: Default::default(),
        fills: Default::default(),
        merged: Default::default(),
        storage,
        opener: crate::crypto::Opener::Plain,
        manifest: Arc::new(m),
        plan: Arc::new(plan),
        erasure: Arc::new(MemSet::from_keys(keys)),
        subject_type: SubjectType::Bigint,
        progress: Arc::new(Progress::default()),
        loaded: None,
        pseudonym_key: None,
    });
    let dest = Arc::new(Collect::default());
    let outcomes = run_all(shared, Some(dest.clone() as Arc<dyn TableDest>), jobs)
        .await
        .unwrap();
    let got = dest.0.lock().unwrap().clone();
    (got, outcomes)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_foreign_key_cycle_is_settled_before_it_is_written() {
    for jobs in [1, 3] {
        // User 1 is erased: team 10 (owned by 1) goes, so user 4 and 6 lose
        // their team; user 3 (mentored by 1) goes, then 4 (mentored by 3),
        // then 5 (mentored by 4) — stored before their mentors.
        let (got, outcomes) = run(jobs, &["1"]).await;
        assert_eq!(
            String::from_utf8_lossy(&got["users"]),
            "2\t11\t\\N\n6\t\\N\t2\n",
            "jobs {jobs}"
        );
        assert_eq!(String::from_utf8_lossy(&got["teams"]), "11\t2\n12\t6\n");
        assert_eq!(
            String::from_utf8_lossy(&got["members"]),
            "2\t11\n6\t12\n2\t12\n"
        );
        let users = outcomes.iter().find(|o| o.table == 1).unwrap();
        assert_eq!((users.stats.rows_dropped, users.stats.rows_nulled), (4, 1));
        assert_eq!(
            users.passes, 2,
            "one collecting pass and one writing pass, whatever the depth"
        );
        // Members come after both tables it references.
        let order: Vec<usize> = outcomes.iter().map(|o| o.table).collect();
        assert_eq!(order.last(), Some(&0), "{order:?}");
    }
    let (got, _) = run(2, &[]).await;
    assert_eq!(String::from_utf8_lossy(&got["users"]), USERS);
    assert_eq!(String::from_utf8_lossy(&got["members"]), MEMBERS);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_object_fails_its_table_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let storage: Arc<dyn Storage> = Arc::new(FsStorage::open(dir.path().to_path_buf()).unwrap());
    let mut m = cycle();
    store(
        storage.clone(),
        &mut m,
        &[("users", USERS), ("teams", TEAMS), ("members", MEMBERS)],
    )
    .await;
    let key = m.tables[0].objects[0].key.clone();
    std::fs::remove_file(dir.path().join(&key)).unwrap();
    let roots = vec![SubjectRoot {
        table: "public.users".into(),
        column: "id".into(),
        reusable: false,
        subject: None,
    }];
    let plan = RestorePlan::build(&m, &roots, SubjectType::Bigint).unwrap();
    let shared = Arc::new(Shared {
        deltas: Default::default(),
        fills: Default::default(),
        merged: Default::default(),
        storage,
        opener: crate::crypto::Opener::Plain,
        manifest: Arc::new(m),
        plan: Arc::new(plan),
        erasure: Arc::new(MemSet::from_keys(vec![])),
        subject_type: SubjectType::Bigint,
        progress: Arc::new(Progress::default()),
        loaded: None,
        pseudonym_key: None,
    });
    let dest = Arc::new(Collect::default());
    let err = run_all(shared, Some(dest.clone() as Arc<dyn TableDest>), 2)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, RestoreError::Object { table, .. } if table == "public.members"),
        "{err}"
    );
    assert!(err.to_string().contains(&key), "{err}");
    assert!(!dest.0.lock().unwrap().contains_key("members"));
}

/// A reply thread 1,000 deep stored children first: erasing the author of
/// the root post drops every reply, in two reads of the table.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deep_self_reference_settles_in_two_passes() {
    let dir = tempfile::tempdir().unwrap();
    let storage: Arc<dyn Storage> = Arc::new(FsStorage::open(dir.path().to_path_buf()).unwrap());
    let mut m = manifest(
        vec![
            table("public.users", &["id"]),
            table("public.posts", &["id", "author", "parent"]),
        ],
        vec![
            fk(
                "author",
                "public.posts",
                &["author"],
                "public.users",
                &["id"],
                FkAction::Cascade,
            ),
            fk(
                "parent",
                "public.posts",
                &["parent"],
                "public.posts",
                &["id"],
                FkAction::Cascade,
            ),
        ],
    );
    const DEPTH: u64 = 1000;
    // Post i replies to post i - 1; post 0 is by user 7, the rest by user 8;
    // a second thread (ids 5000..) by user 8 stays. Children come first.
    let mut posts = String::new();
    for i in (1..DEPTH).rev() {
        posts.push_str(&format!("{i}\t8\t{}\n", i - 1));
    }
    posts.push_str("0\t7\t\\N\n5001\t8\t5000\n5000\t8\t\\N\n");
    store(
        storage.clone(),
        &mut m,
        &[("users", "7\n8\n"), ("posts", &posts)],
    )
    .await;
    let roots = vec![SubjectRoot {
        table: "public.users".into(),
        column: "id".into(),
        reusable: false,
        subject: None,
    }];
    let plan = RestorePlan::build(&m, &roots, SubjectType::Bigint).unwrap();
    let shared = Arc::new(Shared {
        deltas: Default::default(),
        fills: Default::default(),
        merged: Default::default(),
        storage,
        opener: crate::crypto::Opener::Plain,
        manifest: Arc::new(m),
        plan: Arc::new(plan),
        erasure: Arc::new(MemSet::from_keys(vec![
            crate::erasure::key_of(SubjectType::Bigint, b"7").unwrap(),
        ])),
        subject_type: SubjectType::Bigint,
        progress: Arc::new(Progress::default()),
        loaded: None,
        pseudonym_key: None,
    });
    let dest = Arc::new(Collect::default());
    let outcomes = run_all(shared, Some(dest.clone() as Arc<dyn TableDest>), 2)
        .await
        .unwrap();
    let got = dest.0.lock().unwrap().clone();
    assert_eq!(
        String::from_utf8_lossy(&got["posts"]),
        "5001\t8\t5000\n5000\t8\t\\N\n"
    );
    let posts = outcomes.iter().find(|o| o.table == 1).unwrap();
    assert_eq!(posts.stats.rows_dropped, DEPTH);
    assert_eq!(posts.passes, 2);
}

#[test]
fn generated_fields_are_cut_from_the_end_of_every_row() {
    let rows = b"1\ta\\tb\t7\t8\n2\t\\N\t9\t10\n";
    assert_eq!(&strip_fields(rows, 2)[..], b"1\ta\\tb\n2\t\\N\n");
    assert_eq!(&strip_fields(rows, 0)[..], &rows[..]);
}
