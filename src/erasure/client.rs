//! A client of the local erasure API (hyper 1 over a Unix socket or loopback
//! TCP), used by `lethe erase …` when a daemon holds the store.
//!
//! A client made with [`ApiClient::for_config`] talks only to a server that
//! serves its config's list: [`ApiClient::probe`] compares what the server
//! states with the config, and every request carries the expectation (the
//! `Lethe-Expect` header) so the server refuses it should another server
//! have taken the address since. Either way the answer is
//! [`ClientError::Mismatch`], and nothing was written.

use super::api::{EXPECT_HEADER, Endpoint, ScheduleState, Serves, parse_listen};
use super::journal::SyncOutcome;
use super::store::{AddOutcome, EntryInfo, RemovalInfo, RemoveOutcome, StoreStatus};
use crate::erasure::config::ApiConfig;
use crate::erasure::config::ErasureConfig;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use std::time::Duration;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// A whole request at most (a large import chunk or a sync can take a while).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(600);

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Nothing listens at the address (no socket file, or connection refused).
    #[error("no lethe API answers at {0}")]
    NotRunning(String),
    /// The server refused the request (4xx): bad input, nothing written.
    #[error("{message}")]
    Rejected { status: u16, message: String },
    #[error("the lethe API at {listen} failed ({status}): {message}")]
    Server {
        listen: String,
        status: u16,
        message: String,
    },
    #[error("talking to the lethe API at {listen}: {message}")]
    Transport { listen: String, message: String },
    #[error("api.token_file: {0}")]
    Token(String),
    /// The server serves another list than the config names: nothing was
    /// sent to it (or it refused the request).
    #[error("{0}")]
    Mismatch(Box<Mismatch>),
}

/// A server at a config's `api.listen` that serves another erasure list.
#[derive(Debug, Clone)]
pub struct Mismatch {
    pub listen: String,
    /// What the config names.
    pub ours: Serves,
    /// What the server serves.
    pub theirs: Serves,
    /// The config keys that differ (`erasure.path`, ...).
    pub differ: Vec<&'static str>,
}

impl std::fmt::Display for Mismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let advice = if self.differ.contains(&"erasure.path") {
            format!(
                "two daemons or configs share api.listen = \"{}\": give each config its own api.listen (e.g. \"unix:/run/lethe/<database>.sock\") and restart its daemon; a config whose daemon is not running then writes its own list directly",
                self.listen
            )
        } else {
            "it holds this list but runs with other settings: restart it so it uses the current config (erasure and storage settings change only at restart)".to_string()
        };
        write!(
            f,
            "the lethe daemon answering at {} serves another erasure list, so nothing was sent to it: this config has {}, the daemon serves {} (they differ in {}); {advice}",
            self.listen,
            self.ours.describe(),
            self.theirs.describe(),
            self.differ.join(", ")
        )
    }
}

/// A client for one API address.
#[derive(Debug, Clone)]
pub struct ApiClient {
    endpoint: Endpoint,
    listen: String,
    token: Option<String>,
    /// The list the server must serve (see [`ApiClient::for_config`]).
    expect: Option<Serves>,
}

/// Percent-encodes one path segment (everything but RFC 3986 unreserved).
fn encode_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

trait Conn: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static> Conn for T {}

impl ApiClient {
    /// A client for `api.listen`. The TCP token is read only when the
    /// address is TCP.
    ///
    /// # Errors
    /// A malformed address, or an unreadable/loose token file.
    pub fn from_config(api: &ApiConfig) -> Result<Self, ClientError> {
        let endpoint = parse_listen(api).map_err(|e| ClientError::Transport {
            listen: api.listen.clone(),
            message: e.to_string(),
        })?;
        let token = match (&endpoint, &api.token_file) {
            (Endpoint::Tcp(_), Some(f)) => Some(
                crate::secrets::read_secret_file(f)
                    .map_err(ClientError::Token)?
                    .trim()
                    .to_string(),
            ),
            _ => None,
        };
        Ok(Self {
            endpoint,
            listen: api.listen.clone(),
            token,
            expect: None,
        })
    }

    /// A client for `api.listen` that talks only to a server serving
    /// `erasure`'s list and the repository at `storage_url`
    /// ([`Serves::of_config`]).
    ///
    /// # Errors
    /// As [`ApiClient::from_config`].
    pub fn for_config(
        api: &ApiConfig,
        erasure: &ErasureConfig,
        storage_url: &str,
    ) -> Result<Self, ClientError> {
        Ok(Self::from_config(api)?.expecting(Serves::of_config(erasure, storage_url)))
    }

    /// This client, talking only to a server that serves `serves`.
    pub fn expecting(mut self, serves: Serves) -> Self {
        self.expect = Some(serves);
        self
    }

    /// A [`ClientError::Mismatch`] if `theirs` is not what this client
    /// expects.
    fn check_serves(&self, theirs: Serves) -> Result<(), ClientError> {
        let Some(ours) = &self.expect else {
            return Ok(());
        };
        let differ = ours.differences(&theirs);
        if differ.is_empty() {
            return Ok(());
        }
        Err(ClientError::Mismatch(Box::new(Mismatch {
            listen: self.listen.clone(),
            ours: ours.clone(),
            theirs,
            differ,
        })))
    }

    fn transport(&self, message: impl std::fmt::Display) -> ClientError {
        ClientError::Transport {
            listen: self.listen.clone(),
            message: message.to_string(),
        }
    }

    async fn connect(&self) -> Result<Box<dyn Conn>, ClientError> {
        let absent = |e: &std::io::Error| {
            matches!(
                e.kind(),
                std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused
            )
        };
        let fut = async {
            match &self.endpoint {
                Endpoint::Unix(p) => tokio::net::UnixStream::connect(p)
                    .await
                    .map(|s| Box::new(s) as Box<dyn Conn>),
                Endpoint::Tcp(a) => tokio::net::TcpStream::connect(a)
                    .await
                    .map(|s| Box::new(s) as Box<dyn Conn>),
            }
        };
        match tokio::time::timeout(CONNECT_TIMEOUT, fut).await {
            Err(_) => Err(self.transport("connection timed out")),
            Ok(Err(e)) if absent(&e) => Err(ClientError::NotRunning(self.listen.clone())),
            Ok(Err(e)) if e.kind() == std::io::ErrorKind::PermissionDenied => Err(self.transport(
                format!("{e}: run as the lethe user or a member of the socket's group"),
            )),
            Ok(Err(e)) => Err(self.transport(e)),
            Ok(Ok(c)) => Ok(c),
        }
    }

    /// Sends one request and returns the status and the body stream.
    async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Result<(StatusCode, hyper::body::Incoming), ClientError> {
        let io = self.connect().await?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io))
            .await
            .map_err(|e| self.transport(e))?;
        // The connection task ends with the response body (or the request).
        tokio::spawn(async move {
            let _ = conn.await;
        });
        let mut req = Request::builder()
            .method(method)
            .uri(path)
            .header(hyper::header::HOST, "lethe");
        if let Some(t) = &self.token {
            req = req.header(hyper::header::AUTHORIZATION, format!("Bearer {t}"));
        }
        if let Some(e) = &self.expect {
            req = req.header(EXPECT_HEADER, e.expect_header());
        }
        if body.is_some() {
            req = req.header(hyper::header::CONTENT_TYPE, "application/json");
        }
        let req = req
            .body(Full::new(Bytes::from(body.unwrap_or_default())))
            .map_err(|e| self.transport(e))?;
        let resp = tokio::time::timeout(REQUEST_TIMEOUT, sender.send_request(req))
            .await
            .map_err(|_| self.transport("no response in time"))?
            .map_err(|e| self.transport(e))?;
        Ok((resp.status(), resp.into_body()))
    }

    async fn call<T: serde::de::DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Result<T, ClientError> {
        let (status, body) = self.send(method, path, body).await?;
        let bytes = tokio::time::timeout(REQUEST_TIMEOUT, body.collect())
            .await
            .map_err(|_| self.transport("the response did not arrive in time"))?
            .map_err(|e| self.transport(e))?
            .to_bytes();
        if status.is_success() {
            return serde_json::from_slice(&bytes)
                .map_err(|e| self.transport(format!("unexpected response: {e}")));
        }
        Err(self.error_of(status, &bytes))
    }

    fn error_of(&self, status: StatusCode, bytes: &[u8]) -> ClientError {
        let body = serde_json::from_slice::<serde_json::Value>(bytes).ok();
        if status == StatusCode::CONFLICT {
            // Our expectation refused by the server: it states what it serves.
            if let Some(theirs) = body
                .clone()
                .and_then(|v| serde_json::from_value::<Serves>(v).ok())
                && let Err(e) = self.check_serves(theirs)
            {
                return e;
            }
        }
        let message = body
            .and_then(|v| v.get("error").and_then(|e| e.as_str()).map(str::to_string))
            .unwrap_or_else(|| String::from_utf8_lossy(bytes).into_owned());
        if status.is_client_error() {
            ClientError::Rejected {
                status: status.as_u16(),
                message,
            }
        } else {
            ClientError::Server {
                listen: self.listen.clone(),
                status: status.as_u16(),
                message,
            }
        }
    }

    /// The server's status, or `None` when nothing listens (no daemon).
    ///
    /// # Errors
    /// Something listens but does not answer like a lethe API, or (a client
    /// [`for_config`](ApiClient::for_config)) serves another list:
    /// [`ClientError::Mismatch`].
    pub async fn probe(&self) -> Result<Option<StoreStatus>, ClientError> {
        match self.status().await {
            Ok(s) => Ok(Some(s)),
            Err(ClientError::NotRunning(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// `GET /v1/status`; for a client that expects a list, also checks that
    /// the server serves it (a server older than the `Lethe-Expect` header
    /// states its list's path and subject type, and those are compared).
    ///
    /// # Errors
    /// See [`ClientError`].
    pub async fn status(&self) -> Result<StoreStatus, ClientError> {
        let v: serde_json::Value = self.call(Method::GET, "/v1/status", None).await?;
        let storage = v
            .get("storage")
            .and_then(serde_json::Value::as_str)
            .map(str::to_string);
        let status: StoreStatus = serde_json::from_value(v)
            .map_err(|e| self.transport(format!("unexpected response: {e}")))?;
        self.check_serves(Serves {
            path: super::api::canonical_path(&status.path),
            subject_type: status.subject_type,
            storage,
        })?;
        Ok(status)
    }

    /// `POST /v1/erasures`: acknowledged once the server's synced write is done.
    ///
    /// # Errors
    /// `Rejected` for invalid ids (nothing written).
    pub async fn add(
        &self,
        subjects: &[String],
        reference: Option<&str>,
    ) -> Result<AddOutcome, ClientError> {
        let body = serde_json::to_vec(
            &serde_json::json!({ "subjects": subjects, "reference": reference }),
        )
        .map_err(|e| self.transport(e))?;
        self.call(Method::POST, "/v1/erasures", Some(body)).await
    }

    /// `POST /v1/removals`.
    ///
    /// # Errors
    /// `Rejected` 404 when an id is not listed, 400 for a bad request.
    pub async fn remove(
        &self,
        subjects: &[String],
        reason: &str,
    ) -> Result<RemoveOutcome, ClientError> {
        let body =
            serde_json::to_vec(&serde_json::json!({ "subjects": subjects, "reason": reason }))
                .map_err(|e| self.transport(e))?;
        self.call(Method::POST, "/v1/removals", Some(body)).await
    }

    /// `GET /v1/removals`: the removal history.
    ///
    /// # Errors
    /// Transport or server failure.
    pub async fn removals(&self) -> Result<Vec<RemovalInfo>, ClientError> {
        self.call(Method::GET, "/v1/removals", None).await
    }

    /// `GET /v1/erasures/{subject}`: `None` when not listed.
    ///
    /// # Errors
    /// `Rejected` for an invalid id.
    pub async fn get(&self, subject: &str) -> Result<Option<EntryInfo>, ClientError> {
        match self
            .call(
                Method::GET,
                &format!("/v1/erasures/{}", encode_segment(subject)),
                None,
            )
            .await
        {
            Ok(e) => Ok(Some(e)),
            Err(ClientError::Rejected { status: 404, .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// `POST /v1/sync`
    ///
    /// # Errors
    /// See [`ClientError`].
    pub async fn sync(&self) -> Result<SyncOutcome, ClientError> {
        self.call(Method::POST, "/v1/sync", Some(b"{}".to_vec()))
            .await
    }

    /// `GET /v1/schedule`: whether the daemon's scheduled snapshots are paused.
    ///
    /// # Errors
    /// `NotRunning` without a daemon; `Rejected` (404) from a server that
    /// runs no scheduler.
    pub async fn schedule(&self) -> Result<ScheduleState, ClientError> {
        self.call(Method::GET, "/v1/schedule", None).await
    }

    /// `POST /v1/schedule/pause` (`pause = true`) or `/resume`.
    ///
    /// # Errors
    /// As [`ApiClient::schedule`].
    pub async fn set_paused(&self, pause: bool) -> Result<ScheduleState, ClientError> {
        let path = if pause {
            "/v1/schedule/pause"
        } else {
            "/v1/schedule/resume"
        };
        self.call(Method::POST, path, Some(b"{}".to_vec())).await
    }

    /// `GET /v1/erasures`: calls `f` per entry; fails if the stream is cut.
    ///
    /// # Errors
    /// Transport failure, a cut stream, or `f`'s error (as `Transport`).
    pub async fn list(
        &self,
        mut f: impl FnMut(EntryInfo) -> std::io::Result<()>,
    ) -> Result<u64, ClientError> {
        let (status, mut body) = self.send(Method::GET, "/v1/erasures", None).await?;
        if !status.is_success() {
            let bytes = body
                .collect()
                .await
                .map_err(|e| self.transport(e))?
                .to_bytes();
            return Err(self.error_of(status, &bytes));
        }
        let mut buf: Vec<u8> = Vec::new();
        let mut n = 0u64;
        let mut ended = None;
        while let Some(frame) = body.frame().await {
            let frame =
                frame.map_err(|e| self.transport(format!("the entry stream was cut: {e}")))?;
            let Ok(data) = frame.into_data() else {
                continue;
            };
            buf.extend_from_slice(&data);
            let mut start = 0;
            while let Some(pos) = memchr::memchr(b'\n', &buf[start..]) {
                let line = &buf[start..start + pos];
                start += pos + 1;
                if line.starts_with(b"{\"end\":") {
                    let v: serde_json::Value =
                        serde_json::from_slice(line).map_err(|e| self.transport(e))?;
                    ended = v.get("count").and_then(serde_json::Value::as_u64);
                    continue;
                }
                let e: EntryInfo = serde_json::from_slice(line)
                    .map_err(|e| self.transport(format!("unexpected entry line: {e}")))?;
                f(e).map_err(|e| self.transport(e))?;
                n += 1;
            }
            buf.drain(..start);
        }
        match ended {
            Some(c) if c == n => Ok(n),
            _ => Err(self.transport(format!("the entry stream was cut after {n} entries"))),
        }
    }
}

#[cfg(test)]
#[path = "client_tests.rs"]
mod tests;
