//! Start-up side effects: the state directory with `ca.pem`, the optional env file, and the ready line.
//! The env file holds the broker's client secret, so it is created owner-only.

use crate::identities::{BROKER_CLIENT_ID, TENANT_ID};
use crate::state::Config;
use anyhow::Context;
use std::io::Write;
use std::path::{Path, PathBuf};

/// The state directory: the one asked for (created if needed), or a new temporary one (`true`: ours to remove).
pub fn state_dir(asked: Option<PathBuf>) -> anyhow::Result<(PathBuf, bool)> {
    match asked {
        Some(dir) => {
            std::fs::create_dir_all(&dir).with_context(|| format!("create {}", dir.display()))?;
            Ok((dir, false))
        }
        None => {
            let dir = std::env::temp_dir()
                .join(format!("entra-emulator-{}", crate::ids::secret_version()));
            std::fs::create_dir_all(&dir).with_context(|| format!("create {}", dir.display()))?;
            Ok((dir, true))
        }
    }
}

/// The broker settings the ready line carries, as environment variables.
fn broker_settings(config: &Config) -> Vec<(&'static str, &str)> {
    vec![
        ("BROKER_TENANT_ID", TENANT_ID),
        ("BROKER_CLIENT_ID", BROKER_CLIENT_ID),
        ("BROKER_CLIENT_SECRET", &config.broker_client_secret),
        ("BROKER_AUTHORITY_HOST", &config.authority),
        ("BROKER_KEY_VAULT_URL", &config.vault_url),
        ("IDENTITY_ENDPOINT", &config.identity_endpoint),
        ("IDENTITY_HEADER", &config.identity_header),
        ("SSL_CERT_FILE", &config.ca_file),
    ]
}

/// Single-quotes a value unless it is plainly safe for `sh`.
fn shell_value(value: &str) -> String {
    let safe = |c: char| c.is_ascii_alphanumeric() || "-_./:@%+,=".contains(c);
    if !value.is_empty() && value.chars().all(safe) {
        value.to_owned()
    } else {
        format!("'{}'", value.replace('\'', r"'\''"))
    }
}

/// Writes `KEY=VALUE` lines that `set -a; . file` can load.
pub fn write_env_file(path: &Path, config: &Config) -> anyhow::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options
        .open(path)
        .with_context(|| format!("create {}", path.display()))?;
    for (name, value) in broker_settings(config) {
        writeln!(file, "{name}={}", shell_value(value))?;
    }
    Ok(())
}

/// The one `"event":"ready"` line of spec.md §2, fields in the documented order.
pub fn ready_line(config: &Config) -> String {
    let fields = [
        ("authority", config.authority.as_str()),
        ("key_vault_url", &config.vault_url),
        ("identity_endpoint", &config.identity_endpoint),
        ("identity_header", &config.identity_header),
        ("control_url", &config.control_url),
        ("ca_file", &config.ca_file),
        ("tenant_id", TENANT_ID),
        ("broker_client_id", BROKER_CLIENT_ID),
        ("broker_client_secret", &config.broker_client_secret),
    ];
    let body: Vec<String> = fields
        .iter()
        .map(|(name, value)| format!("\"{name}\":{}", serde_json::Value::from(*value)))
        .collect();
    format!("{{\"event\":\"ready\",{}}}", body.join(","))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unsafe_values_are_single_quoted() {
        assert_eq!(shell_value("https://127.0.0.1:1/"), "https://127.0.0.1:1/");
        assert_eq!(shell_value("ab8Q~x"), "'ab8Q~x'");
        assert_eq!(shell_value("it's"), r"'it'\''s'");
    }
}
