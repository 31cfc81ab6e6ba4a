//! The request as every handler sees it (already read in full) and the response builders they share.

use bytes::Bytes;
use serde_json::Value;
use warp::http::header::{CONTENT_TYPE, HeaderName, HeaderValue};
use warp::http::{HeaderMap, Method, StatusCode};

pub type Response = warp::reply::Response;

/// Which listener a request arrived on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Listener {
    Https,
    Http,
}

impl Listener {
    pub fn name(self) -> &'static str {
        match self {
            Self::Https => "https",
            Self::Http => "http",
        }
    }
}

/// A request read in full: method, path, raw query, headers and body.
pub struct Request {
    pub listener: Listener,
    pub method: Method,
    pub path: String,
    pub query: String,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Request {
    /// Path segments with empty ones dropped (Key Vault clients may send `//secrets/...`).
    pub fn segments(&self) -> Vec<&str> {
        self.path
            .split('/')
            .filter(|segment| !segment.is_empty())
            .collect()
    }

    /// The first value of a header, when it is visible ASCII.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|value| value.to_str().ok())
    }

    pub fn header_count(&self, name: &str) -> usize {
        self.headers.get_all(name).iter().count()
    }

    /// Query parameters in order, percent-decoded, duplicates kept.
    pub fn query_pairs(&self) -> Vec<(String, String)> {
        url::form_urlencoded::parse(self.query.as_bytes())
            .map(|(name, value)| (name.into_owned(), value.into_owned()))
            .collect()
    }
}

/// The first parameter name that appears more than once.
pub fn first_duplicate(pairs: &[(String, String)]) -> Option<&str> {
    pairs
        .iter()
        .enumerate()
        .find(|(index, (name, _))| {
            pairs
                .iter()
                .take(*index)
                .any(|(earlier, _)| earlier == name)
        })
        .map(|(_, (name, _))| name.as_str())
}

/// The first non-empty value of a parameter.
pub fn first_value<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(key, _)| key == name)
        .map(|(_, value)| value.as_str())
        .filter(|value| !value.is_empty())
}

/// Response extension that makes the server close the connection without answering (the "down" fault).
#[derive(Clone, Copy, Debug)]
pub struct DropConnection;

pub fn drop_connection() -> Response {
    let mut response = Response::new(Bytes::new().into());
    response.extensions_mut().insert(DropConnection);
    response
}

pub fn json(status: StatusCode, body: &Value) -> Response {
    text(status, "application/json; charset=utf-8", body.to_string())
}

pub fn text(status: StatusCode, content_type: &'static str, body: String) -> Response {
    let mut response = Response::new(body.into());
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

pub fn empty(status: StatusCode) -> Response {
    let mut response = Response::new(Bytes::new().into());
    *response.status_mut() = status;
    response
}

/// Sets a header; values that are not valid header text are skipped.
pub fn set_header(response: &mut Response, name: &'static str, value: &str) {
    if let Ok(value) = HeaderValue::from_str(value) {
        response
            .headers_mut()
            .insert(HeaderName::from_static(name), value);
    }
}
