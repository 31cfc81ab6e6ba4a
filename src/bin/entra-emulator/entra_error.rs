//! Entra's OAuth error answer: `error`, an `error_description` that starts `AADSTSnnnnn:` and ends
//! ` Trace ID: .. Correlation ID: .. Timestamp: ..`, `error_codes`, `timestamp`, `trace_id`, `correlation_id`,
//! `error_uri`, and `suberror`/`claims` where Entra adds them. The correlation id echoes the request's
//! `client-request-id` when that is a GUID, as Entra does.

use crate::http::{self, Request, Response};
use crate::{clock, ids};
use serde_json::json;
use warp::http::StatusCode;

/// Response extension carrying the AADSTS code, for the request log line.
#[derive(Clone, Copy, Debug)]
pub struct AadstsCode(pub u32);

/// One Entra refusal, before it is rendered for a particular request.
pub struct EntraError {
    status: StatusCode,
    error: &'static str,
    code: u32,
    message: String,
    suberror: Option<&'static str>,
    claims: Option<String>,
}

impl EntraError {
    pub fn new(
        status: StatusCode,
        error: &'static str,
        code: u32,
        message: impl Into<String>,
    ) -> Self {
        Self {
            status,
            error,
            code,
            message: message.into(),
            suberror: None,
            claims: None,
        }
    }

    /// The usual 400 answer.
    pub fn bad_request(error: &'static str, code: u32, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, error, code, message)
    }

    pub fn with_suberror(mut self, suberror: &'static str) -> Self {
        self.suberror = Some(suberror);
        self
    }

    pub fn with_claims(mut self, claims: String) -> Self {
        self.claims = Some(claims);
        self
    }

    /// The JSON answer with Entra's headers.
    pub fn respond(&self, request: &Request) -> Response {
        let trace_id = ids::guid();
        let correlation_id = correlation_id(request);
        let timestamp = clock::entra_timestamp(clock::now());
        let mut body = json!({
            "error": self.error,
            "error_description": format!(
                "AADSTS{}: {} Trace ID: {trace_id} Correlation ID: {correlation_id} Timestamp: {timestamp}",
                self.code, self.message
            ),
            "error_codes": [self.code],
            "timestamp": timestamp,
            "trace_id": trace_id,
            "correlation_id": correlation_id,
            "error_uri": format!("https://login.microsoftonline.com/error?code={}", self.code),
        });
        if let Some(object) = body.as_object_mut() {
            if let Some(suberror) = self.suberror {
                object.insert("suberror".into(), json!(suberror));
            }
            if let Some(claims) = &self.claims {
                object.insert("claims".into(), json!(claims));
            }
        }
        let mut response = http::json(self.status, &body);
        entra_headers(&mut response, request, &trace_id, &correlation_id);
        response.extensions_mut().insert(AadstsCode(self.code));
        response
    }
}

/// The request's `client-request-id` when it is a GUID, else a new one.
pub fn correlation_id(request: &Request) -> String {
    request
        .header("client-request-id")
        .filter(|id| ids::is_guid(id))
        .map_or_else(ids::guid, str::to_ascii_lowercase)
}

/// Headers every token-endpoint answer carries: no caching, the request id, the echoed client request id.
pub fn entra_headers(
    response: &mut Response,
    request: &Request,
    trace_id: &str,
    correlation_id: &str,
) {
    http::set_header(response, "cache-control", "no-store, no-cache");
    http::set_header(response, "pragma", "no-cache");
    http::set_header(response, "x-ms-request-id", trace_id);
    if request
        .header("return-client-request-id")
        .is_some_and(|flag| flag.eq_ignore_ascii_case("true"))
    {
        http::set_header(response, "client-request-id", correlation_id);
    }
}
