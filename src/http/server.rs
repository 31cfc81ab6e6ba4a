//! Serves the routes over HTTP/1.1 on hyper directly, with the limits warp's own server lacks:
//!
//! - a request header not complete within the header-read timeout closes the connection (hyper's
//!   clock also runs while a keep-alive connection waits for its next request, so an idle connection
//!   is closed after the same time);
//! - at the connection limit, or when the process runs out of descriptors, the connection idle the
//!   longest is closed to make room for the new one, so held or trickling connections cannot lock out
//!   the Functions host.
//!
//! Connection-level failures are the client's doing: counters and debug lines, never warnings or errors.

use std::future::Future;
use std::io::ErrorKind;
use std::sync::Arc;
use std::time::Duration;

use hyper::server::conn::http1;
use hyper::service::Service;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::{TcpListener, TcpStream};

use crate::broker::Broker;
use crate::broker::metrics::Metrics;
use crate::http::connections::{Connection, Registry};

/// Pause after an accept that failed, so a persistent failure does not spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(10);
/// Longest wait at shutdown for responses in progress.
const DRAIN_WAIT: Duration = Duration::from_secs(5);

#[derive(Debug, Clone, Copy)]
pub struct ServerLimits {
    /// `BROKER_HEADER_READ_TIMEOUT_SECONDS`.
    pub header_read_timeout: Duration,
    /// `BROKER_MAX_CONNECTIONS`.
    pub max_connections: usize,
}

pub async fn serve(
    listener: TcpListener,
    broker: Arc<Broker>,
    limits: ServerLimits,
    shutdown: impl Future<Output = ()>,
) {
    let metrics = broker.metrics.clone();
    let service = TowerToHyperService::new(warp::service(crate::http::routes(broker)));
    let registry = Registry::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut shutdown => break,
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(err) => {
                accept_failed(&err, &registry, &metrics).await;
                continue;
            }
        };
        Metrics::add(&metrics.connections_accepted);
        make_room(&registry, limits.max_connections, &metrics).await;
        let connection = registry.open();
        let service = service.clone();
        let metrics = metrics.clone();
        tokio::spawn(async move {
            serve_connection(stream, connection, service, limits, &metrics).await;
        });
    }
    registry.close_all();
    let drained = async {
        while !registry.is_empty() {
            tokio::time::sleep(ACCEPT_BACKOFF).await;
        }
    };
    let _ = tokio::time::timeout(DRAIN_WAIT, drained).await;
}

/// At the limit, asks the stalest idle connection to close; if every one is busy, waits for one to end.
async fn make_room(registry: &Registry, max_connections: usize, metrics: &Metrics) {
    while registry.len() >= max_connections {
        if registry.evict_stalest_idle() {
            Metrics::add(&metrics.connections_evicted);
            return;
        }
        tokio::time::sleep(ACCEPT_BACKOFF).await;
    }
}

async fn accept_failed(err: &std::io::Error, registry: &Registry, metrics: &Metrics) {
    Metrics::add(&metrics.connection_errors);
    tracing::debug!(error = %err, "accept failed");
    // Out of descriptors (EMFILE, ENFILE): free one held by an idle connection, and let its task run
    // (closing the descriptor) before accepting again, rather than wait out the backoff.
    if err
        .raw_os_error()
        .is_some_and(|code| code == 23 || code == 24)
        && registry.evict_stalest_idle()
    {
        Metrics::add(&metrics.connections_evicted);
        tokio::task::yield_now().await;
        return;
    }
    if err.kind() != ErrorKind::ConnectionAborted {
        tokio::time::sleep(ACCEPT_BACKOFF).await;
    }
}

async fn serve_connection<S>(
    stream: TcpStream,
    connection: Arc<Connection>,
    service: S,
    limits: ServerLimits,
    metrics: &Metrics,
) where
    S: Service<hyper::Request<hyper::body::Incoming>, Response = warp::reply::Response>
        + Send
        + 'static,
    S::Future: Send + 'static,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let _ = stream.set_nodelay(true);
    let handler = {
        let connection = connection.clone();
        hyper::service::service_fn(move |request| {
            let busy = connection.busy();
            let answer = service.call(request);
            async move {
                let response = answer.await;
                drop(busy);
                response
            }
        })
    };
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout);
    let served = builder.serve_connection(TokioIo::new(stream), handler);
    let mut served = std::pin::pin!(served);
    let result = tokio::select! {
        result = served.as_mut() => result,
        () = connection.close.notified() => {
            served.as_mut().graceful_shutdown();
            served.await
        }
        // Idle: no response to finish. Dropping the connection closes the socket.
        () = connection.evict.notified() => return,
    };
    if let Err(err) = result {
        Metrics::add(if err.is_timeout() {
            &metrics.connections_timed_out
        } else {
            &metrics.connection_errors
        });
        tracing::debug!(error = %err, "connection closed with an error");
    }
}
