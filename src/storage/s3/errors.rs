//! Classifying SDK errors: transient (retry), permanent (say what to fix),
//! or not found. Only this decides what the retry layer retries.

use super::CREDENTIALS_HINT;
use crate::storage::StorageError;
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};

/// Sorts an SDK error into the three kinds the rest of Lethe acts on.
pub(crate) fn classify<E>(op: &'static str, key: &str, err: SdkError<E>) -> StorageError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let key = key.to_string();
    let transient = |message: String| StorageError::Transient {
        op,
        key: key.clone(),
        message,
    };
    let permanent = |message: String| StorageError::Permanent {
        op,
        key: key.clone(),
        message,
    };
    let chain = error_chain(&err);
    match &err {
        SdkError::TimeoutError(_) | SdkError::ResponseError(_) => transient(chain),
        SdkError::DispatchFailure(d) if d.is_user() => permanent(chain),
        SdkError::DispatchFailure(d) if d.is_io() => transient(format!(
            "{chain}; is storage.endpoint right and reachable from this host?"
        )),
        SdkError::DispatchFailure(_) => transient(chain),
        SdkError::ConstructionFailure(_) => permanent(format!(
            "cannot build the request ({chain}); often this means no AWS credentials were found: {CREDENTIALS_HINT}"
        )),
        SdkError::ServiceError(se) => {
            let status = se.raw().status().as_u16();
            let code = err.code().unwrap_or("").to_string();
            let detail = match err.message() {
                Some(m) if !m.is_empty() => format!("{code} ({status}): {m}"),
                _ if code.is_empty() => format!("HTTP {status}"),
                _ => format!("{code} ({status})"),
            };
            classify_status(op, &key, status, &code, detail)
        }
        _ => permanent(chain),
    }
}

/// An error and its sources, each said once: "a: b: c" (the SDK's own
/// Display says only "dispatch failure"; its Debug is unreadable).
pub(crate) fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut cur = Some(e);
    while let Some(err) = cur {
        let text = err.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        cur = err.source();
    }
    parts.join(": ")
}

/// The decision table behind [`classify`], split out so it is unit-tested.
fn classify_status(
    op: &'static str,
    key: &str,
    status: u16,
    code: &str,
    detail: String,
) -> StorageError {
    let key = key.to_string();
    match (status, code) {
        (_, "NoSuchBucket") => StorageError::Permanent {
            op,
            key,
            message: format!("{detail}; the bucket does not exist, create it first"),
        },
        (404, _) | (_, "NoSuchKey" | "NoSuchUpload" | "NoSuchLifecycleConfiguration") => {
            StorageError::NotFound { key }
        }
        (_, "RequestTimeTooSkewed") => StorageError::Permanent {
            op,
            key,
            message: format!("{detail}; this host's clock is off, fix time synchronisation (NTP)"),
        },
        (
            _,
            "ExpiredToken"
            | "TokenRefreshRequired"
            | "InvalidToken"
            | "InvalidAccessKeyId"
            | "SignatureDoesNotMatch",
        )
        | (401 | 403, _) => StorageError::Permanent {
            op,
            key,
            message: format!("the storage refused these credentials: {detail}; {CREDENTIALS_HINT}"),
        },
        (301 | 307, _)
        | (
            _,
            "PermanentRedirect"
            | "AuthorizationHeaderMalformed"
            | "IllegalLocationConstraintException",
        ) => StorageError::Permanent {
            op,
            key,
            message: format!(
                "{detail}; storage.region or storage.endpoint does not match the bucket's region"
            ),
        },
        (408 | 429 | 500..=599, _)
        | (_, "SlowDown" | "RequestTimeout" | "InternalError" | "ServiceUnavailable") => {
            StorageError::Transient {
                op,
                key,
                message: detail,
            }
        }
        _ => StorageError::Permanent {
            op,
            key,
            message: detail,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind(status: u16, code: &str) -> &'static str {
        match classify_status("put", "k", status, code, String::new()) {
            StorageError::NotFound { .. } => "not_found",
            StorageError::Transient { .. } => "transient",
            StorageError::Permanent { .. } => "permanent",
            _ => "other",
        }
    }

    #[test]
    fn server_errors_and_throttling_are_transient() {
        assert_eq!(kind(503, "SlowDown"), "transient");
        assert_eq!(kind(500, "InternalError"), "transient");
        assert_eq!(kind(429, ""), "transient");
        assert_eq!(kind(400, "RequestTimeout"), "transient");
    }

    #[test]
    fn missing_objects_are_not_found_but_missing_buckets_are_permanent() {
        assert_eq!(kind(404, "NoSuchKey"), "not_found");
        assert_eq!(kind(404, ""), "not_found");
        assert_eq!(kind(404, "NoSuchUpload"), "not_found");
        assert_eq!(kind(404, "NoSuchBucket"), "permanent");
    }

    #[test]
    fn credential_problems_are_permanent_and_say_what_to_check() {
        for (status, code) in [
            (403, "AccessDenied"),
            (400, "ExpiredToken"),
            (403, "InvalidAccessKeyId"),
            (403, "SignatureDoesNotMatch"),
            (400, "InvalidToken"),
            (403, ""),
        ] {
            match classify_status("put", "k", status, code, "x".into()) {
                StorageError::Permanent { message, .. } => {
                    assert!(
                        message.contains("AWS credential chain") && message.contains("refused"),
                        "{status} {code}: {message}"
                    )
                }
                other => panic!("{status} {code}: {other:?}"),
            }
        }
    }

    #[test]
    fn clock_skew_names_the_clock() {
        match classify_status("put", "k", 403, "RequestTimeTooSkewed", "x".into()) {
            StorageError::Permanent { message, .. } => assert!(message.contains("clock")),
            other => panic!("{other:?}"),
        }
    }
}
