//! The ceiling for comparison: a minimal warp 0.4 handler that answers `POST /api/GetSPToken` with a
//! fixed JSON body. It runs as a separate process (this bench binary re-executed with `MODE_VAR` set),
//! on a default multi-thread runtime, just as the broker runs.

use std::net::{Ipv4Addr, SocketAddr};

use anyhow::Context;
use bytes::Bytes;
use tokio::process::Command;
use warp::Filter;

use crate::process::Process;

/// Set in the environment of the re-executed bench binary: serve the bare handler only.
pub const MODE_VAR: &str = "TOKEN_BROKER_BENCH_BARE_HANDLER";

/// About the size of a real GetSPToken 200 body (a 1.3 KB JWT plus the caller), so both servers
/// write the same number of bytes per response.
fn fixed_body() -> Bytes {
    let token = "x".repeat(1_300);
    Bytes::from(
        serde_json::json!({
            "access_token": token,
            "token_type": "Bearer",
            "expires_in": 3_599,
            "scope": "https://database.windows.net/.default",
            "caller": {
                "type": "MSI",
                "display": "2b3c4d5e-6f7a-4b8c-9d0e-1f2a3b4c5d6e",
                "oid": "1a2b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d",
            },
        })
        .to_string(),
    )
}

/// The entry point of the re-executed binary: binds an ephemeral loopback port, prints
/// `{"event":"ready","addr":"..."}`, and serves until killed.
pub fn serve() -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let body = fixed_body();
        let route = warp::path!("api" / "GetSPToken")
            .and(warp::post())
            .and(warp::body::bytes())
            .map(move |_request: Bytes| {
                warp::http::Response::builder()
                    .header("content-type", "application/json")
                    .header("cache-control", "no-store")
                    .body(body.clone())
                    .unwrap_or_default()
            });
        let listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?;
        let addr = listener.local_addr()?;
        println!(r#"{{"event":"ready","addr":"{addr}"}}"#);
        warp::serve(route).incoming(listener).run().await;
        Ok(())
    })
}

/// The bare handler's process, killed when dropped.
pub struct BareHandler {
    addr: SocketAddr,
    process: Process,
}

impl BareHandler {
    pub async fn start() -> anyhow::Result<Self> {
        let exe = std::env::current_exe().context("locate the bench binary")?;
        let mut command = Command::new(exe);
        command.env_clear().env(MODE_VAR, "1");
        let mut process = Process::spawn("bare-handler", command, |line| {
            line.contains(r#""event":"ready""#)
        })?;
        let line = process.ready().await?;
        let ready: serde_json::Value = serde_json::from_str(&line)?;
        let addr = ready["addr"]
            .as_str()
            .context("bare handler: no addr")?
            .parse()
            .context("bare handler: addr")?;
        Ok(Self { addr, process })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The child process, for its CPU time and peak memory.
    pub fn process(&self) -> &Process {
        &self.process
    }
}
