//! The local erasure API: HTTP/JSON on a Unix socket (or loopback TCP with a
//! bearer token), served by the process that holds the store (the daemon).
//!
//! **For the daemon.** Call [`serve`] with the opened store and storage and a
//! cancellation token: it binds `api.listen` (socket mode 0660; a stale
//! socket file is replaced, a live one is refused), runs the API and the
//! journal worker ([`super::journal::run_worker`]: push after every add,
//! full sync every 5 minutes), and returns after `shutdown` is cancelled and
//! open requests drained (10 s at most), removing its socket. A daemon that
//! runs its own journal worker and wants to signal readiness only once the
//! socket is bound uses [`ApiServer::bind`] then [`ApiServer::run`] (the API
//! alone) instead.
//!
//! **Which list.** Several daemons may run on one host (one per database),
//! each with its own `api.listen`. The API says what it serves:
//! `GET /v1/status` carries the list's canonical `path`, its `subject_type`
//! and the `storage` its journal goes to ([`Serves`]). A client may send
//! what it expects in a `Lethe-Expect` header (form-encoded `path`,
//! `subject_type`, `storage`; [`EXPECT_HEADER`]): a request whose
//! expectation differs gets 409 with the server's [`Serves`] fields next to
//! `error`, and nothing is done. [`crate::erasure::client::ApiClient::for_config`]
//! checks the status and sends the header on every request.
//!
//! Routes (all JSON; errors are `{"error": "..."}` with a 4xx/5xx status,
//! and a refused request writes nothing):
//! - `POST /v1/erasures` `{"subjects": ["42", ...], "reference": "T-1"}` (or
//!   `"subject": "42"`) → 200 [`AddOutcome`], after the synced write.
//! - `GET /v1/erasures/{subject}` → 200 [`EntryInfo`], 404 `{"listed": false}`.
//! - `GET /v1/erasures` → NDJSON: one [`EntryInfo`] per line, then
//!   `{"end": true, "count": N}` (a missing end line means a cut stream).
//! - `POST /v1/removals` `{"subjects": ["42"], "reason": "typo"}` → 200
//!   [`RemoveOutcome`](super::store::RemoveOutcome), after the synced write;
//!   404 when an id is not listed (nothing removed). `GET /v1/removals` →
//!   the removal history ([`RemovalInfo`](super::store::RemovalInfo) array).
//! - `GET /v1/status` → [`StoreStatus`] (`path` canonicalised) plus
//!   `storage`. `POST /v1/sync` → [`SyncOutcome`].
//! - `GET /v1/schedule`, `POST /v1/schedule/{pause,resume}` → [`ScheduleState`]
//!   (a daemon's only: its pause and its last leak check; see `schedule`).
//!
//! Bodies over [`MAX_BODY`] get 413; a client that does not send its headers
//! within 10 s or its body within 30 s is cut off.

use super::journal::{self, JournalError, SyncOutcome, WorkerOptions};
use super::store::{AddOutcome, ErasureStore, StoreError, StoreStatus};
use crate::erasure::config::SubjectType;
use crate::erasure::config::{ApiConfig, ErasureConfig};
use crate::storage::Storage;
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use http_body_util::BodyExt;
use serde::{Deserialize, Serialize};
use std::path::{Path as FsPath, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Largest request body accepted.
pub const MAX_BODY: usize = 8 << 20;

/// How long a client may take to send its request headers, then its body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    pub header: Duration,
    pub body: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            header: Duration::from_secs(10),
            body: Duration::from_secs(30),
        }
    }
}
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("api.listen = {listen}: {message}")]
    Bind { listen: String, message: String },
    #[error("api.token_file: {0}")]
    Token(String),
}

/// An error answered to a client.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    message: String,
}

impl ApiError {
    fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (
            self.status,
            axum::Json(serde_json::json!({ "error": self.message })),
        )
            .into_response()
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        let status = match e {
            _ if remove::status_of(&e).is_some() => {
                remove::status_of(&e).unwrap_or(StatusCode::BAD_REQUEST)
            }
            StoreError::Invalid(_) | StoreError::InvalidId(_) | StoreError::BadReference(_) => {
                StatusCode::BAD_REQUEST
            }
            StoreError::Locked { .. } => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        ApiError::new(status, e.to_string())
    }
}

impl From<JournalError> for ApiError {
    fn from(e: JournalError) -> Self {
        match e {
            JournalError::Store(s) => s.into(),
            JournalError::Storage { .. } => ApiError::new(StatusCode::BAD_GATEWAY, e.to_string()),
            other => ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, other.to_string()),
        }
    }
}

/// The request header in which a client states the list it means
/// (form-encoded `path`, `subject_type`, `storage`; each optional).
pub const EXPECT_HEADER: &str = "lethe-expect";

/// Which erasure list and repository an API serves (what `GET /v1/status`
/// and a 409 answer state), or which ones a client's config names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Serves {
    /// The erasure list directory (`erasure.path`), canonicalised.
    pub path: PathBuf,
    pub subject_type: SubjectType,
    /// Where the journal goes: `file:///dir` (canonicalised) or
    /// `s3://bucket/prefix`; never credentials. `None` from a server older
    /// than this field.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage: Option<String>,
}

impl Serves {
    /// What a config names: its `erasure.path`, `erasure.subject_type` and
    /// `storage.url`, in the forms a server reports them.
    pub fn of_config(erasure: &ErasureConfig, storage_url: &str) -> Serves {
        Serves {
            path: canonical_path(&erasure.path),
            subject_type: erasure.subject_type,
            storage: Some(storage_location(storage_url)),
        }
    }

    /// What a server holding `store` and journaling to `storage` serves.
    pub fn of_server(store: &ErasureStore, storage: &dyn Storage) -> Serves {
        Serves {
            path: canonical_path(store.path()),
            subject_type: store.subject_type(),
            storage: Some(storage_location(&storage.describe())),
        }
    }

    /// The config keys in which `self` (what a client expects) and `served`
    /// differ; a storage either side does not state is not compared.
    pub fn differences(&self, served: &Serves) -> Vec<&'static str> {
        let mut out = Vec::new();
        if self.path != served.path {
            out.push("erasure.path");
        }
        if self.subject_type != served.subject_type {
            out.push("erasure.subject_type");
        }
        if let (Some(a), Some(b)) = (&self.storage, &served.storage)
            && a != b
        {
            out.push("storage.url");
        }
        out
    }

    /// `erasure.path = …, erasure.subject_type = …, storage = …`
    pub fn describe(&self) -> String {
        format!(
            "erasure.path = {}, erasure.subject_type = {}, storage = {}",
            self.path.display(),
            self.subject_type_name(),
            self.storage.as_deref().unwrap_or("(not stated)")
        )
    }

    /// The value of the [`EXPECT_HEADER`] stating `self`.
    pub fn expect_header(&self) -> String {
        let mut form = url::form_urlencoded::Serializer::new(String::new());
        form.append_pair("path", &self.path.to_string_lossy());
        form.append_pair("subject_type", &self.subject_type_name());
        if let Some(s) = &self.storage {
            form.append_pair("storage", s);
        }
        form.finish()
    }

    /// `bigint`, `uuid` or `text`, as in the config.
    fn subject_type_name(&self) -> String {
        serde_json::to_value(self.subject_type)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default()
    }
}

/// `path` with symlinks, `.` and `..` resolved. A path that does not exist
/// yet (a list never opened) is its longest existing ancestor, resolved,
/// with the rest appended; a relative path is taken from the current
/// directory, as opening it would.
pub fn canonical_path(path: &FsPath) -> PathBuf {
    if let Ok(p) = std::fs::canonicalize(path) {
        return p;
    }
    let abs = if path.is_absolute() {
        path.to_path_buf()
    } else {
        match std::env::current_dir() {
            Ok(d) => d.join(path),
            Err(_) => return path.to_path_buf(),
        }
    };
    // The longest prefix that resolves, then the rest lexically (none of it
    // exists, so none of it is a symlink `..` would have to follow).
    let parts: Vec<_> = abs.components().collect();
    for k in (1..parts.len()).rev() {
        let Ok(mut p) = std::fs::canonicalize(parts[..k].iter().collect::<PathBuf>()) else {
            continue;
        };
        for c in &parts[k..] {
            match c {
                std::path::Component::ParentDir => {
                    p.pop();
                }
                std::path::Component::Normal(n) => p.push(n),
                _ => {}
            }
        }
        return p;
    }
    abs
}

/// A storage URL (or a [`Storage::describe`]) in one comparable form:
/// `file://` + the canonical directory, or `s3://bucket[/prefix]`; anything
/// else as given, with a password redacted.
pub fn storage_location(url: &str) -> String {
    use crate::storage::StorageUrl;
    match StorageUrl::parse(url) {
        Ok(StorageUrl::File { path }) => format!("file://{}", canonical_path(&path).display()),
        Ok(StorageUrl::S3 { bucket, prefix }) if prefix.is_empty() => format!("s3://{bucket}"),
        Ok(StorageUrl::S3 { bucket, prefix }) => format!("s3://{bucket}/{prefix}"),
        Err(_) => crate::secrets::redact_url(url),
    }
}

struct ApiState {
    body_timeout: Duration,
    store: Arc<ErasureStore>,
    storage: Arc<dyn Storage>,
    serves: Serves,
    /// The daemon's scheduled-snapshot switch and last leak check
    /// (`schedule` routes).
    pause: Option<crate::pause_switch::PauseSwitch>,
    leaks: Option<crate::leak_state::LeakState>,
}

type Shared = State<Arc<ApiState>>;

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| {
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("store task failed: {e}"),
            )
        })?
        .map_err(ApiError::from)
}

/// Reads the whole body within [`MAX_BODY`] and `timeout` and parses it.
async fn read_json<T: serde::de::DeserializeOwned>(
    body: Body,
    timeout: Duration,
) -> Result<T, ApiError> {
    let limited = http_body_util::Limited::new(body, MAX_BODY);
    let bytes: Bytes = match tokio::time::timeout(timeout, limited.collect()).await {
        Err(_) => {
            return Err(ApiError::new(
                StatusCode::REQUEST_TIMEOUT,
                "the request body did not arrive in time",
            ));
        }
        Ok(Err(e))
            if e.downcast_ref::<http_body_util::LengthLimitError>()
                .is_some() =>
        {
            return Err(ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("request body is larger than {MAX_BODY} bytes; send fewer ids per request"),
            ));
        }
        Ok(Err(e)) => {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                format!("cannot read the request body: {e}"),
            ));
        }
        Ok(Ok(c)) => c.to_bytes(),
    };
    serde_json::from_slice(&bytes).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("request body is not valid JSON for this call: {e}"),
        )
    })
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AddRequest {
    #[serde(default)]
    subjects: Vec<String>,
    #[serde(default)]
    subject: Option<String>,
    #[serde(default)]
    reference: Option<String>,
}

async fn add(State(st): Shared, body: Body) -> Result<axum::Json<AddOutcome>, ApiError> {
    let mut req: AddRequest = read_json(body, st.body_timeout).await?;
    req.subjects.extend(req.subject.take());
    if req.subjects.is_empty() {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "no subjects given: send {\"subjects\": [\"...\"]}",
        ));
    }
    // New ids are checked as `erase add` checks them (the store itself
    // accepts what older versions journaled).
    let t = st.store.subject_type();
    let errs: Vec<_> = req
        .subjects
        .iter()
        .filter_map(|s| super::subject::normalize_new(t, s).err())
        .collect();
    if !errs.is_empty() {
        return Err(StoreError::Invalid(errs).into());
    }
    let store = Arc::clone(&st.store);
    let n = req.subjects.len();
    let reference = req.reference.clone();
    let out = blocking(move || store.add(&req.subjects, req.reference.as_deref())).await?;
    log_added(&out, n, reference.as_deref());
    Ok(axum::Json(out))
}

/// The `erasure.added` event (no raw ids at info level).
pub fn log_added(out: &AddOutcome, requested: usize, reference: Option<&str>) {
    tracing::info!(
        event = "erasure.added",
        count = out.added,
        already_listed = out.already_listed,
        requested,
        reference = reference.unwrap_or(""),
        total = out.count,
        pending = out.pending,
    );
}

/// `GET /v1/status`: the list's state and what this API serves.
#[derive(Serialize)]
struct StatusBody {
    #[serde(flatten)]
    status: StoreStatus,
    storage: Option<String>,
}

async fn status(State(st): Shared) -> Result<axum::Json<StatusBody>, ApiError> {
    let store = Arc::clone(&st.store);
    let mut status = blocking(move || store.status()).await?;
    status.path = st.serves.path.clone();
    Ok(axum::Json(StatusBody {
        status,
        storage: st.serves.storage.clone(),
    }))
}

/// Refuses (409, nothing done) a request whose [`EXPECT_HEADER`] names
/// another list than this API serves; 400 for a header that does not parse.
fn check_expectation(serves: &Serves, headers: &HeaderMap) -> Option<Response> {
    let value = headers.get(EXPECT_HEADER)?;
    let Ok(value) = value.to_str() else {
        return Some(
            ApiError::new(
                StatusCode::BAD_REQUEST,
                format!("{EXPECT_HEADER} is not form-encoded text"),
            )
            .into_response(),
        );
    };
    let mut expected = serves.clone();
    for (k, v) in url::form_urlencoded::parse(value.as_bytes()) {
        match &*k {
            "path" => expected.path = PathBuf::from(&*v),
            "subject_type" => {
                match serde_json::from_value(serde_json::Value::String(v.into_owned())) {
                    Ok(t) => expected.subject_type = t,
                    Err(_) => {
                        return Some(
                            ApiError::new(
                                StatusCode::BAD_REQUEST,
                                format!("{EXPECT_HEADER}: unknown subject_type"),
                            )
                            .into_response(),
                        );
                    }
                }
            }
            "storage" => expected.storage = Some(v.into_owned()),
            _ => {} // from a newer client: not compared
        }
    }
    let differ = expected.differences(serves);
    if differ.is_empty() {
        return None;
    }
    let mut body = serde_json::to_value(serves).unwrap_or_default();
    body["error"] = serde_json::Value::String(format!(
        "this API serves another erasure list ({}), not the one the request expects ({}; they differ in {}); nothing was done. Each daemon needs its own api.listen",
        serves.describe(),
        expected.describe(),
        differ.join(", ")
    ));
    Some((StatusCode::CONFLICT, axum::Json(body)).into_response())
}

async fn sync(State(st): Shared) -> Result<axum::Json<SyncOutcome>, ApiError> {
    Ok(axum::Json(journal::sync(&st.store, &st.storage).await?))
}

async fn not_found() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "no such route; see /v1/status, /v1/erasures",
    )
}

async fn bad_method() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method not allowed on this route",
    )
}

/// Constant-time comparison of the presented bearer token.
fn token_ok(headers: &HeaderMap, token: &str) -> bool {
    let Some(got) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
    else {
        return false;
    };
    let (a, b) = (got.trim().as_bytes(), token.as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The routes, with bearer-token checking when `token` is set (TCP).
fn router(state: Arc<ApiState>, token: Option<Arc<str>>) -> Router {
    let guarded = Arc::clone(&state);
    let r = Router::new()
        .route("/v1/erasures", post(add).get(read::list))
        .route("/v1/erasures/{subject}", get(read::check))
        .route("/v1/removals", post(remove::remove).get(remove::removals))
        .route("/v1/status", get(status))
        .route("/v1/sync", post(sync))
        .route("/v1/schedule", get(schedule::get))
        .route("/v1/schedule/pause", post(schedule::pause))
        .route("/v1/schedule/resume", post(schedule::resume))
        .fallback(not_found)
        .method_not_allowed_fallback(bad_method)
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY))
        .layer(axum::middleware::from_fn(
            move |req: axum::extract::Request, next: axum::middleware::Next| {
                let refused = check_expectation(&guarded.serves, req.headers());
                async move {
                    match refused {
                        Some(r) => r,
                        None => next.run(req).await,
                    }
                }
            },
        ))
        .with_state(state);
    match token {
        None => r,
        Some(token) => r.layer(axum::middleware::from_fn(move |req: axum::extract::Request, next: axum::middleware::Next| {
            let ok = token_ok(req.headers(), &token);
            async move {
                if ok {
                    next.run(req).await
                } else {
                    ApiError::new(StatusCode::UNAUTHORIZED, "missing or wrong bearer token (Authorization: Bearer <api.token_file contents>)").into_response()
                }
            }
        })),
    }
}

mod listen;
mod read;
mod remove;
mod schedule;

pub use listen::ApiServer;
pub use remove::log_removed;
pub use schedule::ScheduleState;

/// Binds `api.listen` and runs the API and the journal worker until
/// `shutdown` is cancelled. See the module documentation.
///
/// # Errors
/// The address cannot be bound (a live server already answers there, a
/// non-socket file is in the way, permissions), or the token file is refused.
pub async fn serve(
    api: &ApiConfig,
    store: Arc<ErasureStore>,
    storage: Arc<dyn Storage>,
    shutdown: CancellationToken,
) -> Result<(), ServeError> {
    let server = ApiServer::bind(api).await?;
    let worker = tokio::spawn(journal::run_worker(
        Arc::clone(&store),
        Arc::clone(&storage),
        WorkerOptions::default(),
        shutdown.clone(),
    ));
    server.run(store, storage, shutdown).await;
    let _ = worker.await;
    Ok(())
}

/// Parses `api.listen`.
///
/// # Errors
/// Neither `unix:/path` nor `tcp:ADDR`.
pub fn parse_listen(api: &ApiConfig) -> Result<Endpoint, ServeError> {
    let bad = |m: &str| ServeError::Bind {
        listen: api.listen.clone(),
        message: m.into(),
    };
    if let Some(p) = api.listen.strip_prefix("unix:") {
        if !p.starts_with('/') {
            return Err(bad("the socket path must be absolute"));
        }
        Ok(Endpoint::Unix(PathBuf::from(p)))
    } else if let Some(a) = api.listen.strip_prefix("tcp:") {
        let addr: std::net::SocketAddr =
            a.parse().map_err(|_| bad("expected tcp:127.0.0.1:PORT"))?;
        if !addr.ip().is_loopback() {
            return Err(bad("TCP listeners must be on loopback"));
        }
        Ok(Endpoint::Tcp(addr))
    } else {
        Err(bad("must be unix:/path or tcp:127.0.0.1:PORT"))
    }
}

/// Where the API listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    Unix(PathBuf),
    Tcp(std::net::SocketAddr),
}

#[cfg(test)]
mod tests;
