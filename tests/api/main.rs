//! Integration tests: the real `token-broker` binary behind an emulated Azure Functions host, against
//! `entra-emulator` over loopback. Each test starts its own emulator and broker.

mod helpers;

mod allowlist;
mod audit;
mod caller_validation;
mod function_config;
mod get_sp_token;
mod request_hygiene;
mod settings;
mod token_obo;
mod upstream_faults;
