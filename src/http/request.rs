//! The parts of a request the handlers read, and the rules for them: a bounded body, the JSON media
//! type, exactly one well-formed `Authorization: Bearer` header, and the request id.

use bytes::{Buf, Bytes};
use futures_util::{Stream, StreamExt};
use warp::Filter;
use warp::http::{HeaderMap, Method, header};

use crate::broker::error::CallerError;
use crate::http::error::ApiError;
use crate::secret::Secret;

/// Largest request body accepted; the real ones are under 200 bytes.
pub const MAX_BODY: usize = 8 * 1024;
/// Largest bearer token accepted; Entra access tokens are 1-4 KB, larger with many groups.
const MAX_BEARER: usize = 16 * 1024;

/// The bytes of a compact JWS: base64url and the segment separator.
#[allow(
    clippy::indexing_slicing,
    reason = "evaluated at compile time: a bad index fails the build"
)]
const JWS_CHARS: [bool; 256] = {
    let mut table = [false; 256];
    let mut byte = 0;
    while byte < 256 {
        let b = byte as u8;
        table[byte] = b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.';
        byte += 1;
    }
    table
};

pub struct RequestParts {
    pub method: Method,
    pub headers: HeaderMap,
    pub body: Result<Bytes, ApiError>,
}

/// Method, headers and the body read up to `MAX_BODY` (a larger one is never buffered whole).
pub fn request_parts() -> impl Filter<Extract = (RequestParts,), Error = warp::Rejection> + Clone {
    warp::method()
        .and(warp::header::headers_cloned())
        .and(warp::body::stream())
        .then(|method, headers: HeaderMap, stream| async move {
            let body = read_bounded(&headers, stream).await;
            RequestParts {
                method,
                headers,
                body,
            }
        })
}

async fn read_bounded<S, B>(headers: &HeaderMap, stream: S) -> Result<Bytes, ApiError>
where
    S: Stream<Item = Result<B, warp::Error>>,
    B: Buf,
{
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > MAX_BODY as u64) {
        return Err(ApiError::PayloadTooLarge);
    }
    let mut body = Vec::new();
    let mut stream = std::pin::pin!(stream);
    while let Some(chunk) = stream.next().await {
        let mut chunk = chunk.map_err(|_| ApiError::BadRequest("body_unreadable"))?;
        if body.len() + chunk.remaining() > MAX_BODY {
            return Err(ApiError::PayloadTooLarge);
        }
        while chunk.has_remaining() {
            let part = chunk.chunk();
            body.extend_from_slice(part);
            let len = part.len();
            chunk.advance(len);
        }
    }
    Ok(body.into())
}

impl RequestParts {
    /// The body as `T`, if it is JSON sent as `application/json`.
    pub fn json_body<T: serde::de::DeserializeOwned>(&self) -> Result<T, ApiError> {
        let content_type = self
            .headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        let media_type = content_type.split(';').next().unwrap_or_default().trim();
        if !media_type.eq_ignore_ascii_case("application/json") {
            return Err(ApiError::UnsupportedMediaType);
        }
        let body = self.body.as_ref().map_err(Clone::clone)?;
        serde_json::from_slice(body).map_err(|_| ApiError::BadRequest("body_not_json"))
    }

    /// The caller's bearer token: exactly one `Authorization` header, scheme `Bearer` in any case,
    /// and a compact JWS (three base64url segments) of bounded length.
    pub fn bearer(&self) -> Result<Secret, CallerError> {
        let mut values = self.headers.get_all(header::AUTHORIZATION).iter();
        let value = values.next().ok_or(CallerError::MissingAuthorization)?;
        if values.next().is_some() {
            return Err(CallerError::MalformedAuthorization);
        }
        // One pass over the raw bytes: the scheme, one space, then a compact JWS (base64url segments
        // separated by exactly two dots) of bounded length.
        let value = value.as_bytes();
        let space = value
            .iter()
            .position(|&b| b == b' ')
            .ok_or(CallerError::MalformedAuthorization)?;
        let (scheme, token) = value.split_at(space);
        if !scheme.eq_ignore_ascii_case(b"bearer") {
            return Err(CallerError::MalformedAuthorization);
        }
        let token = token.get(1..).unwrap_or_default();
        if token.is_empty() || token.len() > MAX_BEARER {
            return Err(CallerError::Malformed);
        }
        // Table lookups and a separate count vectorise; this runs on every request's 1-4 KB token.
        let charset_ok = token
            .iter()
            .all(|&b| JWS_CHARS.get(usize::from(b)).copied().unwrap_or(false));
        if !charset_ok
            && !token
                .iter()
                .all(|&b| b == b'\t' || (b' '..=b'~').contains(&b))
        {
            // Not even a printable header value (RFC 9110 field-value), let alone a token.
            return Err(CallerError::MalformedAuthorization);
        }
        let dots = token.iter().filter(|&&b| b == b'.').count();
        if !charset_ok || dots != 2 {
            return Err(CallerError::Malformed);
        }
        std::str::from_utf8(token)
            .map(Secret::new)
            .map_err(|_| CallerError::Malformed)
    }

    /// The Functions host's invocation id when it is a plausible id, else a fresh one.
    pub fn request_id(&self) -> String {
        self.headers
            .get("x-azure-functions-invocationid")
            .and_then(|v| v.to_str().ok())
            .filter(|id| {
                (1..=64).contains(&id.len())
                    && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            })
            .map_or_else(new_request_id, str::to_owned)
    }
}

fn new_request_id() -> String {
    format!("{:032x}", rand::random::<u128>())
}

#[cfg(test)]
mod tests {
    use super::*;
    use warp::http::HeaderValue;

    fn parts(authorization: &[&str]) -> RequestParts {
        let mut headers = HeaderMap::new();
        for value in authorization {
            headers.append(header::AUTHORIZATION, HeaderValue::from_str(value).unwrap());
        }
        RequestParts {
            method: Method::POST,
            headers,
            body: Ok(Bytes::new()),
        }
    }

    #[test]
    fn bearer_scheme_is_case_insensitive() {
        assert_eq!(parts(&["bearer a.b.c"]).bearer().unwrap().expose(), "a.b.c");
        assert_eq!(parts(&["BEARER a.b.c"]).bearer().unwrap().expose(), "a.b.c");
    }

    #[test]
    fn authorization_rules() {
        let cases: [(&[&str], CallerError); 8] = [
            (&[], CallerError::MissingAuthorization),
            (
                &["Bearer a.b.c", "Bearer a.b.c"],
                CallerError::MalformedAuthorization,
            ),
            (&["Basic dXNlcjpwYXNz"], CallerError::MalformedAuthorization),
            (&["Bearer"], CallerError::MalformedAuthorization),
            (&["Bearer  a.b.c"], CallerError::Malformed),
            (&["Bearer a.b"], CallerError::Malformed),
            (&["Bearer a.b.c=="], CallerError::Malformed),
            (&["Bearer a.b.\u{e9}"], CallerError::MalformedAuthorization),
        ];
        for (headers, expected) in cases {
            assert_eq!(
                parts(headers).bearer().unwrap_err(),
                expected,
                "{headers:?}"
            );
        }
    }
}
