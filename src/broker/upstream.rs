//! Every outbound HTTP call the core makes (discovery, JWKS, the token endpoint): one shared client with
//! connect and total timeouts (set where it is built), bounded retries with jittered backoff on
//! timeouts, connection failures and 5xx, a response size cap, and no retry on 4xx or 429.

use std::time::Duration;

use bytes::Bytes;
use rand::Rng;
use reqwest::StatusCode;
use serde::de::DeserializeOwned;
use url::Url;

/// Retries after the first attempt.
const RETRIES: u32 = 2;
const BACKOFF_BASE: Duration = Duration::from_millis(100);
/// Largest response body read from any upstream; Entra's largest (a JWKS) is a few KB.
const MAX_BODY: usize = 256 * 1024;

#[derive(Debug, Clone, thiserror::Error)]
pub enum UpstreamCallError {
    #[error("timed out")]
    Timeout,
    #[error("connection failed")]
    Connect,
    #[error("answered HTTP {0}")]
    Status(u16),
    #[error("response body is unreadable, too large or not the expected JSON")]
    Body,
}

/// A response as the token endpoint's classifier needs it.
pub struct RawResponse {
    pub status: StatusCode,
    pub retry_after: Option<Duration>,
    pub body: Bytes,
}

#[derive(Clone)]
pub struct Upstream {
    http: reqwest::Client,
}

impl Upstream {
    pub fn new(http: reqwest::Client) -> Self {
        Self { http }
    }

    /// GET a JSON document; any non-2xx status is an error.
    pub async fn get_json<T: DeserializeOwned>(&self, url: Url) -> Result<T, UpstreamCallError> {
        let response = self.send(|| self.http.get(url.clone())).await?;
        if !response.status.is_success() {
            return Err(UpstreamCallError::Status(response.status.as_u16()));
        }
        serde_json::from_slice(&response.body).map_err(|_| UpstreamCallError::Body)
    }

    /// POST a form and return whatever answered (the caller classifies 4xx bodies).
    pub async fn post_form(
        &self,
        url: &Url,
        form: &[(&str, &str)],
        correlation_id: &str,
    ) -> Result<RawResponse, UpstreamCallError> {
        self.send(|| {
            self.http
                .post(url.clone())
                .header("client-request-id", correlation_id)
                .header("return-client-request-id", "true")
                .form(form)
        })
        .await
    }

    async fn send(
        &self,
        request: impl Fn() -> reqwest::RequestBuilder,
    ) -> Result<RawResponse, UpstreamCallError> {
        let mut attempt = 0;
        loop {
            let outcome = self.send_once(request()).await;
            let retryable = match &outcome {
                Ok(response) => response.status.is_server_error(),
                Err(err) => matches!(err, UpstreamCallError::Timeout | UpstreamCallError::Connect),
            };
            if !retryable || attempt == RETRIES {
                return match outcome {
                    Ok(response) if response.status.is_server_error() => {
                        Err(UpstreamCallError::Status(response.status.as_u16()))
                    }
                    other => other,
                };
            }
            tokio::time::sleep(backoff(attempt)).await;
            attempt += 1;
        }
    }

    async fn send_once(
        &self,
        request: reqwest::RequestBuilder,
    ) -> Result<RawResponse, UpstreamCallError> {
        let mut response = request.send().await.map_err(classify)?;
        let status = response.status();
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|value| value.to_str().ok())
            .and_then(|text| text.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(classify)? {
            if body.len() + chunk.len() > MAX_BODY {
                return Err(UpstreamCallError::Body);
            }
            body.extend_from_slice(&chunk);
        }
        Ok(RawResponse {
            status,
            retry_after,
            body: body.into(),
        })
    }
}

fn classify(err: reqwest::Error) -> UpstreamCallError {
    if err.is_timeout() {
        UpstreamCallError::Timeout
    } else if err.is_connect() || err.is_request() {
        UpstreamCallError::Connect
    } else {
        UpstreamCallError::Body
    }
}

/// Exponential backoff with full jitter: a random delay in [base·2ⁿ/2, base·2ⁿ].
fn backoff(attempt: u32) -> Duration {
    let ceiling = BACKOFF_BASE * 2u32.pow(attempt);
    let floor = ceiling / 2;
    let jitter = rand::rng().random_range(0..=ceiling.saturating_sub(floor).as_millis() as u64);
    floor + Duration::from_millis(jitter)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_stays_bounded() {
        for attempt in 0..RETRIES {
            let delay = backoff(attempt);
            let ceiling = BACKOFF_BASE * 2u32.pow(attempt);
            assert!(delay >= ceiling / 2 && delay <= ceiling, "{delay:?}");
        }
    }
}
