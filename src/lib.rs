//! token-broker: an Azure Functions custom handler that hands short-lived, audience-bound Microsoft
//! Entra ID access tokens to callers that cannot or should not get them themselves.
//!
//! Layers, each importing only those below it: `runtime` → `http` → `broker` → `azure`, with `settings`
//! beside `runtime`, and `clock` and `secret` at the bottom.
//!
//! - `settings`: every setting, validated once at start-up, one module per concern.
//! - `runtime`: the wiring: building the core, first loads and serving (`app`), the background refresh
//!   loops (`refresh`), the client-certificate loader (`certificate_loader`), the policy document's
//!   reads under a timeout (`policy_loader`).
//! - `http`: the route table, wire DTOs, request rules, errors mapped to HTTP in one place.
//! - `broker`: the core (validation, policy, exchanges, caches); knows nothing of warp or settings.
//! - `azure`: Key Vault through the Function App's managed identity, and the user-assigned identity's
//!   token for the broker's federated credential.
//! - `logging`: JSON logs on stdout and the audit line (`telemetry`), batched stdout (`log_writer`), the
//!   audit line's JSON writer (`json_line`).
//! - `clock`: the one wall clock the layers share.
//! - `secret`: the redacting type for secrets and tokens.
//! - `delegation`: delegations' bearers, sealed records and their shared store (memory or Azure Blob).
//! - `cli`: the offline policy commands (`token-broker policy check|explain`).
//! - `fuzz_entry_points` (feature `fuzzing`): entry points for the coverage-guided fuzz targets in `fuzz/`.
//! - `property_cases` (tests only): proptest properties over everything that parses hostile input.

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

pub mod azure;
pub mod broker;
pub mod cli;
pub mod clock;
pub mod delegation;
#[cfg(feature = "fuzzing")]
pub mod fuzz_entry_points;
pub mod http;
pub mod logging;
pub mod runtime;
pub mod secret;
pub mod settings;

#[cfg(test)]
mod property_cases;
