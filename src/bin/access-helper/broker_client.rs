//! One mint at the broker: `POST {broker_url}/token` with the bearer and `{audience, scope, lane,
//! configurationRevision}`, and the broker's answer read into an issued token or a refusal. The broker's
//! status, error code and `Retry-After` pass through; anything else is `unavailable`.

use std::borrow::Cow;
use std::time::{Duration, Instant};

use hyper::StatusCode;
use hyper::header::{HeaderValue, RETRY_AFTER};
use serde_json::{Map, Value, json};
use token_broker::secret::Secret;

use crate::refusal::Refusal;
use crate::settings::Settings;

/// Below the client's own 10-second default, so that the client hears `unavailable` from the helper
/// rather than timing out itself.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(8);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// Largest broker answer read; a token answer is a few KiB.
const MAX_ANSWER_BYTES: usize = 64 * 1024;
const MAX_CODE_LEN: usize = 64;
const MAX_MESSAGE_LEN: usize = 512;

/// A token the broker issued: the token apart, the rest of its answer as the broker gave it.
#[derive(Debug)]
pub struct Issued {
    pub access_token: Secret,
    /// The broker's answer without `access_token`; `expires_in` is rewritten when served.
    pub fields: Map<String, Value>,
    pub expires_at: Instant,
}

pub struct BrokerClient {
    http: reqwest::Client,
    settings: Settings,
}

impl BrokerClient {
    pub fn new(settings: &Settings) -> Result<Self, reqwest::Error> {
        let mut builder = reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .connect_timeout(CONNECT_TIMEOUT)
            // The bearer must go to the configured broker and nowhere else.
            .redirect(reqwest::redirect::Policy::none());
        if let (Some(address), Some(host)) =
            (settings.broker_address, settings.token_url.host_str())
        {
            builder = builder.resolve(host, address);
        }
        Ok(Self {
            http: builder.build()?,
            settings: settings.clone(),
        })
    }

    pub async fn mint(
        &self,
        bearer: &Secret,
        audience: &str,
        scope: &str,
    ) -> Result<Issued, Refusal> {
        let body = json!({
            "audience": audience,
            "scope": scope,
            "lane": self.settings.lane.as_str(),
            "configurationRevision": self.settings.configuration_revision,
        });
        let sent = Instant::now();
        let response = self
            .http
            .post(self.settings.token_url.clone())
            .bearer_auth(bearer.expose())
            .json(&body)
            .send()
            .await
            .map_err(|err| {
                tracing::warn!(
                    timeout = err.is_timeout(),
                    connect = err.is_connect(),
                    "broker unreachable"
                );
                Refusal::unavailable()
            })?;
        let status = response.status();
        let retry_after = response.headers().get(RETRY_AFTER).cloned();
        let answer = read_capped(response).await?;
        if status == StatusCode::OK {
            issued(&answer, sent).ok_or_else(Refusal::unusable_answer)
        } else {
            Err(refusal(status, &answer, retry_after))
        }
    }
}

async fn read_capped(mut response: reqwest::Response) -> Result<Vec<u8>, Refusal> {
    let mut answer = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|_| Refusal::unavailable())? {
        if answer.len() + chunk.len() > MAX_ANSWER_BYTES {
            return Err(Refusal::unusable_answer());
        }
        answer.extend_from_slice(&chunk);
    }
    Ok(answer)
}

/// A 200 answer with a non-empty `access_token` and a whole-seconds `expires_in`; the expiry counts from
/// when the request was sent, so the helper never believes a token lives longer than it does.
fn issued(answer: &[u8], sent: Instant) -> Option<Issued> {
    let Value::Object(mut fields) = serde_json::from_slice(answer).ok()? else {
        return None;
    };
    let Some(Value::String(token)) = fields.remove("access_token") else {
        return None;
    };
    let expires_in = fields.get("expires_in")?.as_u64()?;
    if token.is_empty() {
        return None;
    }
    Some(Issued {
        access_token: Secret::new(token),
        fields,
        expires_at: sent + Duration::from_secs(expires_in),
    })
}

/// The broker's refusal with its status, code and sentence; anything that is not a broker error
/// (a host's HTML page, a proxy's 502) is `unavailable`.
fn refusal(status: StatusCode, answer: &[u8], retry_after: Option<HeaderValue>) -> Refusal {
    let error: Option<Value> = serde_json::from_slice(answer).ok();
    let code = error
        .as_ref()
        .and_then(|e| e["error"].as_str())
        .and_then(broker_code);
    let mut refusal = match code {
        Some(code) if status.is_client_error() || status.is_server_error() => Refusal {
            status,
            code: Cow::Owned(code.to_owned()),
            message: error
                .as_ref()
                .and_then(|e| e["error_description"].as_str())
                .filter(|m| {
                    m.len() <= MAX_MESSAGE_LEN
                        && m.bytes().all(|b| b == b' ' || b.is_ascii_graphic())
                })
                .map_or(
                    Cow::Borrowed("The credential broker refused the request."),
                    |m| Cow::Owned(m.to_owned()),
                ),
            retry_after: None,
        },
        _ => Refusal::unusable_answer(),
    };
    refusal.retry_after = retry_after.filter(|value| value.len() <= 32);
    refusal
}

/// The broker's error code when it has the shape of one: lower-case ASCII words joined by `_`.
fn broker_code(code: &str) -> Option<&str> {
    let shaped = (1..=MAX_CODE_LEN).contains(&code.len())
        && code
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    shaped.then_some(code)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broker_error_keeps_status_code_message_and_retry_after() {
        let answer =
            br#"{"error":"rate_limited","error_description":"Too many requests; retry later."}"#;
        let refusal = refusal(
            StatusCode::TOO_MANY_REQUESTS,
            answer,
            Some(HeaderValue::from_static("7")),
        );
        assert_eq!(refusal.status, 429);
        assert_eq!(refusal.code, "rate_limited");
        assert_eq!(refusal.message, "Too many requests; retry later.");
        assert_eq!(refusal.retry_after.unwrap(), "7");
    }

    #[test]
    fn an_answer_that_is_not_a_broker_error_is_unavailable() {
        for (case, status, answer) in [
            (
                "html",
                StatusCode::NOT_FOUND,
                &b"<html>not found</html>"[..],
            ),
            (
                "odd code",
                StatusCode::FORBIDDEN,
                br#"{"error":"Bad Code!"}"#,
            ),
            ("redirect", StatusCode::FOUND, br#"{"error":"moved"}"#),
        ] {
            let refusal = refusal(status, answer, None);
            assert_eq!(
                (refusal.status, &*refusal.code),
                (StatusCode::BAD_GATEWAY, "unavailable"),
                "{case}"
            );
        }
    }

    #[test]
    fn a_token_answer_without_expiry_or_token_is_not_issued() {
        let sent = Instant::now();
        assert!(issued(br#"{"access_token":"t"}"#, sent).is_none());
        assert!(issued(br#"{"expires_in":10}"#, sent).is_none());
        assert!(issued(br#"{"access_token":"","expires_in":10}"#, sent).is_none());
        let token = issued(
            br#"{"access_token":"t","expires_in":10,"token_type":"Bearer"}"#,
            sent,
        )
        .unwrap();
        assert_eq!(token.expires_at, sent + Duration::from_secs(10));
        assert!(!token.fields.contains_key("access_token"));
    }
}
