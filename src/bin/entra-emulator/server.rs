//! The two listeners: HTTPS (rustls, then hyper HTTP/1.1) for the authority and Key Vault, and plain HTTP
//! for the identity endpoint and the control API. Every request passes one warp filter that reads it in full
//! and hands it to `routes::dispatch`; an answer marked `DropConnection` closes the connection unanswered.

use crate::http::{self, DropConnection, Listener, Request, Response};
use crate::state::State;
use crate::{log, routes};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::{Service, service_fn};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use std::convert::Infallible;
use std::io;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use warp::Filter;
use warp::filters::path::FullPath;
use warp::http::StatusCode;
use warp::http::header::CONTENT_LENGTH;

const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Larger declared bodies are refused with 413 before they are read.
const MAX_BODY_BYTES: u64 = 1024 * 1024;

/// Reads the whole request and dispatches it.
fn filter(
    listener: Listener,
    state: Arc<State>,
) -> impl Filter<Extract = (Response,), Error = warp::Rejection> + Clone {
    warp::method()
        .and(warp::path::full())
        .and(warp::query::raw().or(warp::any().map(String::new)).unify())
        .and(warp::header::headers_cloned())
        .and(warp::body::bytes())
        .then(move |method, path: FullPath, query, headers, body| {
            let state = Arc::clone(&state);
            async move {
                let request = Request {
                    listener,
                    method,
                    path: path.as_str().to_owned(),
                    query,
                    headers,
                    body,
                };
                routes::dispatch(&state, request).await
            }
        })
}

/// Accepts connections until the task is dropped.
pub async fn serve(
    listener: TcpListener,
    kind: Listener,
    tls: Option<TlsAcceptor>,
    state: Arc<State>,
) {
    let service = TowerToHyperService::new(warp::service(filter(kind, state)));
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(error) => {
                log::error(&format!(
                    "accept on the {} listener failed: {error}",
                    kind.name()
                ));
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        // Small answers must not wait for the client's delayed ACK (Nagle).
        let _ = stream.set_nodelay(true);
        let service = service.clone();
        let tls = tls.clone();
        tokio::spawn(async move {
            match tls {
                None => connection(stream, service).await,
                Some(acceptor) => {
                    if let Ok(Ok(stream)) =
                        tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await
                    {
                        connection(stream, service).await;
                    }
                }
            }
        });
    }
}

fn declared_length(request: &hyper::Request<Incoming>) -> u64 {
    request
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse().ok())
        .unwrap_or(0)
}

/// Serves HTTP/1.1 on one connection; a `DropConnection` answer becomes a service error, which makes hyper
/// close the connection without writing a response.
async fn connection<I, S>(io: I, service: S)
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    S: Service<hyper::Request<Incoming>, Response = Response, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send,
{
    let service = service_fn(move |request: hyper::Request<Incoming>| {
        let service = service.clone();
        async move {
            if declared_length(&request) > MAX_BODY_BYTES {
                return Ok(http::empty(StatusCode::PAYLOAD_TOO_LARGE));
            }
            let response = match service.call(request).await {
                Ok(response) => response,
                Err(never) => match never {},
            };
            if response.extensions().get::<DropConnection>().is_some() {
                return Err(io::Error::new(
                    io::ErrorKind::ConnectionAborted,
                    "injected fault: down",
                ));
            }
            Ok(response)
        }
    });
    let _ = http1::Builder::new()
        .timer(TokioTimer::new())
        .serve_connection(TokioIo::new(io), service)
        .await;
}
