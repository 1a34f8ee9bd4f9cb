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
//! Routes (all JSON; errors are `{"error": "..."}` with a 4xx/5xx status,
//! and a refused request writes nothing):
//! - `POST /v1/erasures` `{"subjects": ["42", ...], "reference": "T-1"}` (or
//!   `"subject": "42"`) → 200 [`AddOutcome`], after the synced write.
//! - `GET /v1/erasures/{subject}` → 200 [`EntryInfo`], 404 `{"listed": false}`.
//! - `GET /v1/erasures` → NDJSON: one [`EntryInfo`] per line, then
//!   `{"end": true, "count": N}` (a missing end line means a cut stream).
//! - `GET /v1/status` → [`StoreStatus`]. `POST /v1/sync` → [`SyncOutcome`].
//!
//! Bodies over [`MAX_BODY`] get 413; a client that does not send its headers
//! within 10 s or its body within 30 s is cut off.

use super::journal::{self, JournalError, SyncOutcome, WorkerOptions};
use super::store::{AddOutcome, ErasureStore, StoreError, StoreStatus};
use crate::config::{ApiConfig, Config};
use crate::storage::Storage;
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use http_body_util::BodyExt;
use serde::Deserialize;
use std::path::PathBuf;
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

struct ApiState {
    body_timeout: Duration,
    store: Arc<ErasureStore>,
    storage: Arc<dyn Storage>,
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

async fn check(State(st): Shared, Path(subject): Path<String>) -> Result<Response, ApiError> {
    let store = Arc::clone(&st.store);
    let raw = subject.clone();
    match blocking(move || store.get(&raw)).await? {
        Some(e) => Ok(axum::Json(e).into_response()),
        None => {
            let c = crate::erasure::normalize(st.store.subject_type(), &subject).unwrap_or(subject);
            Ok((StatusCode::NOT_FOUND, axum::Json(serde_json::json!({ "error": format!("{c} is not listed"), "subject": c, "listed": false }))).into_response())
        }
    }
}

async fn list(State(st): Shared) -> Response {
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(4);
    let store = Arc::clone(&st.store);
    tokio::task::spawn_blocking(move || {
        let mut buf = Vec::with_capacity(64 << 10);
        let result = store.for_each_entry(|e| {
            serde_json::to_writer(&mut buf, &e).map_err(|err| StoreError::Io {
                path: PathBuf::new(),
                op: "encode",
                message: err.to_string(),
            })?;
            buf.push(b'\n');
            if buf.len() >= 60 << 10 {
                let chunk = Bytes::from(std::mem::replace(&mut buf, Vec::with_capacity(64 << 10)));
                tx.blocking_send(Ok(chunk)).map_err(|_| StoreError::Io {
                    path: PathBuf::new(),
                    op: "send",
                    message: "client went away".into(),
                })?;
            }
            Ok(())
        });
        let last = match result {
            Ok(n) => {
                buf.extend_from_slice(format!("{{\"end\":true,\"count\":{n}}}\n").as_bytes());
                Ok(Bytes::from(buf))
            }
            Err(e) => Err(std::io::Error::other(e.to_string())),
        };
        let _ = tx.blocking_send(last);
    });
    let stream = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    });
    (
        [(header::CONTENT_TYPE, "application/x-ndjson")],
        Body::from_stream(stream),
    )
        .into_response()
}

async fn status(State(st): Shared) -> Result<axum::Json<StoreStatus>, ApiError> {
    let store = Arc::clone(&st.store);
    Ok(axum::Json(blocking(move || store.status()).await?))
}

async fn sync(State(st): Shared) -> Result<axum::Json<SyncOutcome>, ApiError> {
    Ok(axum::Json(
        journal::sync(&st.store, st.storage.as_ref()).await?,
    ))
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
    let r = Router::new()
        .route("/v1/erasures", post(add).get(list))
        .route("/v1/erasures/{subject}", get(check))
        .route("/v1/status", get(status))
        .route("/v1/sync", post(sync))
        .fallback(not_found)
        .method_not_allowed_fallback(bad_method)
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY))
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
pub use listen::ApiServer;

/// Binds `cfg.api.listen` and runs the API and the journal worker until
/// `shutdown` is cancelled. See the module documentation.
///
/// # Errors
/// The address cannot be bound (a live server already answers there, a
/// non-socket file is in the way, permissions), or the token file is refused.
pub async fn serve(
    cfg: &Config,
    store: Arc<ErasureStore>,
    storage: Arc<dyn Storage>,
    shutdown: CancellationToken,
) -> Result<(), ServeError> {
    let server = ApiServer::bind(&cfg.api).await?;
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
#[path = "api_tests.rs"]
mod tests;
