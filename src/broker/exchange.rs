//! The grants at Entra's v2 token endpoint: client credentials for the broker's own service principal,
//! On-Behalf-Of (RFC 7523 jwt-bearer, `requested_token_use=on_behalf_of`) for a user, optionally with
//! `offline_access` for a refresh token, and the refresh-token grant (RFC 6749 §6) that continues a
//! delegation's sign-in. No Rust crate does OBO, and the grants share one form post, so all live here,
//! small.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde::Deserialize;
use url::Url;

use crate::broker::credential::ClientAuth;
use crate::broker::entra_error;
use crate::broker::error::{UpstreamError, UpstreamErrorKind};
use crate::broker::ids::{ClientId, Guid, TenantId};
use crate::broker::metrics::Metrics;
use crate::broker::scope::TargetScope;
use crate::broker::upstream::{Upstream, UpstreamCallError};
use crate::clock::now;
use crate::secret::{Secret, SecretJson};

const OBO_GRANT: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";
const REFRESH_GRANT: &str = "refresh_token";
/// The OpenID scope that asks Entra for a refresh token.
const OFFLINE_ACCESS: &str = "offline_access";
const CLIENT_ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
/// Consecutive unavailable answers that open the breaker, and how long it then stays open.
const BREAKER_THRESHOLD: u32 = 3;
const BREAKER_OPEN: Duration = Duration::from_secs(5);
/// Longest token lifetime believed (Entra issues 60-90 minutes; 24 h is generous).
const MAX_EXPIRES_IN: u64 = 86_400;
const MAX_TOKEN_LEN: usize = 16 * 1024;

/// A token Entra issued.
#[derive(Debug, Clone)]
pub struct IssuedToken {
    pub access_token: SecretJson,
    /// Unix seconds.
    pub expires_at: u64,
    pub correlation_id: String,
    pub upstream_ms: u64,
}

/// A user's token with the refresh token that continues the sign-in, when Entra sent one.
#[derive(Debug)]
pub struct UserGrant {
    pub token: IssuedToken,
    pub refresh_token: Option<Secret>,
}

pub struct TokenEndpoint {
    upstream: Upstream,
    metrics: Arc<Metrics>,
    url: Url,
    client_id: ClientId,
    breaker: Breaker,
}

impl TokenEndpoint {
    /// `metrics` counts every call made and every call that failed.
    pub fn new(
        upstream: Upstream,
        metrics: Arc<Metrics>,
        authority: &Url,
        tenant: &TenantId,
        client_id: ClientId,
    ) -> Result<Self, url::ParseError> {
        Ok(Self {
            upstream,
            metrics,
            url: authority.join(&format!("{tenant}/oauth2/v2.0/token"))?,
            client_id,
            breaker: Breaker::default(),
        })
    }

    /// The token endpoint's URL: the `aud` of the broker's client assertions.
    pub fn url(&self) -> &str {
        self.url.as_str()
    }

    pub async fn client_credentials(
        &self,
        auth: &ClientAuth,
        scope: &TargetScope,
    ) -> Result<IssuedToken, UpstreamError> {
        let mut form = vec![
            ("grant_type", "client_credentials"),
            ("client_id", self.client_id.as_str()),
        ];
        push_client_auth(&mut form, auth);
        form.push(("scope", scope.as_str()));
        self.request(&form).await
    }

    pub async fn on_behalf_of(
        &self,
        auth: &ClientAuth,
        assertion: &Secret,
        scope: &TargetScope,
    ) -> Result<IssuedToken, UpstreamError> {
        self.request(&self.obo_form(auth, assertion, scope.as_str()))
            .await
    }

    /// On-Behalf-Of asking also for `offline_access`: the token and the user's refresh token.
    pub async fn on_behalf_of_offline(
        &self,
        auth: &ClientAuth,
        assertion: &Secret,
        scope: &TargetScope,
    ) -> Result<UserGrant, UpstreamError> {
        let scopes = format!("{} {OFFLINE_ACCESS}", scope.as_str());
        self.request_keeping_refresh_token(&self.obo_form(auth, assertion, &scopes))
            .await
    }

    /// The On-Behalf-Of form for `scopes` (space-separated), authenticated as `auth`.
    fn obo_form<'a>(
        &'a self,
        auth: &'a ClientAuth,
        assertion: &'a Secret,
        scopes: &'a str,
    ) -> Vec<(&'static str, &'a str)> {
        let mut form = vec![
            ("grant_type", OBO_GRANT),
            ("client_id", self.client_id.as_str()),
        ];
        push_client_auth(&mut form, auth);
        form.extend([
            ("assertion", assertion.expose()),
            ("scope", scopes),
            ("requested_token_use", "on_behalf_of"),
        ]);
        form
    }

    /// The refresh-token grant for a confidential client: a token for `scope` issued to the refresh
    /// token's user, and the rotated refresh token when Entra sends one.
    pub async fn refresh(
        &self,
        auth: &ClientAuth,
        refresh_token: &Secret,
        scope: &TargetScope,
    ) -> Result<UserGrant, UpstreamError> {
        let mut form = vec![
            ("grant_type", REFRESH_GRANT),
            ("client_id", self.client_id.as_str()),
        ];
        push_client_auth(&mut form, auth);
        form.extend([
            ("refresh_token", refresh_token.expose()),
            ("scope", scope.as_str()),
        ]);
        self.request_keeping_refresh_token(&form).await
    }

    async fn request(&self, form: &[(&str, &str)]) -> Result<IssuedToken, UpstreamError> {
        Ok(self.call(form).await?.0)
    }

    async fn request_keeping_refresh_token(
        &self,
        form: &[(&str, &str)],
    ) -> Result<UserGrant, UpstreamError> {
        let (token, body) = self.call(form).await?;
        Ok(UserGrant {
            token,
            refresh_token: parse_refresh_token(&body),
        })
    }

    /// One token request: the issued token and the answer's body (for the refresh token).
    async fn call(
        &self,
        form: &[(&str, &str)],
    ) -> Result<(IssuedToken, bytes::Bytes), UpstreamError> {
        self.breaker.check()?;
        Metrics::add(&self.metrics.token_endpoint_calls);
        let correlation_id = Guid::random_v4().to_string();
        let started = Instant::now();
        let mut body = bytes::Bytes::new();
        let outcome = match self
            .upstream
            .post_form(&self.url, form, &correlation_id)
            .await
        {
            Ok(response) => {
                let answer = read_answer(response.status, response.retry_after, &response.body);
                body = response.body;
                answer
            }
            Err(UpstreamCallError::Body) => {
                Err(UpstreamError::new(UpstreamErrorKind::InvalidResponse))
            }
            Err(_) => Err(UpstreamError::new(UpstreamErrorKind::Unavailable)),
        };
        let upstream_ms = started.elapsed().as_millis() as u64;
        self.breaker.record(&outcome);
        if outcome.is_err() {
            Metrics::add(&self.metrics.token_endpoint_failures);
        }
        match outcome {
            Ok((access_token, expires_in)) => Ok((
                IssuedToken {
                    access_token,
                    expires_at: now() + expires_in,
                    correlation_id,
                    upstream_ms,
                },
                body,
            )),
            Err(mut err) => {
                err.correlation_id.get_or_insert(correlation_id);
                Err(err)
            }
        }
    }
}

/// `client_secret`, or the RFC 7523 §2.2 client assertion (`client_secret_post` and
/// `private_key_jwt`, as Entra takes them).
fn push_client_auth<'a>(form: &mut Vec<(&'static str, &'a str)>, auth: &'a ClientAuth) {
    match auth {
        ClientAuth::Secret(secret) => form.push(("client_secret", secret.expose())),
        ClientAuth::Assertion(assertion) => form.extend([
            ("client_assertion_type", CLIENT_ASSERTION_TYPE),
            ("client_assertion", assertion.expose()),
        ]),
    }
}

#[derive(Deserialize)]
struct TokenResponse {
    token_type: String,
    expires_in: ExpiresIn,
    access_token: String,
}

/// Entra sends a number; some proxies and older endpoints send a string.
#[derive(Deserialize)]
#[serde(untagged)]
enum ExpiresIn {
    Number(u64),
    Text(String),
}

/// The token endpoint's answer: the token and its lifetime on a 2xx, else Entra's error, classified.
pub(crate) fn read_answer(
    status: StatusCode,
    retry_after: Option<Duration>,
    body: &[u8],
) -> Result<(SecretJson, u64), UpstreamError> {
    if status.is_success() {
        parse_success(body)
    } else {
        Err(entra_error::classify(status, retry_after, body))
    }
}

pub(crate) fn parse_success(body: &[u8]) -> Result<(SecretJson, u64), UpstreamError> {
    let invalid = || UpstreamError::new(UpstreamErrorKind::InvalidResponse);
    let response: TokenResponse = serde_json::from_slice(body).map_err(|_| invalid())?;
    let expires_in = match response.expires_in {
        ExpiresIn::Number(n) => n,
        ExpiresIn::Text(text) => text.parse().map_err(|_| invalid())?,
    };
    let token = response.access_token;
    if !response.token_type.eq_ignore_ascii_case("bearer")
        || token.is_empty()
        || token.len() > MAX_TOKEN_LEN
        || expires_in == 0
        || expires_in > MAX_EXPIRES_IN
    {
        return Err(invalid());
    }
    let token = SecretJson::new(&token).ok_or_else(invalid)?;
    Ok((token, expires_in))
}

/// The `refresh_token` of a successful answer: opaque to the broker, so only its size and alphabet
/// (printable ASCII, no spaces) are checked.
fn parse_refresh_token(body: &[u8]) -> Option<Secret> {
    #[derive(Deserialize)]
    struct WithRefreshToken {
        refresh_token: Option<String>,
    }
    let token = serde_json::from_slice::<WithRefreshToken>(body)
        .ok()?
        .refresh_token?;
    let plausible = !token.is_empty()
        && token.len() <= MAX_TOKEN_LEN
        && token.bytes().all(|b| b.is_ascii_graphic());
    plausible.then(|| Secret::new(token))
}

/// Fails fast while Entra is down or throttling, instead of piling requests onto it: opens after
/// `BREAKER_THRESHOLD` consecutive unavailable answers, and for the `Retry-After` of a 429.
#[derive(Default)]
struct Breaker {
    consecutive_failures: AtomicU32,
    /// Unix milliseconds until which calls fail fast (0 = closed).
    open_until_ms: AtomicU64,
    /// Unix milliseconds until which Entra asked us to wait.
    throttled_until_ms: AtomicU64,
}

impl Breaker {
    fn check(&self) -> Result<(), UpstreamError> {
        let now = now_ms();
        let throttled_until = self.throttled_until_ms.load(Ordering::Acquire);
        if throttled_until > now {
            let retry_after = Duration::from_millis(throttled_until - now)
                .as_secs()
                .max(1);
            return Err(UpstreamError::new(UpstreamErrorKind::Throttled {
                retry_after: Duration::from_secs(retry_after),
            }));
        }
        if self.open_until_ms.load(Ordering::Acquire) > now {
            return Err(UpstreamError::new(UpstreamErrorKind::Unavailable));
        }
        Ok(())
    }

    fn record<T>(&self, outcome: &Result<T, UpstreamError>) {
        match outcome.as_ref().map_err(|err| &err.kind) {
            Err(UpstreamErrorKind::Unavailable | UpstreamErrorKind::InvalidResponse) => {
                let failures = self.consecutive_failures.fetch_add(1, Ordering::AcqRel) + 1;
                if failures >= BREAKER_THRESHOLD {
                    self.open_until_ms.store(
                        now_ms() + BREAKER_OPEN.as_millis() as u64,
                        Ordering::Release,
                    );
                    self.consecutive_failures.store(0, Ordering::Release);
                }
            }
            Err(UpstreamErrorKind::Throttled { retry_after }) => {
                self.throttled_until_ms
                    .store(now_ms() + retry_after.as_millis() as u64, Ordering::Release);
            }
            _ => self.consecutive_failures.store(0, Ordering::Release),
        }
    }
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn success_body_is_parsed_strictly() {
        let ok = br#"{"token_type":"Bearer","expires_in":3599,"ext_expires_in":3599,"access_token":"eyJ0.eyJ1.c2ln"}"#;
        let (token, expires_in) = parse_success(ok).unwrap();
        assert_eq!(
            (token.expose_json().get(), expires_in),
            ("\"eyJ0.eyJ1.c2ln\"", 3599)
        );
        let text = br#"{"token_type":"bearer","expires_in":"60","access_token":"abc"}"#;
        assert_eq!(parse_success(text).unwrap().1, 60);
        for bad in [
            &b"<html>oops</html>"[..],
            br#"{"token_type":"Bearer","expires_in":3599}"#,
            br#"{"token_type":"mac","expires_in":3599,"access_token":"abc"}"#,
            br#"{"token_type":"Bearer","expires_in":0,"access_token":"abc"}"#,
            br#"{"token_type":"Bearer","expires_in":3599,"access_token":"a b"}"#,
        ] {
            assert_eq!(
                parse_success(bad).unwrap_err().kind,
                UpstreamErrorKind::InvalidResponse
            );
        }
    }

    #[test]
    fn refresh_token_is_read_only_when_plausible() {
        let answer = |token: &str| {
            format!(
                r#"{{"token_type":"Bearer","expires_in":60,"access_token":"a","refresh_token":"{token}"}}"#
            )
        };
        assert_eq!(
            parse_refresh_token(answer("1.AQ-x_y").as_bytes())
                .unwrap()
                .expose(),
            "1.AQ-x_y"
        );
        assert!(parse_refresh_token(answer("").as_bytes()).is_none());
        assert!(parse_refresh_token(answer("a b").as_bytes()).is_none());
        assert!(parse_refresh_token(br#"{"access_token":"a"}"#).is_none());
    }

    #[test]
    fn breaker_opens_after_consecutive_failures_and_on_throttling() {
        let breaker = Breaker::default();
        let down: Result<(), _> = Err(UpstreamError::new(UpstreamErrorKind::Unavailable));
        for _ in 0..BREAKER_THRESHOLD - 1 {
            breaker.record(&down);
            assert!(breaker.check().is_ok());
        }
        breaker.record(&down);
        assert_eq!(
            breaker.check().unwrap_err().kind,
            UpstreamErrorKind::Unavailable
        );

        let breaker = Breaker::default();
        breaker.record::<()>(&Err(UpstreamError::new(UpstreamErrorKind::Throttled {
            retry_after: Duration::from_secs(30),
        })));
        assert!(matches!(
            breaker.check().unwrap_err().kind,
            UpstreamErrorKind::Throttled { .. }
        ));
    }
}
