//! `GET /v1/erasures/{subject}` (one entry) and `GET /v1/erasures` (every
//! entry, in the list's order, as NDJSON).

use super::{ApiError, Shared, blocking};
use crate::erasure::store::StoreError;
use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use std::path::PathBuf;
use std::sync::Arc;

pub(super) async fn check(
    State(st): Shared,
    Path(subject): Path<String>,
) -> Result<Response, ApiError> {
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

pub(super) async fn list(State(st): Shared) -> Response {
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(4);
    let store = Arc::clone(&st.store);
    tokio::task::spawn_blocking(move || {
        let mut buf = Vec::with_capacity(64 << 10);
        let result = store.for_each_entry_ordered(|e| {
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
