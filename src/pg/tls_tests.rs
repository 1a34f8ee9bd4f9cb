use super::*;

fn ep(url: &str) -> Result<Endpoint, SourceError> {
    endpoint(url)
}

#[test]
fn remote_hosts_get_tls_and_local_ones_may_skip_it() {
    let e = ep("postgres://lethe@db.internal:5432/app").unwrap();
    assert_eq!(e.mode, Mode::Require);
    assert!(
        e.pg_dump_url.ends_with("/app?sslmode=require"),
        "{}",
        e.pg_dump_url
    );
    assert_eq!(e.driver_url, "postgres://lethe@db.internal:5432/app");
    assert_eq!(
        ep("postgres://lethe@db.internal/app?sslmode=prefer")
            .unwrap()
            .mode,
        Mode::Require
    );
    assert!(
        ep("postgres://lethe@db.internal/app?sslmode=disable")
            .unwrap_err()
            .to_string()
            .contains("verify-full")
    );
    assert_eq!(
        ep("postgres://postgres@127.0.0.1:5432/app").unwrap().mode,
        Mode::Disable
    );
    assert_eq!(
        ep("postgres://postgres@localhost/app?sslmode=disable")
            .unwrap()
            .mode,
        Mode::Disable
    );
    assert_eq!(
        ep("postgres://postgres@[::1]/app").unwrap().mode,
        Mode::Disable
    );
    assert_eq!(
        ep("postgres://postgres@localhost/app?sslmode=require")
            .unwrap()
            .mode,
        Mode::Require
    );
    assert_eq!(
        ep("postgres://postgres@%2Frun%2Fpostgresql/app")
            .unwrap()
            .mode,
        Mode::Disable
    );
}

#[test]
fn libpq_only_parameters_are_kept_from_the_driver() {
    let e =
        ep("postgres://u@db.example/app?sslmode=verify-full&sslrootcert=/etc/ca.pem&application_name=x").unwrap();
    assert_eq!(e.mode, Mode::VerifyFull);
    assert_eq!(
        e.driver_url,
        "postgres://u@db.example/app?application_name=x"
    );
    assert!(
        e.pg_dump_url.contains("sslmode=verify-full")
            && e.pg_dump_url.contains("sslrootcert=%2Fetc%2Fca.pem")
    );
    assert_eq!(
        ep("postgres://u@db.example/app?sslmode=require&sslrootcert=/ca")
            .unwrap()
            .mode,
        Mode::VerifyCa
    );
    assert!(
        ep("postgres://u@db.example/app?sslcert=/c")
            .unwrap_err()
            .to_string()
            .contains("client certificates")
    );
    assert!(ep("postgres://u@db.example/app?sslmode=sometimes").is_err());
}

#[test]
fn spaces_and_plus_signs_in_parameters_reach_the_drivers_as_written() {
    let e = ep("postgres://u@127.0.0.1/app?options=-c%20TimeZone%3DUTC%20-c%20a%3Db%2Bc&application_name=x+y").unwrap();
    for url in [&e.driver_url, &e.pg_dump_url] {
        assert!(
            url.contains("options=-c%20TimeZone%3DUTC%20-c%20a%3Db%2Bc"),
            "{url}"
        );
        // A `+` the user wrote stays a literal plus (`%2B`), not a space.
        assert!(url.contains("application_name=x%2By"), "{url}");
        assert!(!url.contains("-c+"), "{url}");
    }
    let cfg = crate::pg::parse_config(&e.driver_url).unwrap();
    assert_eq!(cfg.get_options(), Some("-c TimeZone=UTC -c a=b+c"));
}
