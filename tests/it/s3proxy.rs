//! A test-only HTTP proxy between lethe and the real Garage that injects
//! faults *below* lethe's S3 retry layer, on the wire: chosen requests get a
//! `503 SlowDown` or `500 InternalError` with a proper S3 XML error body,
//! have their connection cut mid-request-body or mid-response-body, or are
//! delayed. Everything else is forwarded untouched (the `Host` header is
//! kept, so SigV4 signatures made for the proxy's address still verify at
//! Garage). Every request is recorded, so tests can see the retries.
//!
//! It runs on its own runtime thread; dropping the [`Proxy`] stops it.
#![allow(dead_code)]

use bytes::Bytes;
use http_body_util::{BodyExt, Full, StreamBody, combinators::BoxBody};
use hyper::body::{Frame, Incoming};
use hyper::{Request, Response};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

type Body = BoxBody<Bytes, std::io::Error>;

/// What the proxy does with a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Forward,
    /// `503 SlowDown` (the request body is read first).
    SlowDown,
    /// `500 InternalError`.
    InternalError,
    /// Reads this many request-body bytes, then drops the connection.
    ResetRequest(usize),
    /// Forwards, then sends this many response-body bytes and drops the
    /// connection (the client was promised more by `Content-Length`).
    ResetResponse(usize),
    /// Waits, then forwards.
    Delay(Duration),
}

/// A fault on matching requests: `method` (or any), a substring of the
/// path and query (or any), and which matches fire (1-based; empty: every
/// one).
#[derive(Debug, Clone)]
pub struct Rule {
    pub method: Option<&'static str>,
    pub contains: Option<String>,
    pub nth: Vec<u64>,
    pub action: Action,
}

impl Rule {
    pub fn new(method: &'static str, contains: &str, nth: &[u64], action: Action) -> Rule {
        Rule {
            method: Some(method),
            contains: (!contains.is_empty()).then(|| contains.to_string()),
            nth: nth.to_vec(),
            action,
        }
    }

    fn matches(&self, method: &str, target: &str) -> bool {
        self.method.is_none_or(|m| m == method)
            && self.contains.as_deref().is_none_or(|c| target.contains(c))
    }
}

/// One request as the proxy saw it.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    /// Path and query.
    pub target: String,
    pub action: Action,
    /// Upstream's status when forwarded (or the injected one).
    pub status: Option<u16>,
}

struct State {
    upstream: String,
    rules: Vec<(Rule, AtomicU64)>,
    seen: Mutex<Vec<Seen>>,
    client: Client<HttpConnector, BoxBody<Bytes, hyper::Error>>,
}

impl State {
    fn decide(&self, method: &str, target: &str) -> Action {
        let mut chosen = Action::Forward;
        for (rule, count) in &self.rules {
            if !rule.matches(method, target) {
                continue;
            }
            let n = count.fetch_add(1, Ordering::SeqCst) + 1;
            if chosen == Action::Forward && (rule.nth.is_empty() || rule.nth.contains(&n)) {
                chosen = rule.action.clone();
            }
        }
        chosen
    }
}

pub struct Proxy {
    /// `http://127.0.0.1:<port>`: put it in `storage.endpoint`.
    pub url: String,
    state: Arc<State>,
    rt: Option<tokio::runtime::Runtime>,
}

impl Proxy {
    /// Starts a proxy to `upstream` (e.g. `http://127.0.0.1:3900`).
    pub fn start(upstream: &str, rules: Vec<Rule>) -> Proxy {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("proxy runtime");
        let state = Arc::new(State {
            upstream: upstream.trim_end_matches('/').to_string(),
            rules: rules.into_iter().map(|r| (r, AtomicU64::new(0))).collect(),
            seen: Mutex::new(Vec::new()),
            client: Client::builder(TokioExecutor::new()).build_http(),
        });
        let listener = rt
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .expect("bind proxy");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let st = Arc::clone(&state);
        rt.spawn(async move {
            while let Ok((sock, _)) = listener.accept().await {
                let st = Arc::clone(&st);
                tokio::spawn(async move {
                    let svc = hyper::service::service_fn(move |req| handle(req, Arc::clone(&st)));
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(sock), svc)
                        .await;
                });
            }
        });
        Proxy {
            url,
            state,
            rt: Some(rt),
        }
    }

    /// Every request so far, in arrival order.
    pub fn seen(&self) -> Vec<Seen> {
        self.state.seen.lock().expect("seen").clone()
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
    }
}

fn record(st: &State, method: &str, target: &str, action: &Action, status: Option<u16>) {
    st.seen.lock().expect("seen").push(Seen {
        method: method.to_string(),
        target: target.to_string(),
        action: action.clone(),
        status,
    });
}

/// An S3 error response as S3 and Garage send it.
fn s3_error(status: u16, code: &str, message: &str, resource: &str) -> Response<Body> {
    let xml = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{code}</Code><Message>{message}</Message>\
         <Resource>{resource}</Resource><RequestId>lethe-test-proxy</RequestId></Error>"
    );
    let mut r = Response::new(Full::new(Bytes::from(xml)).map_err(|e| match e {}).boxed());
    *r.status_mut() = hyper::StatusCode::from_u16(status).expect("status");
    r.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/xml"),
    );
    r
}

async fn handle(req: Request<Incoming>, st: Arc<State>) -> Result<Response<Body>, std::io::Error> {
    let method = req.method().to_string();
    let target = req
        .uri()
        .path_and_query()
        .map(|p| p.to_string())
        .unwrap_or_else(|| "/".into());
    let action = st.decide(&method, &target);
    let path = req.uri().path().to_string();
    match &action {
        Action::SlowDown | Action::InternalError => {
            let _ = req.into_body().collect().await;
            let (status, code, msg) = if action == Action::SlowDown {
                (503, "SlowDown", "Please reduce your request rate.")
            } else {
                (
                    500,
                    "InternalError",
                    "We encountered an internal error. Please try again.",
                )
            };
            record(&st, &method, &target, &action, Some(status));
            Ok(s3_error(status, code, msg, &path))
        }
        Action::ResetRequest(after) => {
            let mut body = req.into_body();
            let mut read = 0;
            while read < *after {
                match body.frame().await {
                    Some(Ok(f)) => read += f.data_ref().map_or(0, Bytes::len),
                    _ => break,
                }
            }
            record(&st, &method, &target, &action, None);
            Err(std::io::Error::other(
                "injected: connection reset mid-request",
            ))
        }
        Action::Delay(d) => {
            tokio::time::sleep(*d).await;
            forward(req, &st, &method, &target, &action).await
        }
        Action::Forward | Action::ResetResponse(_) => {
            forward(req, &st, &method, &target, &action).await
        }
    }
}

async fn forward(
    req: Request<Incoming>,
    st: &State,
    method: &str,
    target: &str,
    action: &Action,
) -> Result<Response<Body>, std::io::Error> {
    let (mut parts, body) = req.into_parts();
    parts.uri = format!("{}{target}", st.upstream)
        .parse()
        .map_err(std::io::Error::other)?;
    let up = Request::from_parts(parts, body.boxed());
    let resp = st.client.request(up).await.map_err(|e| {
        record(st, method, target, action, None);
        std::io::Error::other(e)
    })?;
    record(st, method, target, action, Some(resp.status().as_u16()));
    let (parts, body) = resp.into_parts();
    let body: Body = match action {
        Action::ResetResponse(after) => {
            let all = body
                .collect()
                .await
                .map_err(std::io::Error::other)?
                .to_bytes();
            let cut = all.slice(..(*after).min(all.len().saturating_sub(1)));
            let frames: Vec<Result<Frame<Bytes>, std::io::Error>> = vec![
                Ok(Frame::data(cut)),
                Err(std::io::Error::other(
                    "injected: connection reset mid-response",
                )),
            ];
            BodyExt::boxed(StreamBody::new(futures::stream::iter(frames)))
        }
        _ => body.map_err(std::io::Error::other).boxed(),
    };
    Ok(Response::from_parts(parts, body))
}
