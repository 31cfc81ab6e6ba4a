//! Shared test helpers: the emulator, the emulated Functions host in front of the broker, ids,
//! assertions, hostile tokens and loopback stubs.

pub mod access_helper;
pub mod arm;
pub mod assertions;
pub mod azurite;
pub mod broker;
pub mod credentials;
pub mod emulator;
pub mod function_app;
pub mod host;
pub mod ids;
pub mod logs;
pub mod openapi;
pub mod policy;
pub mod schemas;
pub mod stubs;
pub mod test_tools;
pub mod tokens;
