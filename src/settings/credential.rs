//! The broker-credential settings: `BROKER_CREDENTIAL` and the settings each kind reads. A setting that
//! belongs to another kind stops start-up with one line naming it, never its value.

use std::path::PathBuf;

use url::Url;

use super::{SettingsError, Vars};
use crate::broker::credential::CredentialKind;
use crate::broker::ids::ClientId;
use crate::secret::Secret;

/// The token-exchange audience of Microsoft's public cloud, and of its US Government and China clouds.
pub const FEDERATED_AUDIENCE: &str = "api://AzureADTokenExchange";
pub const FEDERATED_AUDIENCE_US_GOV: &str = "api://AzureADTokenExchangeUSGov";
pub const FEDERATED_AUDIENCE_CHINA: &str = "api://AzureADTokenExchangeChina";

const SECRET_SETTINGS: &[&str] = &["BROKER_CLIENT_SECRET", "BROKER_CLIENT_SECRET_NAME"];
const CERTIFICATE_SETTINGS: &[&str] = &["BROKER_CERTIFICATE_NAME", "BROKER_CERTIFICATE_PATH"];
const FEDERATED_SETTINGS: &[&str] = &["BROKER_FEDERATED_AUDIENCE"];

/// Where the broker's client secret comes from.
#[derive(Debug, Clone)]
pub enum ClientSecretSource {
    /// `BROKER_CLIENT_SECRET` (an App Service Key Vault reference resolves to this too).
    Value(Secret),
    /// `BROKER_CLIENT_SECRET_NAME`: read from Key Vault with the managed identity, re-read on the
    /// allowlist schedule so a rotated secret is picked up without a restart.
    KeyVault { name: String },
}

/// Where the broker's client certificate comes from; either is re-read on the allowlist schedule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CertificateSource {
    /// `BROKER_CERTIFICATE_NAME`: the Key Vault secret that backs a Key Vault certificate (PKCS#12 or
    /// PEM, by its content type).
    KeyVault { name: String },
    /// `BROKER_CERTIFICATE_PATH`: a PEM or PKCS#12 file (App Service: `/var/ssl/private/<thumbprint>.p12`).
    File(PathBuf),
}

/// How the broker authenticates at Entra's token endpoint, for both grants.
#[derive(Debug, Clone)]
pub enum CredentialSettings {
    Secret(ClientSecretSource),
    Certificate(CertificateSource),
    /// The user-assigned identity `BROKER_MANAGED_IDENTITY_CLIENT_ID` presents its token for `audience`
    /// as a federated identity credential.
    ManagedIdentity {
        client_id: ClientId,
        audience: String,
    },
}

impl CredentialSettings {
    pub fn kind(&self) -> CredentialKind {
        match self {
            Self::Secret(_) => CredentialKind::Secret,
            Self::Certificate(_) => CredentialKind::Certificate,
            Self::ManagedIdentity { .. } => CredentialKind::ManagedIdentity,
        }
    }
}

/// `BROKER_MANAGED_IDENTITY_CLIENT_ID`: the user-assigned identity of the federated credential (with
/// `managed-identity`), and of Key Vault reads unless `BROKER_RESOURCE_IDENTITY_CLIENT_ID` names another.
pub(super) fn managed_identity_client_id(
    vars: &Vars<impl Fn(&str) -> Option<String>>,
) -> Result<Option<ClientId>, SettingsError> {
    const NAME: &str = "BROKER_MANAGED_IDENTITY_CLIENT_ID";
    vars.get(NAME)
        .map(|text| {
            text.parse().map_err(|_| {
                SettingsError::invalid_value(
                    NAME,
                    &text,
                    "expected the user-assigned identity's client id (a GUID)",
                )
            })
        })
        .transpose()
}

pub(super) fn credential(
    vars: &Vars<impl Fn(&str) -> Option<String>>,
    has_key_vault: bool,
    authority_host: &Url,
    identity: Option<&ClientId>,
) -> Result<CredentialSettings, SettingsError> {
    let kind = match vars.get("BROKER_CREDENTIAL").as_deref() {
        None | Some("secret") => CredentialKind::Secret,
        Some("certificate") => CredentialKind::Certificate,
        Some("managed-identity") => CredentialKind::ManagedIdentity,
        Some(other) => {
            return Err(SettingsError::invalid_value(
                "BROKER_CREDENTIAL",
                other,
                "expected secret, certificate or managed-identity",
            ));
        }
    };
    let foreign: Vec<&'static str> = [SECRET_SETTINGS, CERTIFICATE_SETTINGS, FEDERATED_SETTINGS]
        .into_iter()
        .filter(|group| *group != own_settings(kind))
        .flatten()
        .copied()
        .filter(|name| vars.get(name).is_some())
        .collect();
    if !foreign.is_empty() {
        return Err(SettingsError::Contradicts {
            names: foreign,
            kind: kind.as_str(),
        });
    }
    match kind {
        CredentialKind::Secret => {
            client_secret(vars, has_key_vault).map(CredentialSettings::Secret)
        }
        CredentialKind::Certificate => {
            certificate(vars, has_key_vault).map(CredentialSettings::Certificate)
        }
        CredentialKind::ManagedIdentity => Ok(CredentialSettings::ManagedIdentity {
            client_id: identity.cloned().ok_or(SettingsError::Missing {
                name: "BROKER_MANAGED_IDENTITY_CLIENT_ID",
            })?,
            audience: federated_audience(vars, authority_host)?,
        }),
    }
}

fn own_settings(kind: CredentialKind) -> &'static [&'static str] {
    match kind {
        CredentialKind::Secret => SECRET_SETTINGS,
        CredentialKind::Certificate => CERTIFICATE_SETTINGS,
        CredentialKind::ManagedIdentity => FEDERATED_SETTINGS,
    }
}

fn client_secret(
    vars: &Vars<impl Fn(&str) -> Option<String>>,
    has_key_vault: bool,
) -> Result<ClientSecretSource, SettingsError> {
    match (
        vars.get("BROKER_CLIENT_SECRET"),
        vars.secret_name("BROKER_CLIENT_SECRET_NAME")?,
    ) {
        (Some(_), Some(_)) => Err(SettingsError::Invalid {
            name: "BROKER_CLIENT_SECRET_NAME",
            reason: "set either BROKER_CLIENT_SECRET or BROKER_CLIENT_SECRET_NAME, not both",
        }),
        (Some(value), None) => Ok(ClientSecretSource::Value(Secret::new(value))),
        (None, Some(_)) if !has_key_vault => Err(SettingsError::Missing {
            name: "BROKER_KEY_VAULT_URL",
        }),
        (None, Some(name)) => Ok(ClientSecretSource::KeyVault { name }),
        (None, None) => Err(SettingsError::Missing {
            name: "BROKER_CLIENT_SECRET",
        }),
    }
}

fn certificate(
    vars: &Vars<impl Fn(&str) -> Option<String>>,
    has_key_vault: bool,
) -> Result<CertificateSource, SettingsError> {
    match (
        vars.secret_name("BROKER_CERTIFICATE_NAME")?,
        vars.get("BROKER_CERTIFICATE_PATH"),
    ) {
        (Some(_), Some(_)) => Err(SettingsError::Invalid {
            name: "BROKER_CERTIFICATE_PATH",
            reason: "set either BROKER_CERTIFICATE_NAME or BROKER_CERTIFICATE_PATH, not both",
        }),
        (Some(_), None) if !has_key_vault => Err(SettingsError::Missing {
            name: "BROKER_KEY_VAULT_URL",
        }),
        (Some(name), None) => Ok(CertificateSource::KeyVault { name }),
        (None, Some(path)) => Ok(CertificateSource::File(PathBuf::from(path))),
        (None, None) => Err(SettingsError::Missing {
            name: "BROKER_CERTIFICATE_NAME",
        }),
    }
}

/// `BROKER_FEDERATED_AUDIENCE`, or the token-exchange audience of the authority host's cloud.
fn federated_audience(
    vars: &Vars<impl Fn(&str) -> Option<String>>,
    authority_host: &Url,
) -> Result<String, SettingsError> {
    const NAME: &str = "BROKER_FEDERATED_AUDIENCE";
    if let Some(audience) = vars.get(NAME) {
        let valid = Url::parse(&audience).is_ok_and(|url| {
            matches!(url.scheme(), "api" | "https")
                && url.query().is_none()
                && url.fragment().is_none()
        }) && !audience.ends_with("/.default");
        return if valid {
            Ok(audience)
        } else {
            Err(SettingsError::Invalid {
                name: NAME,
                reason: "expected an audience URI such as api://AzureADTokenExchange",
            })
        };
    }
    let host = authority_host.host_str().unwrap_or_default();
    Ok(match host {
        "login.microsoftonline.us" => FEDERATED_AUDIENCE_US_GOV,
        "login.chinacloudapi.cn" | "login.partner.microsoftonline.cn" => FEDERATED_AUDIENCE_CHINA,
        _ => FEDERATED_AUDIENCE,
    }
    .to_owned())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::settings::Settings;

    const IDENTITY: &str = "e5f6a7b8-c9d0-4e1f-8a2b-3c4d5e6f7081";

    fn lookup(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let mut map: BTreeMap<String, String> = [
            ("BROKER_TENANT_ID", "6f1c2b7e-3d4a-4e5f-8a9b-0c1d2e3f4a5b"),
            ("BROKER_CLIENT_ID", "0b5e9c3a-7f2d-4a61-9c8e-2d4b6a8f1e37"),
            ("IDENTITY_ENDPOINT", "http://127.0.0.1:1/msi/token"),
            ("IDENTITY_HEADER", "header"),
        ]
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
        for (k, v) in pairs {
            map.insert((*k).to_owned(), (*v).to_owned());
        }
        move |name| map.get(name).cloned()
    }

    fn credential_of(pairs: &[(&str, &str)]) -> Result<CredentialSettings, String> {
        Settings::from_lookup(lookup(pairs))
            .map(|settings| settings.credential)
            .map_err(|err| err.to_string())
    }

    #[test]
    fn a_secret_setting_keeps_secret_the_default() {
        let credential = credential_of(&[("BROKER_CLIENT_SECRET", "s3cr3t-value")]).unwrap();
        assert_eq!(credential.kind(), CredentialKind::Secret);
    }

    #[test]
    fn certificate_from_a_file_or_from_key_vault() {
        let file = credential_of(&[
            ("BROKER_CREDENTIAL", "certificate"),
            ("BROKER_CERTIFICATE_PATH", "/var/ssl/private/AB.p12"),
        ])
        .unwrap();
        assert!(
            matches!(file, CredentialSettings::Certificate(CertificateSource::File(p)) if p == std::path::Path::new("/var/ssl/private/AB.p12"))
        );
        assert_eq!(
            credential_of(&[
                ("BROKER_CREDENTIAL", "certificate"),
                ("BROKER_CERTIFICATE_NAME", "broker-cert"),
            ])
            .unwrap_err(),
            "BROKER_KEY_VAULT_URL is required"
        );
    }

    #[test]
    fn settings_of_another_kind_stop_start_up_naming_them_never_their_values() {
        let err = credential_of(&[
            ("BROKER_CREDENTIAL", "certificate"),
            ("BROKER_CERTIFICATE_PATH", "/tmp/c.pem"),
            ("BROKER_CLIENT_SECRET", "s3cr3t-value"),
            ("BROKER_FEDERATED_AUDIENCE", "api://AzureADTokenExchange"),
        ])
        .unwrap_err();
        assert_eq!(
            err,
            "BROKER_CLIENT_SECRET, BROKER_FEDERATED_AUDIENCE cannot be set with BROKER_CREDENTIAL=certificate"
        );
        assert_eq!(
            credential_of(&[
                ("BROKER_CERTIFICATE_PATH", "/tmp/c.pem"),
                ("BROKER_CLIENT_SECRET", "s3cr3t-value"),
            ])
            .unwrap_err(),
            "BROKER_CERTIFICATE_PATH cannot be set with BROKER_CREDENTIAL=secret"
        );
        assert_eq!(
            credential_of(&[
                ("BROKER_CREDENTIAL", "managed-identity"),
                ("BROKER_MANAGED_IDENTITY_CLIENT_ID", IDENTITY),
                ("BROKER_CLIENT_SECRET_NAME", "broker-secret"),
            ])
            .unwrap_err(),
            "BROKER_CLIENT_SECRET_NAME cannot be set with BROKER_CREDENTIAL=managed-identity"
        );
    }

    #[test]
    fn managed_identity_needs_its_client_id_and_picks_the_cloud_audience() {
        assert_eq!(
            credential_of(&[("BROKER_CREDENTIAL", "managed-identity")]).unwrap_err(),
            "BROKER_MANAGED_IDENTITY_CLIENT_ID is required"
        );
        let audience_for = |host: &str, extra: Option<&str>| {
            let mut pairs = vec![
                ("BROKER_CREDENTIAL", "managed-identity"),
                ("BROKER_MANAGED_IDENTITY_CLIENT_ID", IDENTITY),
                ("BROKER_AUTHORITY_HOST", host),
            ];
            pairs.extend(extra.map(|a| ("BROKER_FEDERATED_AUDIENCE", a)));
            match credential_of(&pairs).unwrap() {
                CredentialSettings::ManagedIdentity { audience, .. } => audience,
                other => panic!("{other:?}"),
            }
        };
        assert_eq!(
            audience_for("https://login.microsoftonline.com", None),
            FEDERATED_AUDIENCE
        );
        assert_eq!(
            audience_for("https://login.microsoftonline.us", None),
            FEDERATED_AUDIENCE_US_GOV
        );
        assert_eq!(
            audience_for("https://login.chinacloudapi.cn", None),
            FEDERATED_AUDIENCE_CHINA
        );
        assert_eq!(
            audience_for("https://login.microsoftonline.com", Some("api://custom")),
            "api://custom"
        );
    }

    #[test]
    fn an_unknown_kind_is_named() {
        assert_eq!(
            credential_of(&[("BROKER_CREDENTIAL", "password")]).unwrap_err(),
            "BROKER_CREDENTIAL is invalid (\"password\"): expected secret, certificate or managed-identity"
        );
    }
}
