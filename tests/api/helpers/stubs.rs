//! Loopback stand-ins the emulator does not provide: an attacker's key server that only counts the
//! connections it receives, and an App Service identity endpoint that hands out one chosen token.

use std::convert::Infallible;
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// One HTTP/1.1 server on 127.0.0.1 answering every request with `body` (JSON), counting connections.
pub struct Stub {
    pub base_url: String,
    connections: Arc<AtomicUsize>,
    accept_loop: JoinHandle<()>,
}

impl Stub {
    /// A server that a token's `jku` or `x5u` may point at: it serves an empty key set.
    pub async fn attacker() -> Self {
        Self::answering(serde_json::json!({"keys": []})).await
    }

    /// An identity endpoint whose every answer is `token` for `resource`, as App Service words it.
    pub async fn identity_endpoint(token: &str, resource: &str, expires_on: i64) -> Self {
        Self::answering(serde_json::json!({
            "access_token": token,
            "expires_on": expires_on.to_string(),
            "resource": resource,
            "token_type": "Bearer",
            "client_id": "e5f6a7b8-c9d0-4e1f-8a2b-3c4d5e6f7081",
        }))
        .await
    }

    pub async fn answering(body: Value) -> Self {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .await
            .expect("bind a stub listener");
        let addr = listener.local_addr().expect("stub address");
        let connections = Arc::new(AtomicUsize::new(0));
        let counted = connections.clone();
        let body = Bytes::from(body.to_string());
        let accept_loop = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                counted.fetch_add(1, Ordering::SeqCst);
                let body = body.clone();
                let service = hyper::service::service_fn(move |_: Request<Incoming>| {
                    let response = Response::builder()
                        .header("content-type", "application/json")
                        .body(Full::new(body.clone()))
                        .expect("a stub response");
                    async move { Ok::<_, Infallible>(response) }
                });
                tokio::spawn(
                    hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service),
                );
            }
        });
        Self {
            base_url: format!("http://{addr}"),
            connections,
            accept_loop,
        }
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }
}

impl Drop for Stub {
    fn drop(&mut self) {
        self.accept_loop.abort();
    }
}
