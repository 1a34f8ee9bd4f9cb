//! `lethe erase add|remove|import|check|list|sync`: through the daemon's API when
//! one answers at `api.listen`, else on the store directly. Either way the
//! same checks, the same output, the same exit codes.

use super::{Ctx, UsageError};
use crate::cli::EraseCommand;
use crate::config::Config;
use crate::erasure::api;
use crate::erasure::client::{ApiClient, ClientError};
use crate::erasure::journal::{self, SyncOutcome};
use crate::erasure::store::{AddOutcome, ErasureStore, StoreError, StoreStatus};
use std::io::BufRead;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// How long a command waits for a store held by another short-lived command.
const LOCK_PATIENCE: Duration = Duration::from_secs(20);
/// Ids and raw bytes per API request when importing through the daemon
/// (JSON escaping at most sextuples a byte, which keeps requests under 8 MiB).
const REMOTE_CHUNK: usize = 50_000;
const REMOTE_CHUNK_BYTES: usize = 1 << 20;

mod list;
mod remove;

/// Who writes: the daemon (over its API) or this process.
enum Writer {
    Remote(ApiClient),
    Local(Arc<ErasureStore>),
}

fn store_err(e: StoreError) -> anyhow::Error {
    match e {
        StoreError::Invalid(_)
        | StoreError::InvalidId(_)
        | StoreError::BadReference(_)
        | StoreError::BadReason(_) => UsageError(e.to_string()).into(),
        other => other.into(),
    }
}

fn client_err(e: ClientError) -> anyhow::Error {
    match e {
        ClientError::Rejected {
            status: 400 | 413,
            message,
        } => UsageError(message).into(),
        other => other.into(),
    }
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> anyhow::Result<T> {
    tokio::task::spawn_blocking(f).await?.map_err(store_err)
}

/// The API when it answers, else the store, waiting out a lock held by
/// another command (but not forever).
async fn writer(cfg: &Config) -> anyhow::Result<Writer> {
    let client = ApiClient::for_config(&cfg.api, &cfg.erasure, &cfg.storage.url);
    let deadline = tokio::time::Instant::now() + LOCK_PATIENCE;
    loop {
        if let Ok(c) = &client
            && c.probe().await.map_err(client_err)?.is_some()
        {
            return Ok(Writer::Remote(c.clone()));
        }
        let (path, t) = (cfg.erasure.path.clone(), cfg.erasure.subject_type);
        match tokio::task::spawn_blocking(move || ErasureStore::open(&path, t)).await? {
            Ok(s) => return Ok(Writer::Local(Arc::new(s))),
            Err(StoreError::Locked { path }) if tokio::time::Instant::now() < deadline => {
                tracing::debug!(path = %path.display(), "erasure list locked; retrying");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(StoreError::Locked { path }) => {
                let why = match &client {
                    Ok(_) => format!("no lethe API answers at {}", cfg.api.listen),
                    Err(e) => format!("the API at {} cannot be used: {e}", cfg.api.listen),
                };
                anyhow::bail!(
                    "the erasure list at {} is locked by another process and {why}; if a lethe daemon is starting, retry in a moment, else find the process holding {}/LOCK",
                    path.display(),
                    path.display()
                );
            }
            Err(e) => return Err(store_err(e)),
        }
    }
}

/// The named subject ids given on the command line belong to: `--subject`,
/// or the config's only subject. A config whose roots name no subject has
/// the one unnamed subject (`None`), as every list before names existed.
///
/// # Errors
/// A usage error naming the configured subjects when `--subject` is missing
/// but needed, or names a subject the config does not have.
fn subject_name(cfg: &Config, flag: Option<&str>) -> anyhow::Result<Option<String>> {
    let names = cfg.erasure.subject_names();
    let shown = || {
        names
            .iter()
            .map(|n| n.clone().unwrap_or_else(|| "(unnamed)".into()))
            .collect::<Vec<_>>()
            .join(", ")
    };
    match flag {
        Some(f) if names.iter().any(|n| n.as_deref() == Some(f)) => Ok(Some(f.to_string())),
        Some(f) => Err(super::UsageError(format!(
            "--subject {f}: no erasure.subjects root names subject {f:?} (configured: {})",
            shown()
        ))
        .into()),
        None => match &names[..] {
            [one] => Ok(one.clone()),
            _ => Err(super::UsageError(format!(
                "the config names several subjects ({}); say which one these ids are with --subject NAME",
                shown()
            ))
            .into()),
        },
    }
}

/// `subjects` as the list stores them: under `--subject NAME` (checked
/// against the config's subject names) or the unnamed subject.
fn qualified(cfg: &Config, of: Option<&str>, subjects: &[String]) -> anyhow::Result<Vec<String>> {
    let name = subject_name(cfg, of)?;
    Ok(subjects
        .iter()
        .map(|s| crate::erasure::subject::qualify(name.as_deref(), s))
        .collect())
}

pub async fn run(ctx: &Ctx, command: EraseCommand) -> anyhow::Result<i32> {
    let cfg = ctx.config()?;
    match command {
        EraseCommand::Add {
            subjects,
            reference,
            of,
        } => {
            let subjects = qualified(&cfg, of.as_deref(), &subjects)?;
            let out = add_all(ctx, &cfg, subjects, reference.as_deref()).await?;
            println!(
                "added {}, already listed {}; {}",
                out.added,
                out.already_listed,
                state_line(out.count, &out.digest)
            );
            Ok(crate::exit::OK)
        }
        EraseCommand::Import {
            file,
            reference,
            of,
        } => {
            let name = subject_name(&cfg, of.as_deref())?;
            import(ctx, &cfg, &file, reference.as_deref(), name.as_deref()).await
        }
        EraseCommand::Check { subject, of } => {
            let name = subject_name(&cfg, of.as_deref())?;
            check(
                &cfg,
                &crate::erasure::subject::qualify(name.as_deref(), &subject),
            )
            .await
        }
        EraseCommand::List { json } => list::list(&cfg, json).await,
        EraseCommand::Remove {
            subjects,
            reason,
            of,
        } => {
            let subjects = qualified(&cfg, of.as_deref(), &subjects)?;
            remove::remove(ctx, &cfg, subjects, &reason).await
        }
        EraseCommand::Sync => {
            let out = match writer(&cfg).await? {
                Writer::Remote(c) => c.sync().await.map_err(client_err)?,
                Writer::Local(store) => {
                    let storage = ctx.storage(&cfg).await?;
                    journal::sync(&store, &storage).await?
                }
            };
            print_sync(&out);
            Ok(crate::exit::OK)
        }
        EraseCommand::Serve => serve(ctx, &cfg).await,
    }
}

fn state_line(count: u64, digest: &str) -> String {
    format!("the list holds {count} entries (digest {digest})")
}

fn print_sync(out: &SyncOutcome) {
    println!(
        "merged {} new entries from {} journal object(s), pushed {} pending; {}",
        out.new_entries,
        out.objects_merged,
        out.pushed,
        state_line(out.count, &out.digest)
    );
}

/// Adds ids, in one write. Locally, then tries to journal them right away;
/// if storage is unreachable they stay pending (durable) and a warning says so.
async fn add_all(
    ctx: &Ctx,
    cfg: &Config,
    subjects: Vec<String>,
    reference: Option<&str>,
) -> anyhow::Result<AddOutcome> {
    // Validate before contacting anyone: same message either way.
    validate(cfg, &subjects)?;
    warn_unusual(cfg, &subjects);
    match writer(cfg).await? {
        Writer::Remote(c) => c.add(&subjects, reference).await.map_err(client_err),
        Writer::Local(store) => {
            let n = subjects.len();
            let s = Arc::clone(&store);
            let r = reference.map(str::to_string);
            let out = blocking(move || s.add(&subjects, r.as_deref())).await?;
            api::log_added(&out, n, reference);
            push_now(ctx, cfg, &store).await;
            Ok(out)
        }
    }
}

fn validate(cfg: &Config, subjects: &[String]) -> anyhow::Result<()> {
    let errs: Vec<_> = subjects
        .iter()
        .filter_map(|s| crate::erasure::subject::normalize_new(cfg.erasure.subject_type, s).err())
        .collect();
    if errs.is_empty() {
        return Ok(());
    }
    Err(store_err(StoreError::Invalid(errs)))
}

/// Ids 0 and below are legal bigint values (refusing them could leave a
/// real subject unerasable), so they are accepted; but they are more often a
/// typo than a customer, so each one gets a warning that says how to undo it.
fn warn_unusual(cfg: &Config, subjects: &[String]) {
    if cfg.erasure.subject_type != crate::erasure::config::SubjectType::Bigint {
        return;
    }
    for s in subjects {
        let (name, id) = crate::erasure::subject::split_subject(s);
        if let Some(w) = unusual_bigint(id) {
            let of = name.map(|n| format!(" --subject {n}")).unwrap_or_default();
            eprintln!(
                "lethe: warning: {id} is an unusual subject id ({w}); check it is not a typo \
                 — undo with `lethe erase remove{of} {id} --reason …`"
            );
        }
    }
}

/// Why a bigint id is unusual (zero or negative), if it is.
fn unusual_bigint(id: &str) -> Option<&'static str> {
    match id.trim().parse::<i64>() {
        Ok(0) => Some("zero"),
        Ok(v) if v < 0 => Some("negative"),
        _ => None,
    }
}

/// One bounded attempt to journal what is pending (a one-shot command must
/// not hang on an outage: the entries are durable locally either way).
async fn push_now(ctx: &Ctx, cfg: &Config, store: &Arc<ErasureStore>) {
    let attempt = async {
        let storage = ctx.storage(cfg).await?;
        Ok::<_, anyhow::Error>(journal::push_pending(store, &storage).await?)
    };
    let result = tokio::time::timeout(Duration::from_secs(60), attempt).await;
    let pending = store.status().map(|s| s.pending).unwrap_or(0);
    if pending == 0 {
        return;
    }
    let why = match result {
        Ok(Err(e)) => format!("{e:#}"),
        Err(_) => "storage did not answer within 60 s".into(),
        Ok(Ok(_)) => "entries were added meanwhile".into(),
    };
    eprintln!(
        "lethe: warning: {pending} entr(ies) are durable in the local list but not yet in the journal in storage ({why}); the daemon or the next `lethe erase sync` uploads them"
    );
}

async fn check(cfg: &Config, subject: &str) -> anyhow::Result<i32> {
    if let Err(e) = crate::erasure::normalize(cfg.erasure.subject_type, subject) {
        return Err(store_err(StoreError::InvalidId(e)));
    }
    let found = match writer(cfg).await? {
        Writer::Remote(c) => c.get(subject).await.map_err(client_err)?,
        Writer::Local(store) => {
            let s = subject.to_string();
            blocking(move || store.get(&s)).await?
        }
    };
    match found {
        Some(e) => {
            let reference = e
                .reference
                .as_deref()
                .map(|r| format!(", reference {r}"))
                .unwrap_or_default();
            println!(
                "listed: {} (added {} on {}{reference})",
                shown_subject(&e.subject),
                e.added_at.format("%Y-%m-%dT%H:%M:%SZ"),
                e.origin
            );
            Ok(crate::exit::OK)
        }
        None => {
            let c = crate::erasure::normalize(cfg.erasure.subject_type, subject)
                .unwrap_or_else(|_| subject.to_string());
            println!("not listed: {}", shown_subject(&c));
            Ok(crate::exit::FAILURE)
        }
    }
}

/// A stored entry as people read it: `customer:7` for a named subject.
fn shown_subject(stored: &str) -> String {
    match crate::erasure::subject::split_subject(stored) {
        (Some(name), id) => format!("{name}:{id}"),
        (None, id) => id.to_string(),
    }
}

/// Canonical ids packed in one buffer (a 10M-line import stays ~100 MB).
#[derive(Default)]
struct IdArena {
    data: String,
    ends: Vec<usize>,
}

impl IdArena {
    fn push(&mut self, s: &str) {
        self.data.push_str(s);
        self.ends.push(self.data.len());
    }

    fn chunks(&self, max_ids: usize, max_bytes: usize) -> Vec<std::ops::Range<usize>> {
        let mut out = Vec::new();
        let mut start = 0;
        let mut start_byte = 0;
        for i in 0..self.ends.len() {
            if i > start && (i - start == max_ids || self.ends[i] - start_byte > max_bytes) {
                out.push(start..i);
                start = i;
                start_byte = self.ends[i - 1];
            }
        }
        if start < self.ends.len() {
            out.push(start..self.ends.len());
        }
        out
    }

    fn slice(&self, r: std::ops::Range<usize>) -> Vec<&str> {
        r.map(|i| {
            let begin = if i == 0 { 0 } else { self.ends[i - 1] };
            &self.data[begin..self.ends[i]]
        })
        .collect()
    }
}

/// At most this many invalid lines of an import are shown one by one.
const SHOWN_BAD_LINES: usize = 20;

/// How errors and output name an import's input.
fn input_name(file: &Path) -> String {
    if file == Path::new("-") {
        "stdin".into()
    } else {
        file.display().to_string()
    }
}

/// Reads and validates every line; any invalid line refuses the whole file.
///
/// Each line is validated exactly as `erase add` validates an id
/// (`normalize_new`), once what a spreadsheet export adds is removed: a
/// UTF-8 byte order mark at the start of the file and the CR of a CRLF line
/// ending. Blank lines (also whitespace-only ones) and `#` comments are
/// skipped. A BOM, NUL, CR or invalid UTF-8 anywhere else is an invalid line.
///
/// Surrounding whitespace: as with `erase add`, bigint and uuid ids ignore
/// it (`normalize` trims them) and a text id keeps it. Text ids match the
/// database value byte for byte, so trimming here would make an id that
/// really has a space impossible to list by import and make the import
/// disagree with `erase add`; a warning names such ids instead.
fn read_ids(cfg: &Config, file: &Path, subject: Option<&str>) -> anyhow::Result<IdArena> {
    let name = input_name(file);
    let reader: Box<dyn BufRead> = if file == Path::new("-") {
        Box::new(std::io::stdin().lock())
    } else {
        Box::new(std::io::BufReader::with_capacity(
            1 << 20,
            std::fs::File::open(file)
                .map_err(|e| UsageError(format!("cannot read {name}: {e}")))?,
        ))
    };
    let mut ids = IdArena::default();
    // Invalid lines: how many, and the first few, described.
    let (mut bad, mut shown) = (0usize, Vec::new());
    // Text ids with surrounding whitespace: how many, and the first.
    let (mut spaced, mut first_spaced) = (0usize, None);
    let t = cfg.erasure.subject_type;
    for (i, line) in reader.split(b'\n').enumerate() {
        let n = i + 1;
        let line = line.map_err(|e| anyhow::anyhow!("reading {name}: {e}"))?;
        let mut line = line.strip_suffix(b"\r").unwrap_or(&line);
        if i == 0 {
            if line.starts_with(b"\xFF\xFE") || line.starts_with(b"\xFE\xFF") {
                return Err(UsageError(format!(
                    "{name} is UTF-16 text (it starts with a UTF-16 byte order mark); nothing was imported: save or export it as UTF-8 (one id per line) and import it again"
                ))
                .into());
            }
            line = line.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(line);
        }
        let problem = match std::str::from_utf8(line) {
            Err(e) => format!(
                "\"{}\" is not valid UTF-8 (at byte {}); save the file as UTF-8",
                line.escape_ascii(),
                e.valid_up_to() + 1
            ),
            Ok(text) => {
                let trimmed = text.trim();
                if trimmed.is_empty() || trimmed.starts_with('#') {
                    continue;
                }
                let qualified = crate::erasure::subject::qualify(subject, text);
                match crate::erasure::subject::normalize_new(t, &qualified) {
                    Ok(c) => {
                        if c.len() != c.trim().len() {
                            spaced += 1;
                            first_spaced.get_or_insert((n, c.clone()));
                        }
                        ids.push(&c);
                        continue;
                    }
                    Err(e) => e.to_string(),
                }
            }
        };
        bad += 1;
        if shown.len() < SHOWN_BAD_LINES {
            shown.push(format!("{name}: line {n}: {problem}"));
        }
    }
    match bad {
        0 => {}
        1 => {
            return Err(UsageError(format!(
                "{}; nothing was imported: fix or remove that line and import the file again",
                shown[0]
            ))
            .into());
        }
        _ => {
            for s in &shown {
                eprintln!("{s}");
            }
            if bad > shown.len() {
                eprintln!("{name}: and {} more invalid lines", bad - shown.len());
            }
            return Err(UsageError(format!(
                "{bad} invalid lines in {name} (listed above); nothing was imported: fix or remove them and import the file again"
            ))
            .into());
        }
    }
    if let Some((n, c)) = first_spaced {
        eprintln!(
            "lethe: warning: {name}: {spaced} text id(s) begin or end with whitespace (first: line {n}, {c:?}); they are listed as given, as `erase add` does, since text ids match byte for byte: if the whitespace is not part of the ids, trim it and import the file again"
        );
    }
    Ok(ids)
}

async fn import(
    ctx: &Ctx,
    cfg: &Config,
    file: &Path,
    reference: Option<&str>,
    subject: Option<&str>,
) -> anyhow::Result<i32> {
    let (c, f, n) = (cfg.clone(), file.to_path_buf(), subject.map(str::to_string));
    let ids = Arc::new(tokio::task::spawn_blocking(move || read_ids(&c, &f, n.as_deref())).await??);
    let started = std::time::Instant::now();
    let mut total = AddOutcome {
        added: 0,
        already_listed: 0,
        count: 0,
        digest: String::new(),
        pending: 0,
    };
    let mut fold = |o: AddOutcome| {
        total.added += o.added;
        total.already_listed += o.already_listed;
        total.count = o.count;
        total.digest = o.digest;
        total.pending = o.pending;
    };
    match writer(cfg).await? {
        Writer::Remote(client) => {
            for r in ids.chunks(REMOTE_CHUNK, REMOTE_CHUNK_BYTES) {
                let chunk: Vec<String> = ids.slice(r).into_iter().map(str::to_string).collect();
                fold(client.add(&chunk, reference).await.map_err(client_err)?);
            }
        }
        Writer::Local(store) => {
            // The whole file in one atomic, durable write (a bulk write is
            // one ingested SST file): all of it is listed, or none.
            let (s, a, re) = (
                Arc::clone(&store),
                Arc::clone(&ids),
                reference.map(str::to_string),
            );
            let out = blocking(move || s.add(&a.slice(0..a.ends.len()), re.as_deref())).await?;
            api::log_added(
                &out,
                out.added as usize + out.already_listed as usize,
                reference,
            );
            fold(out);
            push_now(ctx, cfg, &store).await;
        }
    }
    if ids.ends.is_empty() {
        let st = status(cfg).await?;
        total.count = st.count;
        total.digest = st.digest;
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "imported {} ids from {}: added {}, already listed {}; {}",
        ids.ends.len(),
        input_name(file),
        total.added,
        total.already_listed,
        state_line(total.count, &total.digest)
    );
    tracing::debug!(ids = ids.ends.len(), seconds = secs, "import finished");
    Ok(crate::exit::OK)
}

async fn status(cfg: &Config) -> anyhow::Result<StoreStatus> {
    match writer(cfg).await? {
        Writer::Remote(c) => c.status().await.map_err(client_err),
        Writer::Local(store) => blocking(move || store.status()).await,
    }
}

/// Hidden `erase serve`: the API and journal worker in the foreground, for
/// hosts without the daemon and for tests. SIGINT/SIGTERM stop it.
async fn serve(ctx: &Ctx, cfg: &Config) -> anyhow::Result<i32> {
    let (path, t) = (cfg.erasure.path.clone(), cfg.erasure.subject_type);
    let store = Arc::new(blocking(move || ErasureStore::open(&path, t)).await?);
    let storage = ctx.storage(cfg).await?;
    let shutdown = crate::shutdown::Shutdown::install(crate::shutdown::Hooks::quiet())?;
    api::serve(&cfg.api, store, storage, shutdown.token()).await?;
    shutdown.stop().await;
    Ok(crate::exit::OK)
}
