//! `POST /v1/removals` (undo a mistyped add) and `GET /v1/removals`
//! (the removal history), and the `erasure.removed` event.

use super::{ApiError, Shared, blocking, read_json};
use crate::erasure::store::{RemovalInfo, RemoveOutcome, StoreError};
use axum::body::Body;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use std::sync::Arc;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RemoveRequest {
    subjects: Vec<String>,
    reason: String,
}

pub(super) async fn remove(
    State(st): Shared,
    body: Body,
) -> Result<axum::Json<RemoveOutcome>, ApiError> {
    let req: RemoveRequest = read_json(body, st.body_timeout).await?;
    if req.subjects.is_empty() {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "no subjects given: send {\"subjects\": [\"...\"], \"reason\": \"...\"}",
        ));
    }
    let store = Arc::clone(&st.store);
    let reason = req.reason.clone();
    let out = blocking(move || store.remove(&req.subjects, &req.reason)).await?;
    log_removed(&out, &reason, "api");
    Ok(axum::Json(out))
}

pub(super) async fn removals(State(st): Shared) -> Result<axum::Json<Vec<RemovalInfo>>, ApiError> {
    let store = Arc::clone(&st.store);
    Ok(axum::Json(blocking(move || store.removals()).await?))
}

/// The `erasure.removed` event: how many, why, and through what (`api` or
/// `cli`); never the ids.
pub fn log_removed(out: &RemoveOutcome, reason: &str, source: &str) {
    tracing::info!(
        event = "erasure.removed",
        count = out.removed,
        reason,
        source,
        total = out.count,
        digest = %out.digest,
    );
}

/// The status an API answer gives a store error of a removal.
pub(super) fn status_of(e: &StoreError) -> Option<StatusCode> {
    match e {
        StoreError::BadReason(_) => Some(StatusCode::BAD_REQUEST),
        StoreError::NotListed(_) => Some(StatusCode::NOT_FOUND),
        _ => None,
    }
}
