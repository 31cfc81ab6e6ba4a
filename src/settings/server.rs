//! The listener and its limits: the port the Functions host gives the handler, and how many connections
//! are served at once.

use super::SettingsError;
use super::vars::Vars;

pub const DEFAULT_PORT: u16 = 3000;

pub(super) fn port(vars: &Vars<impl Fn(&str) -> Option<String>>) -> Result<u16, SettingsError> {
    const NAME: &str = "FUNCTIONS_CUSTOMHANDLER_PORT";
    vars.parsed(NAME, DEFAULT_PORT, "expected a TCP port number")
}

/// 1,024 by default: the host's own pool to the handler stays far below that, and it leaves room in the
/// 4,096 descriptors a Linux process commonly may hold. At least 16, so the host is never starved.
pub(super) fn max_connections(
    vars: &Vars<impl Fn(&str) -> Option<String>>,
) -> Result<usize, SettingsError> {
    const NAME: &str = "BROKER_MAX_CONNECTIONS";
    const REASON: &str = "expected a whole number of connections, from 16 to 100000";
    let count: usize = vars.parsed(NAME, 1024, REASON)?;
    if !(16..=100_000).contains(&count) {
        return Err(SettingsError::invalid_value(
            NAME,
            &count.to_string(),
            REASON,
        ));
    }
    Ok(count)
}
