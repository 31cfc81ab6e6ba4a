//! The `token-broker` binary: reads settings, builds the app, serves until a signal, exits with a code.
//! Configuration errors are one log line naming the setting and exit 1 (never 0: the Functions host
//! does not restart a handler that exited 0). With `policy ...` arguments it runs an offline command
//! instead; the host starts it with none.

use std::process::ExitCode;
use std::time::Duration;

use token_broker::cli;
use token_broker::logging::telemetry;
use token_broker::runtime::app::App;
use token_broker::settings::Settings;

/// How long, once serving has ended, work still running may delay the exit: a read blocked on a hung
/// file or network share runs on a blocking thread, and must not keep the process alive.
const EXIT_WAIT: Duration = Duration::from_secs(1);

fn main() -> ExitCode {
    if let Some(code) = cli::run_if_asked(std::env::args_os().skip(1)) {
        return code;
    }
    let _log_writer = telemetry::init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            tracing::error!(error = %err, "start-up failed: no async runtime");
            return ExitCode::FAILURE;
        }
    };
    let code = runtime.block_on(serve());
    runtime.shutdown_timeout(EXIT_WAIT);
    code
}

/// Reads the settings, builds the app and serves until SIGINT or SIGTERM.
async fn serve() -> ExitCode {
    let settings = match Settings::from_env() {
        Ok(settings) => settings,
        Err(err) => {
            tracing::error!(error = %err, "invalid configuration");
            return ExitCode::FAILURE;
        }
    };
    match App::build(settings).await {
        Ok(app) => {
            app.run_until(shutdown_signal()).await;
            ExitCode::SUCCESS
        }
        Err(err) => {
            tracing::error!(error = %err, "start-up failed");
            ExitCode::FAILURE
        }
    }
}

/// SIGINT or SIGTERM (local runs; in Azure the host kills the process outright).
async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut terminate =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(signal) => signal,
                Err(_) => {
                    let _ = interrupt.await;
                    return;
                }
            };
        tokio::select! {
            _ = interrupt => {}
            _ = terminate.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = interrupt.await;
}
