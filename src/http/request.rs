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
pub const MAX_BEARER: usize = 16 * 1024;

/// A byte of a compact JWS: base64url or the segment separator. Branch-free, so scans vectorise.
const fn is_jws_byte(b: u8) -> bool {
    let lower = b | 0x20;
    (lower.wrapping_sub(b'a') < 26)
        | (b.wrapping_sub(b'0') < 10)
        | (b == b'-')
        | (b == b'_')
        | (b == b'.')
}

/// Whether every byte is a JWS byte, and how many segment separators there are: one pass without early
/// exits, in blocks the compiler turns into vector code (this runs on every request's 1-4 KB token).
fn scan_jws(token: &[u8]) -> (bool, usize) {
    let (mut valid, mut dots) = (true, 0);
    for block in token.chunks(64) {
        let (mut block_valid, mut block_dots) = (true, 0u8);
        for &b in block {
            block_valid &= is_jws_byte(b);
            block_dots += u8::from(b == b'.');
        }
        valid &= block_valid;
        dots += usize::from(block_dots);
    }
    (valid, dots)
}

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
        let (charset_ok, dots) = scan_jws(token);
        if !charset_ok
            && !token
                .iter()
                .all(|&b| b == b'\t' || (b' '..=b'~').contains(&b))
        {
            // Not even a printable header value (RFC 9110 field-value), let alone a token.
            return Err(CallerError::MalformedAuthorization);
        }
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

/// 32 random lower-case hex digits.
fn new_request_id() -> String {
    let bits = rand::random::<u128>();
    let mut id = String::with_capacity(32);
    id.extend(
        (0..32)
            .rev()
            .filter_map(|nibble| char::from_digit(((bits >> (4 * nibble)) & 0xf) as u32, 16)),
    );
    id
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
    fn generated_request_ids_are_32_hex_digits_and_differ() {
        let (first, second) = (new_request_id(), new_request_id());
        assert_eq!(first.len(), 32);
        assert!(
            first
                .bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        );
        assert_ne!(first, second);
    }

    #[test]
    fn jws_bytes_are_exactly_base64url_and_the_dot() {
        for b in 0..=u8::MAX {
            let expected = b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.';
            assert_eq!(is_jws_byte(b), expected, "byte {b:#04x}");
        }
    }

    #[test]
    fn jws_scan_counts_dots_across_blocks() {
        let token = format!("{}.{}.{}", "a".repeat(100), "b".repeat(63), "c".repeat(200));
        assert_eq!(scan_jws(token.as_bytes()), (true, 2));
        let bad = format!("{}=", "a".repeat(130));
        assert_eq!(scan_jws(bad.as_bytes()), (false, 0));
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
