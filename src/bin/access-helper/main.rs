//! access-helper: the runtime-access helper that runs beside an agent and holds its bearer. It serves the
//! runtime-access protocol (HTTP/1.1 on a Unix socket, `POST /v1/credentials`) and mints each token at the
//! broker's `POST {broker_url}/token` with the bearer it reads from its credential file, so the agent's
//! process never holds the bearer. See docs/clients.md. It reuses the library's `Secret` type only; none of
//! the broker's runtime is linked in.

#![forbid(unsafe_code)]
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing,
        clippy::todo,
        clippy::unimplemented,
    )
)]

mod bearer;
mod broker_client;
mod cache;
mod protocol;
mod refusal;
mod server;
mod settings;
mod socket;

use std::process::ExitCode;

use crate::settings::{Command, Settings};

#[tokio::main]
async fn main() -> ExitCode {
    init_logging();
    let settings =
        match Settings::parse(std::env::args_os().skip(1), |name| std::env::var(name).ok()) {
            Ok(Command::Run(settings)) => settings,
            Ok(Command::Help) => {
                println!("{}", settings::USAGE);
                return ExitCode::SUCCESS;
            }
            Err(err) => {
                tracing::error!(error = %err, "invalid configuration");
                return ExitCode::FAILURE;
            }
        };
    let shutdown = shutdown_signal();
    match server::run(settings, shutdown).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!(error = %err, "start-up failed");
            ExitCode::FAILURE
        }
    }
}

/// JSON lines on stdout, like the broker's. `RUST_LOG` may lower or raise the level (default `info`).
fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .json()
        .with_current_span(false)
        .with_env_filter(filter)
        .with_writer(std::io::stdout)
        .init();
}

/// SIGTERM (the container runtime stopping it) or SIGINT. Both handlers are installed before this returns,
/// so a signal that arrives once the socket is listening always stops the helper cleanly.
fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    use tokio::signal::unix::{SignalKind, signal};
    let terminate = signal(SignalKind::terminate());
    let interrupt = signal(SignalKind::interrupt());
    async move {
        match (terminate, interrupt) {
            (Ok(mut terminate), Ok(mut interrupt)) => {
                tokio::select! {
                    _ = terminate.recv() => {}
                    _ = interrupt.recv() => {}
                }
            }
            (Ok(mut only), Err(_)) | (Err(_), Ok(mut only)) => {
                only.recv().await;
            }
            (Err(_), Err(_)) => std::future::pending().await,
        }
    }
}
