//! A real S3 server for tests: Garage on loopback, started once per test
//! process by `scripts/garage-test.sh`, one fresh bucket per test, plus
//! config files for S3 and `file://` repositories.
//!
//! Absent servers: locally the test prints why and skips; in CI (`CI` set)
//! it fails, so the suite can never pass by skipping there.

use lethe::config::StorageConfig;
use lethe::storage::s3::{PartSizing, S3Options, S3Storage};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

/// True when running in CI, where a missing server is a failure.
pub fn in_ci() -> bool {
    std::env::var_os("CI").is_some_and(|v| !v.is_empty() && v != "0" && v != "false")
}

/// Skips (prints the reason, returns false) locally; panics in CI.
pub fn skip_or_fail(reason: &str) -> bool {
    if in_ci() {
        panic!("{reason} (CI is set: integration tests may not be skipped)");
    }
    eprintln!("SKIPPED: {reason}");
    false
}

/// True if PostgreSQL answers at `pg_base()`; otherwise skips or fails as
/// [`skip_or_fail`] says.
pub fn postgres() -> bool {
    static UP: OnceLock<bool> = OnceLock::new();
    let up = *UP.get_or_init(|| {
        Command::new("pg_isready")
            .args(["-d", &format!("{}/postgres", super::pg_base())])
            .output()
            .is_ok_and(|o| o.status.success())
    });
    up || skip_or_fail(&format!(
        "PostgreSQL is not answering at {}",
        super::pg_base()
    ))
}

/// Where the test Garage listens and the key the tests use.
#[derive(Debug, Clone)]
pub struct Garage {
    pub endpoint: String,
    pub region: String,
    pub access_key: String,
    pub secret_key: String,
    /// The generated garage.toml (for the `garage` CLI).
    pub config: PathBuf,
    pub bin: PathBuf,
}

fn garage_bin() -> PathBuf {
    std::env::var_os("GARAGE_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var("HOME").unwrap_or_else(|_| "/root".into()))
                .join(".cache/lethe-tools/bin/garage")
        })
}

fn start() -> Result<Garage, String> {
    start_with(&[])
}

/// Runs the script with extra environment (another state dir, port, region).
fn start_with(env: &[(&str, &str)]) -> Result<Garage, String> {
    let bin = garage_bin();
    if !bin.exists() {
        return Err(format!(
            "no Garage binary at {} (set GARAGE_BIN, or run .ci/run which installs it)",
            bin.display()
        ));
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/garage-test.sh");
    let out = Command::new(&script)
        .env("GARAGE_BIN", &bin)
        .envs(env.iter().copied())
        .output()
        .map_err(|e| format!("cannot run {}: {e}", script.display()))?;
    if !out.status.success() {
        return Err(format!(
            "{} failed: {}",
            script.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let var = |name: &str| {
        text.lines()
            .filter_map(|l| l.strip_prefix("export "))
            .find_map(|l| l.strip_prefix(&format!("{name}=")))
            .map(str::to_string)
            .ok_or_else(|| format!("garage-test.sh printed no {name}"))
    };
    Ok(Garage {
        endpoint: var("LETHE_TEST_S3_ENDPOINT")?,
        region: var("LETHE_TEST_S3_REGION")?,
        access_key: var("AWS_ACCESS_KEY_ID")?,
        secret_key: var("AWS_SECRET_ACCESS_KEY")?,
        config: var("GARAGE_CONFIG")?.into(),
        bin,
    })
}

/// The test Garage, started once per test process; `None` (with the reason
/// printed) when it cannot run locally. In CI it panics instead.
pub fn garage() -> Option<Garage> {
    static G: OnceLock<Result<Garage, String>> = OnceLock::new();
    match G.get_or_init(start) {
        Ok(g) => Some(g.clone()),
        Err(reason) => {
            skip_or_fail(&format!("Garage is not available: {reason}"));
            None
        }
    }
}

/// A second test Garage that answers GetBucketLocation with a non-EU region
/// (`us-east-1`), to prove the store's own answer is checked.
pub fn garage_outside_eu() -> Option<Garage> {
    static G: OnceLock<Result<Garage, String>> = OnceLock::new();
    let dir = std::env::temp_dir().join("lethe-garage-us");
    let dir = dir.to_string_lossy().to_string();
    let started = G.get_or_init(|| {
        start_with(&[
            ("LETHE_GARAGE_DIR", dir.as_str()),
            ("LETHE_GARAGE_PORT", "29200"),
            ("LETHE_GARAGE_REGION", "us-east-1"),
        ])
    });
    match started {
        Ok(g) => Some(g.clone()),
        Err(reason) => {
            skip_or_fail(&format!("the us-east-1 Garage is not available: {reason}"));
            None
        }
    }
}

/// A bucket made for one test; emptied and deleted when dropped.
#[derive(Debug)]
pub struct TestBucket {
    pub name: String,
    garage: Garage,
}

impl std::ops::Deref for TestBucket {
    type Target = str;
    fn deref(&self) -> &str {
        &self.name
    }
}

impl Drop for TestBucket {
    fn drop(&mut self) {
        let (g, name) = (self.garage.clone(), self.name.clone());
        // A fresh runtime on its own thread: Drop may run inside a test's runtime.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            rt.block_on(async {
                let c = g.client().await;
                let uploads = c.list_multipart_uploads().bucket(&name).send().await.ok()?;
                for u in uploads.uploads() {
                    let _ = c
                        .abort_multipart_upload()
                        .bucket(&name)
                        .key(u.key().unwrap_or_default())
                        .upload_id(u.upload_id().unwrap_or_default())
                        .send()
                        .await;
                }
                let mut pages = c.list_objects_v2().bucket(&name).into_paginator().send();
                while let Some(Ok(page)) = pages.next().await {
                    for o in page.contents() {
                        let _ = c
                            .delete_object()
                            .bucket(&name)
                            .key(o.key().unwrap_or_default())
                            .send()
                            .await;
                    }
                }
                c.delete_bucket().bucket(&name).send().await.ok()
            })
        })
        .join();
    }
}

impl Garage {
    /// Runs the `garage` CLI against the test server.
    pub fn cli(&self, args: &[&str]) -> Output {
        let out = Command::new(&self.bin)
            .arg("-c")
            .arg(&self.config)
            .args(args)
            .output()
            .expect("garage runs");
        assert!(
            out.status.success(),
            "garage {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    /// A fresh, empty bucket for one test (`lethe-t-<random>`), readable and
    /// writable by the test key.
    pub fn new_bucket(&self) -> TestBucket {
        let name = format!("lethe-t-{:016x}", rand::random::<u64>());
        self.cli(&["bucket", "create", &name]);
        self.cli(&[
            "bucket",
            "allow",
            "--read",
            "--write",
            "--owner",
            &name,
            "--key",
            &self.access_key,
        ]);
        TestBucket {
            name,
            garage: self.clone(),
        }
    }

    pub fn credentials(&self) -> aws_sdk_s3::config::Credentials {
        aws_sdk_s3::config::Credentials::new(
            &self.access_key,
            &self.secret_key,
            None,
            None,
            "lethe-tests",
        )
    }

    /// S3 options with the test key (in-process code cannot use the
    /// environment: tests run in parallel threads).
    pub fn s3_options(&self) -> S3Options {
        S3Options {
            credentials: Some(self.credentials()),
            ..S3Options::default()
        }
    }

    /// A storage section for an `s3://bucket/prefix` repository here.
    pub fn storage_config(&self, bucket: &str, prefix: &str) -> StorageConfig {
        StorageConfig {
            url: format!("s3://{bucket}/{prefix}"),
            endpoint: Some(self.endpoint.clone()),
            region: self.region.clone(),
            path_style: true,
            ..StorageConfig::default()
        }
    }

    /// An S3 storage on a bucket; `part_sizing` lets tests force multipart
    /// uploads with small bodies.
    pub async fn storage(&self, bucket: &str, prefix: &str, part_sizing: PartSizing) -> S3Storage {
        let opts = S3Options {
            part_sizing,
            ..self.s3_options()
        };
        S3Storage::connect(
            &self.storage_config(bucket, prefix),
            bucket.to_string(),
            prefix.to_string(),
            opts,
        )
        .await
        .expect("connect to the test Garage")
    }

    /// A plain SDK client with the test key (for checks from outside Lethe).
    pub async fn client(&self) -> aws_sdk_s3::Client {
        lethe::storage::s3::client(&self.storage_config("unused", ""), &self.s3_options())
            .await
            .expect("S3 client for the test Garage")
    }

    /// Environment for a `lethe` or `aws` child process: the standard AWS
    /// credential chain, pointed at the test key.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ACCESS_KEY_ID", self.access_key.clone()),
            ("AWS_SECRET_ACCESS_KEY", self.secret_key.clone()),
            ("AWS_REGION", self.region.clone()),
            ("AWS_DEFAULT_REGION", self.region.clone()),
            ("AWS_EC2_METADATA_DISABLED", "true".into()),
            // No stray profile or session token from the developer's shell.
            ("AWS_PROFILE", String::new()),
            ("AWS_SESSION_TOKEN", String::new()),
            ("AWS_CONFIG_FILE", "/dev/null".into()),
            ("AWS_SHARED_CREDENTIALS_FILE", "/dev/null".into()),
        ]
    }

    /// `lethe --config <cfg> <args…>` with the test key in the environment and
    /// the test hooks cleared.
    pub fn lethe(&self, cfg: &Path, args: &[&str]) -> Output {
        super::lethe_cmd(cfg, args, &self.env())
            .output()
            .expect("lethe runs")
    }

    /// The aws CLI against the test server; panics with its stderr on failure.
    pub fn aws(&self, args: &[&str]) -> String {
        let mut cmd = Command::new("aws");
        cmd.arg("--endpoint-url").arg(&self.endpoint).args(args);
        super::apply_env(&mut cmd, &self.env());
        let out = cmd.output().expect("the aws CLI runs (apt install awscli)");
        assert!(
            out.status.success(),
            "aws {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).to_string()
    }
}

/// Which repository a test config points at.
pub enum Repo<'a> {
    File(&'a Path),
    S3 {
        garage: &'a Garage,
        bucket: &'a str,
        prefix: &'a str,
    },
}

/// A complete, valid lethe config for `repo`, with a fresh age identity in
/// `dir` (recipient and identity_file set), the erasure list and API socket
/// under `dir`, text logs. Sections not written here (`[retention]`,
/// `[schedule]`, `[snapshot]`) can be appended by the test.
pub fn repo_config_text(dir: &Path, repo: &Repo, source_url: &str) -> String {
    let key = dir.join("identity.key");
    let recipient = if key.exists() {
        let text = std::fs::read_to_string(&key).expect("read identity");
        text.lines()
            .find_map(|l| l.strip_prefix("# public key: "))
            .expect("identity has a public key line")
            .to_string()
    } else {
        lethe::crypto::keygen(&key).expect("keygen")
    };
    let storage = match repo {
        Repo::File(path) => format!("url = \"file://{}\"", path.display()),
        Repo::S3 {
            garage,
            bucket,
            prefix,
        } => format!(
            "url = \"s3://{bucket}/{prefix}\"\nendpoint = \"{}\"\nregion = \"{}\"\npath_style = true",
            garage.endpoint, garage.region
        ),
    };
    format!(
        r#"[source]
url = "{source_url}"

[storage]
{storage}

[encryption]
recipients = ["{recipient}"]
identity_file = "{key}"

[erasure]
path = "{erasure}"

[api]
listen = "unix:{sock}"

[log]
format = "text"
"#,
        key = key.display(),
        erasure = dir.join("erasure").display(),
        sock = dir.join("api.sock").display(),
    )
}

/// Writes [`repo_config_text`] plus `extra` as `dir/lethe.toml`.
pub fn write_repo_config(dir: &Path, repo: &Repo, extra: &str) -> PathBuf {
    let text = repo_config_text(dir, repo, &format!("{}/postgres", super::pg_base()));
    super::write_config(dir, &format!("{text}\n{extra}"))
}
