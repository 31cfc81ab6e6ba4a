//! token-broker: an Azure Functions custom handler that hands short-lived, audience-bound Microsoft
//! Entra ID access tokens to callers that cannot or should not get them themselves.
//!
//! - `settings`: every setting, validated once at start-up.
//! - `app`: building the core, first loads, the listener, serving.
//! - `refresh`: background refresh of signing keys and Key Vault values.
//! - `http`: the route table, wire DTOs, request rules, errors mapped to HTTP in one place.
//! - `broker`: the core (validation, policy, exchanges, caches); knows nothing of warp.
//! - `azure`: Key Vault through the Function App's managed identity, and the user-assigned identity's
//!   token for the broker's federated credential.
//! - `certificate_loader`: reading the broker's client certificate from Key Vault or a file.
//! - `policy_loader`: reading the policy document from Key Vault (its version history) or a file, under
//!   a timeout.
//! - `telemetry`: JSON logs on stdout and the audit line; `log_writer`: batched stdout; `json_line`:
//!   the audit line's JSON writer.
//! - `secret`: the redacting type for secrets and tokens.
//! - `cli`: the offline policy commands (`token-broker policy check|explain`).
//! - `fuzzing` (feature `fuzzing`): entry points for the coverage-guided fuzz targets in `fuzz/`.

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
#![deny(clippy::await_holding_lock)]

pub mod app;
pub mod azure;
pub mod broker;
pub mod certificate_loader;
pub mod cli;
#[cfg(feature = "fuzzing")]
pub mod fuzzing;
pub mod http;
pub mod json_line;
pub mod log_writer;
pub mod policy_loader;
pub mod refresh;
pub mod secret;
pub mod settings;
pub mod telemetry;

#[cfg(test)]
mod fuzz;
