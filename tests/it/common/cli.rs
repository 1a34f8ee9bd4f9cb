//! Driving the `lethe` binary from a test rig, and looking at the rig's
//! repository from outside: what the crash, fault, daemon and snapshot
//! suites share.

use super::{Garage, TestBucket};
use lethe::repo::manifest::Manifest;
use lethe::storage::Storage;
use std::path::Path;
use std::process::{Command, Output};
use std::sync::Arc;

/// Environment variables that switch on test hooks in `lethe`: cleared for
/// every command a rig builds, so a test sets only the ones it means to.
const TEST_HOOKS: &[&str] = &[
    "LETHE_FAULTS",
    "LETHE_TEST_PAUSE_AT",
    "LETHE_TEST_PAUSE_BYTES",
    "LETHE_TEST_PAUSE_SECS",
    "LETHE_CLEANUP_GRACE",
    "LETHE_LOG",
];

/// Sets `env` on `cmd`; an empty value removes the variable.
pub fn apply_env(cmd: &mut Command, env: &[(&str, String)]) {
    for (k, v) in env {
        if v.is_empty() {
            cmd.env_remove(k);
        } else {
            cmd.env(k, v);
        }
    }
}

/// `lethe --config <cfg> <args…>` with the test hooks cleared and `env`
/// applied (e.g. a Garage key).
pub fn lethe_cmd(cfg: &Path, args: &[&str], env: &[(&str, String)]) -> Command {
    let mut c = Command::new(super::lethe_bin());
    c.arg("--config").arg(cfg).args(args);
    for k in TEST_HOOKS {
        c.env_remove(k);
    }
    apply_env(&mut c, env);
    c
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).to_string()
}

/// The CLI calls every rig makes, given how it builds a command.
pub trait LetheCli {
    /// `lethe --config <the rig's config> <args…>`, ready to run.
    fn cmd(&self, args: &[&str]) -> Command;

    fn run(&self, args: &[&str]) -> Output {
        super::output_within(self.cmd(args))
    }

    fn run_env(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        let mut c = self.cmd(args);
        for (k, v) in env {
            c.env(k, v);
        }
        super::output_within(c)
    }

    /// `lethe snapshot`, asserting success; the new id.
    fn snapshot(&self) -> String {
        let out = self.run(&["snapshot"]);
        assert!(
            out.status.success(),
            "lethe snapshot failed:\n{}",
            text(&out.stderr)
        );
        text(&out.stdout).trim().to_string()
    }

    /// `lethe show <id> --json`.
    fn manifest(&self, id: &str) -> Manifest {
        let out = self.run(&["show", id, "--json"]);
        assert!(out.status.success(), "show: {}", text(&out.stderr));
        serde_json::from_slice(&out.stdout).expect("manifest json")
    }

    /// Complete snapshot ids from `lethe list --json`.
    fn listed(&self) -> Vec<String> {
        let out = self.run(&["list", "--json"]);
        assert!(out.status.success(), "list: {}", text(&out.stderr));
        let v: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).expect("list json");
        v.iter()
            .map(|s| s["id"].as_str().unwrap_or_default().to_string())
            .collect()
    }
}

/// A rig's repository seen from outside `lethe`: the directory `dir`, or a
/// fresh bucket of `garage` under the prefix `prod`. `storage` is a client
/// for it on `rt` (an S3 client stays on the runtime that made it); `env`
/// is what `lethe` needs to reach it.
pub struct Outside {
    pub rt: tokio::runtime::Runtime,
    pub storage: Arc<dyn Storage>,
    pub env: Vec<(&'static str, String)>,
    pub bucket: Option<TestBucket>,
}

impl Outside {
    pub fn open(dir: &Path, garage: Option<&Garage>) -> Outside {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        let Some(g) = garage else {
            let storage =
                lethe::storage::fs::FsStorage::open(dir.to_path_buf()).expect("open repo");
            return Outside {
                rt,
                storage: Arc::new(storage),
                env: Vec::new(),
                bucket: None,
            };
        };
        let bucket = g.new_bucket();
        let storage = rt.block_on(g.storage(&bucket, "prod", Default::default()));
        Outside {
            rt,
            storage: Arc::new(storage),
            env: g.env(),
            bucket: Some(bucket),
        }
    }

    /// Objects and unfinished uploads under `prefix`, as storage lists them.
    pub fn leftovers(&self, prefix: &str) -> (Vec<String>, Vec<String>) {
        let objects = self.rt.block_on(self.storage.list(prefix)).expect("list");
        let uploads = self
            .rt
            .block_on(self.storage.list_incomplete(prefix))
            .expect("list incomplete");
        (
            objects.into_iter().map(|o| o.key).collect(),
            uploads.into_iter().map(|u| u.key).collect(),
        )
    }
}
