//! Serving: the socket, HTTP/1.1 connections with a header-read timeout and a cap on how many are open, and
//! a clean stop on the shutdown signal (stop accepting, remove the socket, let answers in progress finish).
//! A bad request or a broken connection ends that connection only.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::UnixStream;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tokio::task::JoinSet;

use crate::broker_client::BrokerClient;
use crate::cache::TokenCache;
use crate::protocol::{self, State};
use crate::settings::Settings;
use crate::socket::{self, SocketError};

/// A client that has not sent its request headers by then is disconnected.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(5);
/// Connections open at once; past it, new ones are closed at once.
const MAX_CONNECTIONS: usize = 256;
/// How long answers in progress may take to finish after the shutdown signal.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error(transparent)]
    Socket(#[from] SocketError),
    #[error("HTTP client: {0}")]
    Client(#[from] reqwest::Error),
}

pub async fn run(
    settings: Settings,
    shutdown: impl Future<Output = ()>,
) -> Result<(), StartupError> {
    let broker = Arc::new(BrokerClient::new(&settings)?);
    let socket = socket::bind(&settings.socket, settings.socket_mode)?;
    tracing::info!(
        event = "listening",
        socket = %socket.path().display(),
        mode = format!("{:o}", settings.socket_mode),
        token_url = %settings.token_url,
        lane = settings.lane.as_str(),
        configuration_revision = settings.configuration_revision,
        "access-helper listening"
    );
    let state = Arc::new(State {
        settings,
        broker,
        cache: TokenCache::default(),
    });
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let (stopping, stop) = watch::channel(false);
    let mut connections = JoinSet::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            accepted = socket.listener.accept() => match accepted {
                Ok((stream, _)) => match slots.clone().try_acquire_owned() {
                    Ok(slot) => {
                        connections.spawn(serve(stream, state.clone(), slot, stop.clone()));
                    }
                    Err(_) => tracing::warn!(event = "connection_refused", "too many open connections"),
                },
                Err(err) => {
                    tracing::warn!(error = %err, "accept failed");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    // Removing the socket first tells new clients the helper is gone (the client checks the path).
    drop(socket);
    let _ = stopping.send(true);
    let drained = tokio::time::timeout(SHUTDOWN_GRACE, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    tracing::info!(
        event = "stopped",
        drained = drained.is_ok(),
        "access-helper stopped"
    );
    Ok(())
}

async fn serve(
    stream: UnixStream,
    state: Arc<State>,
    _slot: OwnedSemaphorePermit,
    mut stop: watch::Receiver<bool>,
) {
    let service = hyper::service::service_fn(move |request| {
        let state = state.clone();
        async move { Ok::<_, std::convert::Infallible>(protocol::handle(request, state).await) }
    });
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT);
    let served = builder.serve_connection(TokioIo::new(stream), service);
    let mut served = std::pin::pin!(served);
    let result = tokio::select! {
        result = served.as_mut() => result,
        () = stopped(&mut stop) => {
            served.as_mut().graceful_shutdown();
            served.await
        }
    };
    if let Err(err) = result {
        tracing::debug!(
            timeout = err.is_timeout(),
            "connection closed with an error"
        );
    }
}

/// Resolves once the server is stopping (or the sender is gone, which means the same).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|stopping| *stopping).await;
}
