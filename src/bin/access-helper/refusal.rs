//! Every answer other than a token: a status, a stable code and a short message, always with the
//! `x-runtime-access-error` header (the client reports a non-200 without it as `upstream_failure`).

use std::borrow::Cow;

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{CACHE_CONTROL, CONTENT_TYPE, HeaderValue, RETRY_AFTER};
use hyper::{Response, StatusCode};

/// The header that marks a refusal; its value is the code.
pub const ERROR_HEADER: &str = "x-runtime-access-error";

#[derive(Debug, Clone)]
pub struct Refusal {
    pub status: StatusCode,
    /// Stable, lower-case: the broker's own code, or one of the helper's below.
    pub code: Cow<'static, str>,
    pub message: Cow<'static, str>,
    /// The broker's `Retry-After`, passed through.
    pub retry_after: Option<HeaderValue>,
}

impl Refusal {
    const fn fixed(status: StatusCode, code: &'static str, message: &'static str) -> Self {
        Self {
            status,
            code: Cow::Borrowed(code),
            message: Cow::Borrowed(message),
            retry_after: None,
        }
    }

    pub const fn invalid_request(status: StatusCode, message: &'static str) -> Self {
        Self::fixed(status, "invalid_request", message)
    }

    pub const fn not_supported() -> Self {
        Self::fixed(
            StatusCode::NOT_FOUND,
            "not_supported",
            "This runtime-access helper serves only POST /v1/credentials.",
        )
    }

    pub const fn domain_target() -> Self {
        Self::fixed(
            StatusCode::BAD_REQUEST,
            "not_supported",
            "This broker mints only for the caller's own bearer; target `domain` is not supported.",
        )
    }

    pub const fn credential_unavailable() -> Self {
        Self::fixed(
            StatusCode::SERVICE_UNAVAILABLE,
            "credential_unavailable",
            "The helper's credential file is missing, unreadable or empty.",
        )
    }

    pub const fn unavailable() -> Self {
        Self::fixed(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "The credential broker could not be reached or did not answer in time.",
        )
    }

    pub const fn unusable_answer() -> Self {
        Self::fixed(
            StatusCode::BAD_GATEWAY,
            "unavailable",
            "The credential broker gave an answer that is not a token or a broker error.",
        )
    }

    pub fn into_response(self) -> Response<Full<Bytes>> {
        let body = serde_json::json!({"code": self.code, "message": self.message});
        let mut response = Response::new(Full::new(Bytes::from(body.to_string())));
        *response.status_mut() = self.status;
        let headers = response.headers_mut();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
        // Codes are checked to be lower-case ASCII (`broker_client::broker_code`), so this never fails.
        if let Ok(code) = HeaderValue::from_str(&self.code) {
            headers.insert(ERROR_HEADER, code);
        }
        if let Some(retry_after) = self.retry_after {
            headers.insert(RETRY_AFTER, retry_after);
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_refusal_carries_the_error_header_with_its_code() {
        let mut refusal = Refusal::unavailable();
        refusal.retry_after = Some(HeaderValue::from_static("5"));
        let response = refusal.into_response();
        assert_eq!(response.status(), 503);
        assert_eq!(response.headers()[ERROR_HEADER], "unavailable");
        assert_eq!(response.headers()[RETRY_AFTER], "5");
    }
}
