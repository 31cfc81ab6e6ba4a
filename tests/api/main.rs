//! Integration tests: the real `token-broker` binary behind an emulated Azure Functions host, against
//! `entra-emulator` over loopback. Each test starts its own emulator and broker.

mod helpers;

mod access_helper;
mod adversarial_claims;
mod adversarial_encodings;
mod adversarial_injection;
mod adversarial_requests;
mod adversarial_tokens;
mod allowlist;
mod audit;
mod broker_credentials;
mod caller_validation;
mod connections;
mod credential_healing;
mod delegation_store;
mod delegations;
mod delegations_shared;
mod deploy_template;
mod docs;
mod emulator_refresh_tokens;
mod function_config;
mod get_sp_token;
mod health;
mod jose_rules;
mod openapi;
mod package;
mod policy;
mod policy_cli;
mod policy_sources;
mod python_client;
mod rate_limits;
mod request_hygiene;
mod resilience;
mod resource_identity;
mod revocation;
mod settings;
mod shutdown;
mod startup;
mod token_cache;
mod token_obo;
mod upstream_faults;
mod whoami;
