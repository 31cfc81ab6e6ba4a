//! The delegation settings: where records are kept (`BROKER_DELEGATION_STORE`), the sealing key
//! (`BROKER_DELEGATION_KEY_NAME`), the revocation bound and the bearer lifetime.

use url::Url;

use super::SettingsError;
use super::vars::{Vars, https_url};
use crate::delegation::Bounds;
use crate::delegation::setup::{DelegationConfig, StoreLocation};

pub const DEFAULT_DELEGATION_REVOCATION_SECONDS: u64 = 5;
pub const DEFAULT_DELEGATION_TOKEN_LIFETIME_SECONDS: u64 = 900;

/// The delegation settings; `None` when delegations are off.
pub(super) fn delegation(
    vars: &Vars<impl Fn(&str) -> Option<String>>,
    has_key_vault: bool,
) -> Result<Option<DelegationConfig>, SettingsError> {
    const STORE: &str = "BROKER_DELEGATION_STORE";
    const KEY: &str = "BROKER_DELEGATION_KEY_NAME";
    let store = match vars.get(STORE).as_deref() {
        None | Some("none") => None,
        Some("memory") => Some(StoreLocation::Memory),
        Some(text) => Some(StoreLocation::Blob {
            container: container_url(STORE, text)?,
        }),
    };
    let key_name = vars.secret_name(KEY)?;
    if key_name.is_some() && !has_key_vault {
        return Err(SettingsError::Missing {
            name: "BROKER_KEY_VAULT_URL",
        });
    }
    let bounds = Bounds {
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
    };
    match (store, key_name) {
        (None, None) => Ok(None),
        (None, Some(_)) => Err(SettingsError::Invalid {
            name: KEY,
            reason: "set BROKER_DELEGATION_STORE too, or remove it",
        }),
        (Some(StoreLocation::Blob { .. }), None) => Err(SettingsError::Missing { name: KEY }),
        (Some(store), key_name) => Ok(Some(DelegationConfig {
            store,
            key_name,
            bounds,
        })),
    }
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
    use std::time::Duration;

    use super::*;

    fn parse(
        pairs: &[(&str, &str)],
        has_key_vault: bool,
    ) -> Result<Option<DelegationConfig>, SettingsError> {
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
    fn delegations_are_off_by_default_and_have_the_documented_bounds() {
        assert_eq!(parse(&[], false).unwrap(), None);
        let memory = parse(&[("BROKER_DELEGATION_STORE", "memory")], false)
            .unwrap()
            .unwrap();
        assert_eq!(memory.store, StoreLocation::Memory);
        assert_eq!(memory.key_name, None);
        assert_eq!(memory.bounds.revocation, Duration::from_secs(5));
        assert_eq!(memory.bounds.token_lifetime, Duration::from_secs(900));
    }

    #[test]
    fn memory_needs_no_key_and_a_blob_store_needs_one_in_key_vault() {
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
        let settings = parse(&with_key, true).unwrap().unwrap();
        assert_eq!(
            settings.store,
            StoreLocation::Blob {
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
        .unwrap()
        .unwrap();
        assert!(
            matches!(settings.store, StoreLocation::Blob { container } if container.as_str() == url)
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
