//! The control API's plumbing: request bodies read as JSON (an empty one as `{}`) and the refusals it
//! answers, `400 {"error","error_description"}`, 404 and 405.

use crate::http::{self, Request, Response};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use warp::http::StatusCode;

/// Why a control request was refused.
pub enum Refusal {
    BadRequest(String),
    NotFound,
    MethodNotAllowed(&'static str),
}

pub fn bad_request(description: impl Into<String>) -> Refusal {
    Refusal::BadRequest(description.into())
}

impl Refusal {
    pub fn respond(self) -> Response {
        match self {
            Self::BadRequest(description) => http::json(
                StatusCode::BAD_REQUEST,
                &json!({"error": "invalid_request", "error_description": description}),
            ),
            Self::NotFound => http::json(StatusCode::NOT_FOUND, &json!({"error": "not_found"})),
            Self::MethodNotAllowed(allow) => {
                let mut response = http::json(
                    StatusCode::METHOD_NOT_ALLOWED,
                    &json!({"error": "method_not_allowed"}),
                );
                http::set_header(&mut response, "allow", allow);
                response
            }
        }
    }
}

/// An empty body reads as `{}`.
pub fn body<T: DeserializeOwned>(request: &Request) -> Result<T, Refusal> {
    let bytes: &[u8] = if request.body.iter().all(u8::is_ascii_whitespace) {
        b"{}"
    } else {
        &request.body
    };
    serde_json::from_slice(bytes)
        .map_err(|error| bad_request(format!("invalid JSON body: {error}")))
}

pub fn found(removed: bool) -> Result<Value, Refusal> {
    if removed {
        Ok(json!({"removed": true}))
    } else {
        Err(Refusal::NotFound)
    }
}
