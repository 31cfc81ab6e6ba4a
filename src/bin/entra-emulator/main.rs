//! entra-emulator: a strict local stand-in for Microsoft Entra ID (OIDC discovery, JWKS, the v2 token
//! endpoint with client credentials, on-behalf-of and refresh tokens), the App Service managed-identity
//! endpoint and Azure Key Vault secrets, with a control API for tests (spec.md §2). Test and local-run infrastructure only:
//! it shares no code with the broker library.

mod aadsts;
mod aadsts_assertion;
mod app_credentials;
mod cli;
mod client_assertion;
mod clock;
mod control;
mod control_credentials;
mod control_input;
mod directory;
mod discovery;
mod entra_error;
mod faults;
mod http;
mod identities;
mod ids;
mod issue;
mod jwt;
mod key_vault;
mod key_vault_list;
mod keys;
mod log;
mod managed_identity;
mod mint;
mod obo;
mod refresh_grant;
mod refresh_tokens;
mod routes;
mod server;
mod startup;
mod state;
mod stats;
mod tls;
mod token_endpoint;
mod token_route;
mod user_token;
mod vault;

use crate::http::Listener;
use crate::keys::{KeyRing, SigningKey};
use crate::state::{Config, State};
use anyhow::Context;
use std::net::Ipv4Addr;
use std::process::ExitCode;
use std::sync::Arc;
use tokio::net::TcpListener;

#[tokio::main]
async fn main() -> ExitCode {
    let options = match cli::Options::parse(std::env::args().skip(1)) {
        Ok(cli::Command::Run(options)) => options,
        Ok(cli::Command::Help) => {
            log::write_now(cli::USAGE);
            return ExitCode::SUCCESS;
        }
        Err(problem) => {
            eprintln!("entra-emulator: {problem}\n{}", cli::USAGE);
            return ExitCode::from(2);
        }
    };
    match run(options).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            log::error(&format!("start-up failed: {error:#}"));
            ExitCode::FAILURE
        }
    }
}

async fn run(options: cli::Options) -> anyhow::Result<()> {
    let https = TcpListener::bind((Ipv4Addr::LOCALHOST, options.https_port))
        .await
        .context("bind the HTTPS listener")?;
    let http = TcpListener::bind((Ipv4Addr::LOCALHOST, options.http_port))
        .await
        .context("bind the HTTP listener")?;
    let (state_dir, temporary) = startup::state_dir(options.state_dir)?;
    // The RSA key takes longest to make; build the TLS material meanwhile.
    let signing_key = tokio::task::spawn_blocking(SigningKey::generate);
    let tls = tls::generate()?;
    let ca_file = state_dir.join("ca.pem");
    std::fs::write(&ca_file, &tls.ca_pem)
        .with_context(|| format!("write {}", ca_file.display()))?;

    let authority = format!("https://127.0.0.1:{}", https.local_addr()?.port());
    let plain = format!("http://127.0.0.1:{}", http.local_addr()?.port());
    let config = Config {
        vault_url: format!("{authority}/"),
        authority,
        identity_endpoint: format!("{plain}/msi/token"),
        identity_header: ids::guid(),
        control_url: format!("{plain}/_emulator"),
        ca_file: ca_file.display().to_string(),
        broker_client_secret: options
            .broker_client_secret
            .unwrap_or_else(ids::client_secret),
    };
    if let Some(path) = &options.env_file {
        startup::write_env_file(path, &config)?;
    }
    let state = Arc::new(State::new(config, KeyRing::new(signing_key.await??)));

    let shutdown = shutdown_signal()?;
    log::write_now(&startup::ready_line(&state.config));
    log::start_writer();
    tokio::select! {
        () = server::serve(https, Listener::Https, Some(tls.acceptor), Arc::clone(&state)) => {}
        () = server::serve(http, Listener::Http, None, Arc::clone(&state)) => {}
        () = shutdown => {}
    }
    log::event(&serde_json::json!({"event": "shutdown"}));
    if temporary {
        let _ = std::fs::remove_dir_all(&state_dir);
    }
    Ok(())
}

/// Resolves on SIGINT or SIGTERM. The handlers are registered by this call, before the ready line, so a
/// signal sent as soon as the line is read still shuts down cleanly.
#[cfg(unix)]
fn shutdown_signal() -> anyhow::Result<impl Future<Output = ()>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut interrupt = signal(SignalKind::interrupt()).context("install the SIGINT handler")?;
    let mut terminate = signal(SignalKind::terminate()).context("install the SIGTERM handler")?;
    Ok(async move {
        tokio::select! {
            _ = interrupt.recv() => {}
            _ = terminate.recv() => {}
        }
    })
}

#[cfg(not(unix))]
fn shutdown_signal() -> anyhow::Result<impl Future<Output = ()>> {
    Ok(async {
        let _ = tokio::signal::ctrl_c().await;
    })
}
