//! The delegation settings: where records are kept (`BROKER_DELEGATION_STORE`), the sealing key
//! (`BROKER_DELEGATION_KEY_NAME`), the revocation bound and the bearer lifetime.

use std::time::Duration;

use url::Url;

use super::{SettingsError, Vars, https_url};

pub const DEFAULT_DELEGATION_REVOCATION_SECONDS: u64 = 5;
pub const DEFAULT_DELEGATION_TOKEN_LIFETIME_SECONDS: u64 = 900;

/// Where delegation records are kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DelegationStoreSetting {
    /// `none` (the default): delegations are not enabled.
    None,
    /// `memory`: this process only (the demo, local runs).
    Memory,
    /// An Azure Blob container URL, reached with the Function App's managed identity.
    Blob { container: Url },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DelegationSettings {
    pub store: DelegationStoreSetting,
    /// The Key Vault secret holding the sealing key (every version is read). `None` with `memory`: a
    /// random key for this process.
    pub key_name: Option<String>,
    /// `BROKER_DELEGATION_REVOCATION_SECONDS`: the oldest a record may be when it is served.
    pub revocation: Duration,
    /// `BROKER_DELEGATION_TOKEN_LIFETIME_SECONDS`: how long a delegation bearer is accepted.
    pub token_lifetime: Duration,
}

pub(super) fn delegation(
    vars: &Vars<impl Fn(&str) -> Option<String>>,
    has_key_vault: bool,
) -> Result<DelegationSettings, SettingsError> {
    const STORE: &str = "BROKER_DELEGATION_STORE";
    const KEY: &str = "BROKER_DELEGATION_KEY_NAME";
    let store = match vars.get(STORE).as_deref() {
        None | Some("none") => DelegationStoreSetting::None,
        Some("memory") => DelegationStoreSetting::Memory,
        Some(text) => DelegationStoreSetting::Blob {
            container: container_url(STORE, text)?,
        },
    };
    let key_name = vars.secret_name(KEY)?;
    if key_name.is_some() && !has_key_vault {
        return Err(SettingsError::Missing {
            name: "BROKER_KEY_VAULT_URL",
        });
    }
    match (&store, &key_name) {
        (DelegationStoreSetting::Blob { .. }, None) => {
            return Err(SettingsError::Missing { name: KEY });
        }
        (DelegationStoreSetting::None, Some(_)) => {
            return Err(SettingsError::Invalid {
                name: KEY,
                reason: "set BROKER_DELEGATION_STORE too, or remove it",
            });
        }
        _ => {}
    }
    Ok(DelegationSettings {
        store,
        key_name,
        revocation: vars.seconds(
            "BROKER_DELEGATION_REVOCATION_SECONDS",
            DEFAULT_DELEGATION_REVOCATION_SECONDS,
            1,
        )?,
        token_lifetime: vars.seconds(
            "BROKER_DELEGATION_TOKEN_LIFETIME_SECONDS",
            DEFAULT_DELEGATION_TOKEN_LIFETIME_SECONDS,
            60,
        )?,
    })
}

/// A container URL: `https://<account>.blob.core.windows.net/<container>`, or the path-style form of
/// an emulator, `https://<host>:<port>/<account>/<container>`. The last path segment is the container
/// and must be a valid container name (3-63 lower-case letters, digits and single dashes).
fn container_url(name: &'static str, text: &str) -> Result<Url, SettingsError> {
    let invalid = SettingsError::Invalid {
        name,
        reason: "expected none, memory or an https:// Blob container URL",
    };
    let url = https_url(name, text).map_err(|_| invalid.clone())?;
    let segments: Vec<&str> = url
        .path()
        .trim_end_matches('/')
        .trim_start_matches('/')
        .split('/')
        .collect();
    let container_ok = segments
        .last()
        .is_some_and(|container| is_container_name(container));
    if !(1..=2).contains(&segments.len()) || !container_ok || segments.iter().any(|s| s.is_empty())
    {
        return Err(invalid);
    }
    let path = segments.join("/");
    let mut url = url;
    url.set_path(&path);
    Ok(url)
}

fn is_container_name(text: &str) -> bool {
    (3..=63).contains(&text.len())
        && text
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !text.starts_with('-')
        && !text.ends_with('-')
        && !text.contains("--")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(
        pairs: &[(&str, &str)],
        has_key_vault: bool,
    ) -> Result<DelegationSettings, SettingsError> {
        let pairs: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let vars = Vars(move |name: &str| {
            pairs
                .iter()
                .find(|(key, _)| key == name)
                .map(|(_, value)| value.clone())
        });
        delegation(&vars, has_key_vault)
    }

    #[test]
    fn delegations_are_off_by_default_with_the_documented_bounds() {
        let settings = parse(&[], false).unwrap();
        assert_eq!(settings.store, DelegationStoreSetting::None);
        assert_eq!(settings.revocation, Duration::from_secs(5));
        assert_eq!(settings.token_lifetime, Duration::from_secs(900));
    }

    #[test]
    fn memory_needs_no_key_and_a_blob_store_needs_one_in_key_vault() {
        assert_eq!(
            parse(&[("BROKER_DELEGATION_STORE", "memory")], false)
                .unwrap()
                .store,
            DelegationStoreSetting::Memory
        );
        let url = "https://acct.blob.core.windows.net/delegations";
        assert_eq!(
            parse(&[("BROKER_DELEGATION_STORE", url)], true),
            Err(SettingsError::Missing {
                name: "BROKER_DELEGATION_KEY_NAME"
            })
        );
        let with_key = [
            ("BROKER_DELEGATION_STORE", url),
            ("BROKER_DELEGATION_KEY_NAME", "delegation-key"),
        ];
        assert_eq!(
            parse(&with_key, false),
            Err(SettingsError::Missing {
                name: "BROKER_KEY_VAULT_URL"
            })
        );
        let settings = parse(&with_key, true).unwrap();
        assert_eq!(
            settings.store,
            DelegationStoreSetting::Blob {
                container: Url::parse(url).unwrap()
            }
        );
        assert_eq!(settings.key_name.as_deref(), Some("delegation-key"));
    }

    #[test]
    fn an_emulators_path_style_container_url_is_accepted() {
        let url = "https://127.0.0.1:10000/devstoreaccount1/delegations";
        let settings = parse(
            &[
                ("BROKER_DELEGATION_STORE", url),
                ("BROKER_DELEGATION_KEY_NAME", "k"),
            ],
            true,
        )
        .unwrap();
        assert!(
            matches!(settings.store, DelegationStoreSetting::Blob { container } if container.as_str() == url)
        );
    }

    #[test]
    fn malformed_delegation_settings_are_named_not_echoed() {
        for (name, value) in [
            (
                "BROKER_DELEGATION_STORE",
                "http://acct.blob.core.windows.net/c1x",
            ),
            (
                "BROKER_DELEGATION_STORE",
                "https://acct.blob.core.windows.net/",
            ),
            (
                "BROKER_DELEGATION_STORE",
                "https://acct.blob.core.windows.net/Upper",
            ),
            (
                "BROKER_DELEGATION_STORE",
                "https://acct.blob.core.windows.net/c1x?sv=secret-sas",
            ),
            (
                "BROKER_DELEGATION_STORE",
                "https://acct.blob.core.windows.net/a/b/c1x",
            ),
            ("BROKER_DELEGATION_STORE", "disk"),
            ("BROKER_DELEGATION_REVOCATION_SECONDS", "0"),
            ("BROKER_DELEGATION_TOKEN_LIFETIME_SECONDS", "59"),
            ("BROKER_DELEGATION_KEY_NAME", "bad name!"),
        ] {
            let mut pairs = vec![(name, value)];
            if name != "BROKER_DELEGATION_STORE" {
                pairs.push(("BROKER_DELEGATION_STORE", "memory"));
            }
            let err = parse(&pairs, true).unwrap_err();
            assert!(err.to_string().contains(name), "{name}={value}: {err}");
            assert!(!err.to_string().contains("secret-sas"));
        }
    }
}
