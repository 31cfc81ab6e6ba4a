//! Where the broker's client certificate is read from: the Key Vault secret behind a Key Vault
//! certificate (PKCS#12 as base64 or PEM, by its content type), or a PEM or PKCS#12 file. A refused
//! certificate is named in one warning line with the reason, never with its bytes.

use std::path::PathBuf;
use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use crate::azure::key_vault::VaultReader;
use crate::broker::certificate::{CertificateError, ClientCertificate};
use crate::broker::credential::CertificateLoader;
use crate::broker::error::LoadFailure;
use crate::broker::metrics::Metrics;

const PKCS12: &str = "application/x-pkcs12";
const PEM: &str = "application/x-pem-file";
/// Larger than any certificate file with its chain.
const MAX_FILE_LEN: u64 = 256 * 1024;

pub struct VaultCertificate {
    pub reader: Arc<VaultReader>,
    pub name: String,
    pub metrics: Arc<Metrics>,
}

#[async_trait::async_trait]
impl CertificateLoader for VaultCertificate {
    async fn load(&self) -> Result<ClientCertificate, LoadFailure> {
        Metrics::add(&self.metrics.key_vault_reads);
        let secret = self.reader.read_typed(&self.name).await.inspect_err(|_| {
            Metrics::add(&self.metrics.key_vault_failures);
        })?;
        let parsed = match secret.content_type.as_deref() {
            Some(PKCS12) => STANDARD
                .decode(secret.value.expose().trim())
                .map_err(|_| CertificateError::Pkcs12)
                .and_then(|der| ClientCertificate::from_pkcs12(&der)),
            Some(PEM) => ClientCertificate::from_pem(secret.value.expose().as_bytes()),
            _ => {
                tracing::warn!(
                    secret = self.name,
                    "Key Vault secret for the client certificate has neither content type {PKCS12} nor {PEM}"
                );
                return Err(LoadFailure::Misconfigured);
            }
        };
        checked(parsed, &self.name)
    }
}

pub struct FileCertificate {
    pub path: PathBuf,
}

#[async_trait::async_trait]
impl CertificateLoader for FileCertificate {
    async fn load(&self) -> Result<ClientCertificate, LoadFailure> {
        let path = self.path.clone();
        let bytes = tokio::task::spawn_blocking(move || read_bounded(&path))
            .await
            .map_err(|_| LoadFailure::Unreachable)?
            .map_err(|err| {
                tracing::warn!(path = %self.path.display(), error = %err, "client certificate file could not be read");
                LoadFailure::Misconfigured
            })?;
        checked(
            ClientCertificate::parse(&bytes),
            &self.path.display().to_string(),
        )
    }
}

fn read_bounded(path: &std::path::Path) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    let mut bytes = Vec::new();
    std::fs::File::open(path)?
        .take(MAX_FILE_LEN + 1)
        .read_to_end(&mut bytes)?;
    if bytes.len() as u64 > MAX_FILE_LEN {
        return Err(std::io::Error::other(
            "larger than a certificate file can be",
        ));
    }
    Ok(bytes)
}

/// A parsed certificate, or the one warning line that says why it was refused.
fn checked(
    parsed: Result<ClientCertificate, CertificateError>,
    source: &str,
) -> Result<ClientCertificate, LoadFailure> {
    let certificate = parsed.map_err(|err| {
        tracing::warn!(source, reason = %err, "client certificate refused");
        LoadFailure::Misconfigured
    })?;
    if certificate.is_expired(crate::clock::now()) {
        tracing::warn!(
            source,
            thumbprint_sha256 = certificate.thumbprint_sha256,
            "client certificate is past its notAfter; it will not be used"
        );
    }
    Ok(certificate)
}
