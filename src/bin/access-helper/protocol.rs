//! The runtime-access protocol as this broker serves it: `POST /v1/credentials` with
//! `{"scope", "audience", "target"?}` answers the broker's token answer (200) or a refusal; every other
//! path is `not_supported`. One log line per request, without the bearer or the token.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Body, Incoming};
use hyper::header::{ALLOW, CACHE_CONTROL, CONTENT_TYPE, HeaderValue, PRAGMA};
use hyper::{Method, Request, Response, StatusCode};
use serde::Deserialize;
use serde_json::Value;

use crate::bearer;
use crate::broker_client::{BrokerClient, Issued};
use crate::cache::{CacheKey, Source, TokenCache};
use crate::refusal::Refusal;
use crate::settings::Settings;

pub const CREDENTIALS_PATH: &str = "/v1/credentials";
/// Largest request body read: the protocol's body is under 100 bytes.
pub const MAX_BODY_BYTES: usize = 8 * 1024;
/// How long a client may take to send its body once its headers are in.
const BODY_TIMEOUT: Duration = Duration::from_secs(5);
const MAX_AUDIENCE_LEN: usize = 64;

pub struct State {
    pub settings: Settings,
    pub broker: Arc<BrokerClient>,
    pub cache: TokenCache,
}

/// The protocol's request body. Unknown fields are refused, so a body of another protocol is never
/// taken for this one.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CredentialRequest {
    scope: Scope,
    audience: String,
    #[serde(default)]
    target: Option<Target>,
}

#[derive(Deserialize, Clone, Copy)]
#[serde(rename_all = "snake_case")]
enum Scope {
    DataPlatform,
    SecretStore,
}

impl Scope {
    fn as_str(self) -> &'static str {
        match self {
            Scope::DataPlatform => "data_platform",
            Scope::SecretStore => "secret_store",
        }
    }
}

/// Whose credential the agent asks for. This broker mints only with the bearer the helper holds, which
/// is the intent session's own; a Studio `domain` credential has no counterpart here.
#[derive(Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
enum Target {
    Intent,
    Domain,
}

pub async fn handle(request: Request<Incoming>, state: Arc<State>) -> Response<Full<Bytes>> {
    let started = Instant::now();
    let path_known = request.uri().path() == CREDENTIALS_PATH;
    let outcome = if path_known {
        credentials(request, &state).await
    } else {
        Err((Refusal::not_supported(), None))
    };
    let (response, fields) = match outcome {
        Ok((issued, fields)) => (token_response(&issued), Some(fields)),
        Err((refusal, fields)) => {
            let code = refusal.code.clone();
            let mut response = refusal.clone().into_response();
            if refusal.status == StatusCode::METHOD_NOT_ALLOWED {
                response
                    .headers_mut()
                    .insert(ALLOW, HeaderValue::from_static("POST"));
            }
            tracing::info!(
                event = "refused",
                status = response.status().as_u16(),
                code = &*code,
                audience = fields.as_ref().map(|f: &Logged| f.audience.as_str()),
                scope = fields.as_ref().map(|f| f.scope),
                cache = fields.as_ref().and_then(|f| f.source).map(Source::as_str),
                elapsed_ms = started.elapsed().as_millis() as u64,
                "credential request refused"
            );
            return response;
        }
    };
    if let Some(fields) = fields {
        tracing::info!(
            event = "issued",
            status = 200,
            audience = fields.audience.as_str(),
            scope = fields.scope,
            cache = fields.source.map(Source::as_str),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "credential issued"
        );
    }
    response
}

/// What the request's log line records once the body has been read.
struct Logged {
    audience: String,
    scope: &'static str,
    source: Option<Source>,
}

type Outcome = Result<(Arc<Issued>, Logged), (Refusal, Option<Logged>)>;

async fn credentials(request: Request<Incoming>, state: &State) -> Outcome {
    let request = read_request(request)
        .await
        .map_err(|refusal| (refusal, None))?;
    let mut logged = Logged {
        audience: request.audience.clone(),
        scope: request.scope.as_str(),
        source: None,
    };
    if request.target == Some(Target::Domain) {
        return Err((Refusal::domain_target(), Some(logged)));
    }
    let bearer = match bearer::read(&state.settings.credential_file).await {
        Ok(bearer) => bearer,
        Err(refusal) => return Err((refusal, Some(logged))),
    };
    let key = CacheKey {
        bearer: bearer::digest_of(&bearer),
        audience: request.audience.clone(),
        scope: logged.scope.to_owned(),
    };
    let audience = request.audience;
    let scope = logged.scope;
    let broker = state.broker.clone();
    let (minted, source) = state
        .cache
        .get_or_mint(
            key,
            async move { broker.mint(&bearer, &audience, scope).await },
        )
        .await;
    logged.source = Some(source);
    match minted {
        Ok(issued) => Ok((issued, logged)),
        Err(refusal) => Err((refusal, Some(logged))),
    }
}

async fn read_request(request: Request<Incoming>) -> Result<CredentialRequest, Refusal> {
    if request.method() != Method::POST {
        return Err(Refusal::invalid_request(
            StatusCode::METHOD_NOT_ALLOWED,
            "Use POST for /v1/credentials.",
        ));
    }
    let json = request
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split(';').next())
        .is_some_and(|media| media.trim().eq_ignore_ascii_case("application/json"));
    if !json {
        return Err(Refusal::invalid_request(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "The body must be application/json.",
        ));
    }
    const TOO_LARGE: Refusal = Refusal::invalid_request(
        StatusCode::PAYLOAD_TOO_LARGE,
        "The body is larger than 8 KiB.",
    );
    // An announced length over the cap is refused before any of the body is waited for.
    if request.body().size_hint().lower() > MAX_BODY_BYTES as u64 {
        return Err(TOO_LARGE);
    }
    let body = Limited::new(request.into_body(), MAX_BODY_BYTES);
    let body = match tokio::time::timeout(BODY_TIMEOUT, body.collect()).await {
        Err(_) => {
            return Err(Refusal::invalid_request(
                StatusCode::REQUEST_TIMEOUT,
                "The body did not arrive in time.",
            ));
        }
        Ok(Err(err)) if err.is::<http_body_util::LengthLimitError>() => return Err(TOO_LARGE),
        Ok(Err(_)) => {
            return Err(Refusal::invalid_request(
                StatusCode::BAD_REQUEST,
                "The body could not be read.",
            ));
        }
        Ok(Ok(body)) => body.to_bytes(),
    };
    parse(&body)
}

fn parse(body: &[u8]) -> Result<CredentialRequest, Refusal> {
    const NOT_THE_PROTOCOL: Refusal = Refusal::invalid_request(
        StatusCode::BAD_REQUEST,
        "The body must be {\"scope\": \"data_platform\" or \"secret_store\", \"audience\": \"<alias>\"}, \
         with an optional \"target\".",
    );
    let request: CredentialRequest = serde_json::from_slice(body).map_err(|_| NOT_THE_PROTOCOL)?;
    let audience_shaped = (1..=MAX_AUDIENCE_LEN).contains(&request.audience.len())
        && request
            .audience
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if !audience_shaped {
        return Err(NOT_THE_PROTOCOL);
    }
    Ok(request)
}

/// The broker's token answer with `expires_in` counted from now (a cached token has less left).
fn token_response(issued: &Issued) -> Response<Full<Bytes>> {
    let mut body = issued.fields.clone();
    let left = issued
        .expires_at
        .saturating_duration_since(Instant::now())
        .as_secs();
    body.insert("expires_in".into(), Value::from(left));
    // The one place the issued token leaves the helper: the 200 body.
    body.insert(
        "access_token".into(),
        Value::String(issued.access_token.expose().to_owned()),
    );
    let mut response = Response::new(Full::new(Bytes::from(Value::Object(body).to_string())));
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(PRAGMA, HeaderValue::from_static("no-cache"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_clients_bodies_parse() {
        for body in [
            r#"{"scope":"data_platform","audience":"sql"}"#,
            r#"{"scope":"secret_store","audience":"key_vault_data_plane","target":"intent"}"#,
            r#"{"scope":"data_platform","audience":"storage","target":null}"#,
        ] {
            assert!(parse(body.as_bytes()).is_ok(), "{body}");
        }
    }

    #[test]
    fn bodies_that_are_not_the_protocol_are_invalid_requests() {
        for body in [
            "",
            "null",
            "[]",
            r#"{"audience":"sql"}"#,
            r#"{"scope":"everything","audience":"sql"}"#,
            r#"{"scope":"data_platform","audience":""}"#,
            r#"{"scope":"data_platform","audience":"sql\n"}"#,
            r#"{"scope":"data_platform","audience":"sql","lane":"service"}"#,
            r#"{"scope":"data_platform","audience":"sql","target":"broker"}"#,
            r#"{"scope":"data_platform","audience":7}"#,
        ] {
            let refusal = parse(body.as_bytes())
                .err()
                .unwrap_or_else(|| panic!("{body} parsed"));
            assert_eq!(
                (refusal.status, &*refusal.code),
                (StatusCode::BAD_REQUEST, "invalid_request"),
                "{body}"
            );
        }
    }
}
