//! The snapshot engine against real S3 (Garage): the acceptance database
//! verified deep, and a kill mid-upload whose multipart upload the next run
//! aborts, checked by listing the bucket with a plain S3 client.

use super::{FEATURE_SQL, Setup, kill_then_clean, text};
use crate::common::LetheCli;

#[test]
fn feature_rich_snapshot_to_garage_verifies_deep_and_matches_the_source() {
    let Some(s) = Setup::on_garage("snapgar", FEATURE_SQL, "") else {
        return;
    };
    let id = s.snapshot();
    assert_eq!(s.listed(), vec![id.clone()]);
    let out = s.run(&["verify", "latest", "--deep"]);
    assert!(
        out.status.success(),
        "verify --deep: {}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    let m = s.manifest(&id);
    assert!(
        m.tables.len() >= 8,
        "{:?}",
        m.tables.iter().map(|t| t.qualified()).collect::<Vec<_>>()
    );
    for t in &m.tables {
        let q = format!(
            "SELECT count(*) FROM \"{}\".\"{}\"",
            t.schema.replace('"', "\"\""),
            t.name.replace('"', "\"\"")
        );
        let n: u64 = s.db.sql(&q).trim().parse().expect("count");
        assert_eq!(t.rows, n, "row count of {}", t.qualified());
    }
    let users = m
        .tables
        .iter()
        .find(|t| t.qualified() == "app.users")
        .expect("users");
    let cols = users
        .columns
        .iter()
        .map(|c| format!("\"{}\"", c.name))
        .collect::<Vec<_>>()
        .join(", ");
    let want = crate::common::psql(&s.db.name, &format!("COPY app.users ({cols}) TO STDOUT"));
    assert_eq!(text(&s.payload(&users.objects[0])), want);
}

#[test]
fn a_kill_mid_upload_on_garage_leaves_a_multipart_upload_that_the_next_run_aborts() {
    // ~50 MB of random hex (compresses ~2x): the object outgrows two 8 MiB
    // parts before the pause, so a multipart upload is open when it dies.
    let Some(s) = Setup::on_garage(
        "snapgkill",
        "CREATE TABLE noise (id int, a text, b text); \
         INSERT INTO noise SELECT g, md5(random()::text), md5(random()::text) FROM generate_series(1, 700000) g;",
        "",
    ) else {
        return;
    };
    let g = crate::common::garage().expect("garage");
    let bucket = s.outside.bucket.as_ref().expect("bucket").name.clone();
    let client = s.outside.rt.block_on(g.client());
    let before: Vec<String> = s.listed();
    kill_then_clean(&s, &["data"], 40 << 20);

    // Nothing but complete snapshots under the prefix, no upload anywhere.
    let listed = s.listed();
    let uploads = s
        .outside
        .rt
        .block_on(client.list_multipart_uploads().bucket(&bucket).send())
        .expect("list uploads");
    assert!(
        uploads.uploads().is_empty(),
        "unfinished uploads remain: {:?}",
        uploads.uploads()
    );
    let objects = s
        .outside
        .rt
        .block_on(
            client
                .list_objects_v2()
                .bucket(&bucket)
                .prefix("prod/snapshots/")
                .send(),
        )
        .expect("list");
    for o in objects.contents() {
        let key = o.key().unwrap_or_default();
        let id = key
            .trim_start_matches("prod/snapshots/")
            .split('/')
            .next()
            .unwrap_or_default();
        assert!(
            listed.iter().any(|l| l == id),
            "object {key} belongs to no listed snapshot"
        );
    }
    assert_eq!(listed.len(), before.len() + 2);
}
