use super::*;
use aws_sdk_s3::config::ProvideCredentials;

#[tokio::test]
async fn keys_quotes_export_and_comments_are_read() {
    let c = parse(
        "# lethe\nexport AWS_ACCESS_KEY_ID=GKabc\nAWS_SECRET_ACCESS_KEY=\"s3cr=t\"\n\nAWS_SESSION_TOKEN='tok'\nOTHER=x\n",
    )
    .expect("parses");
    let c = c.provide_credentials().await.expect("creds");
    assert_eq!(c.access_key_id(), "GKabc");
    assert_eq!(c.secret_access_key(), "s3cr=t");
    assert_eq!(c.session_token(), Some("tok"));
}

#[test]
fn a_missing_key_or_a_stray_line_is_refused() {
    let e = parse("AWS_ACCESS_KEY_ID=GKabc\n").expect_err("no secret");
    assert!(e.contains("AWS_SECRET_ACCESS_KEY"), "{e}");
    let e = parse("AWS_ACCESS_KEY_ID GKabc\n").expect_err("no =");
    assert!(e.contains("line 1"), "{e}");
}

#[test]
fn a_file_others_can_read_is_refused_naming_it_and_chmod_600() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().expect("tempdir");
    let p = dir.path().join("aws.env");
    std::fs::write(&p, "AWS_ACCESS_KEY_ID=a\nAWS_SECRET_ACCESS_KEY=b\n").expect("write");
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let e = load(&p).expect_err("0644");
    assert!(
        e.contains(&p.display().to_string()) && e.contains("chmod 600"),
        "{e}"
    );
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    assert!(load(&p).is_ok());
}
