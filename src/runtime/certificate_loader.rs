//! Where the broker's client certificate is read from: the Key Vault secret behind a Key Vault
//! certificate (PKCS#12 as base64 or PEM, by its content type), or a PEM or PKCS#12 file (a regular
//! file only: a FIFO or a device could block a read forever). The bytes are parsed only when they
//! changed since the last read, on a blocking thread (a PKCS#12's key derivation can take a long time).
//! A refused certificate is named in one warning line with the reason, never with its bytes, once per
//! version.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use crate::azure::key_vault::VaultReader;
use crate::broker::certificate::{CertificateError, ClientCertificate};
use crate::broker::credential_source::CertificateLoader;
use crate::broker::digest::Digest;
use crate::broker::freshness::ReadProblem;
use crate::broker::metrics::Metrics;

const PKCS12: &str = "application/x-pkcs12";
const PEM: &str = "application/x-pem-file";
/// Larger than any certificate file with its chain.
const MAX_FILE_LEN: u64 = 256 * 1024;

pub struct VaultCertificate {
    reader: Arc<VaultReader>,
    name: String,
    metrics: Arc<Metrics>,
    parsed: LastParsed,
}

impl VaultCertificate {
    pub fn new(reader: Arc<VaultReader>, name: String, metrics: Arc<Metrics>) -> Self {
        Self {
            reader,
            name,
            metrics,
            parsed: LastParsed::default(),
        }
    }
}

#[async_trait::async_trait]
impl CertificateLoader for VaultCertificate {
    async fn load(&self) -> Result<Arc<ClientCertificate>, ReadProblem> {
        Metrics::add(&self.metrics.key_vault_reads);
        let secret = self
            .reader
            .read_typed(&self.name)
            .await
            .map_err(|failure| {
                Metrics::add(&self.metrics.key_vault_failures);
                ReadProblem::from(failure)
            })?;
        let bytes = match secret.content_type.as_deref() {
            Some(PKCS12) => STANDARD
                .decode(secret.value.expose().trim())
                .map_err(|_| CertificateError::Pkcs12),
            Some(PEM) => Ok(secret.value.expose().as_bytes().to_vec()),
            _ => {
                tracing::warn!(
                    secret = self.name,
                    "Key Vault secret for the client certificate has neither content type {PKCS12} nor {PEM}"
                );
                return Err(ReadProblem::Unparseable);
            }
        };
        match bytes {
            Ok(bytes) => self.parsed.parse(bytes, &self.name).await,
            Err(err) => {
                tracing::warn!(source = self.name, reason = %err, "client certificate refused");
                Err(ReadProblem::Unparseable)
            }
        }
    }
}

pub struct FileCertificate {
    path: PathBuf,
    /// A read that has not returned yet (a hung share): no second one is started meanwhile.
    reading: Arc<AtomicBool>,
    parsed: LastParsed,
}

impl FileCertificate {
    pub fn new(path: PathBuf) -> Self {
        Self {
            path,
            reading: Arc::new(AtomicBool::new(false)),
            parsed: LastParsed::default(),
        }
    }
}

#[async_trait::async_trait]
impl CertificateLoader for FileCertificate {
    async fn load(&self) -> Result<Arc<ClientCertificate>, ReadProblem> {
        if self.reading.swap(true, Ordering::AcqRel) {
            tracing::warn!(path = %self.path.display(), "client certificate file: the last read has not returned yet");
            return Err(ReadProblem::Unreachable);
        }
        let (path, reading) = (self.path.clone(), Arc::clone(&self.reading));
        let read = tokio::task::spawn_blocking(move || {
            let read = read_bounded(&path);
            reading.store(false, Ordering::Release);
            read
        });
        let bytes = read
            .await
            .map_err(|_| ReadProblem::Unreachable)?
            .map_err(|err| {
                tracing::warn!(path = %self.path.display(), error = %err, "client certificate file could not be read");
                ReadProblem::FileUnreadable
            })?;
        self.parsed
            .parse(bytes, &self.path.display().to_string())
            .await
    }
}

fn read_bounded(path: &std::path::Path) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    if !std::fs::metadata(path)?.is_file() {
        return Err(std::io::Error::other("not a regular file"));
    }
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

type Parsed = Result<Arc<ClientCertificate>, CertificateError>;

/// The last bytes read (as a digest) and what parsing them gave.
#[derive(Default)]
struct LastParsed(Mutex<Option<(Digest, Parsed)>>);

impl LastParsed {
    /// What `bytes` parse to: the last answer when they are the same bytes, else a parse on a
    /// blocking thread, with the one warning line for a refused or expired certificate.
    async fn parse(
        &self,
        bytes: Vec<u8>,
        source: &str,
    ) -> Result<Arc<ClientCertificate>, ReadProblem> {
        let digest = Digest::of_bytes(&bytes);
        let last = self
            .lock()
            .as_ref()
            .filter(|(seen, _)| *seen == digest)
            .map(|(_, parsed)| parsed.clone());
        let parsed = match last {
            Some(parsed) => parsed,
            None => {
                let parsed = tokio::task::spawn_blocking(move || ClientCertificate::parse(&bytes))
                    .await
                    .unwrap_or(Err(CertificateError::Pkcs12))
                    .map(Arc::new);
                warn_once(&parsed, source);
                *self.lock() = Some((digest, parsed.clone()));
                parsed
            }
        };
        parsed.map_err(|_| ReadProblem::Unparseable)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<(Digest, Parsed)>> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The warning line for a certificate just parsed that is refused or past its `notAfter`.
fn warn_once(parsed: &Parsed, source: &str) {
    match parsed {
        Err(err) => tracing::warn!(source, reason = %err, "client certificate refused"),
        Ok(certificate) if certificate.is_expired(crate::clock::now()) => {
            tracing::warn!(
                source,
                thumbprint_sha256 = certificate.thumbprint_sha256,
                "client certificate is past its notAfter; it will not be used"
            );
        }
        Ok(_) => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pem() -> Vec<u8> {
        let key =
            rcgen::KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, rcgen::RsaKeySize::_2048)
                .unwrap();
        let params = rcgen::CertificateParams::new(vec!["broker".into()]).unwrap();
        let cert = params.self_signed(&key).unwrap();
        format!("{}{}", key.serialize_pem(), cert.pem()).into_bytes()
    }

    #[tokio::test]
    async fn the_same_bytes_are_parsed_once_and_new_bytes_again() {
        let parsed = LastParsed::default();
        let (first, second) = (pem(), pem());

        let a = parsed.parse(first.clone(), "test").await.unwrap();
        let again = parsed.parse(first, "test").await.unwrap();
        let b = parsed.parse(second, "test").await.unwrap();

        assert!(Arc::ptr_eq(&a, &again), "the same bytes were parsed again");
        assert!(!Arc::ptr_eq(&a, &b));
        assert_ne!(a.thumbprint_sha256, b.thumbprint_sha256);
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn a_fifo_is_refused_without_blocking() {
        let dir = std::env::temp_dir().join(format!("broker-fifo-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("certificate.pem");
        let _ = std::fs::remove_file(&path);
        let made = std::process::Command::new("mkfifo")
            .arg(&path)
            .status()
            .unwrap();
        assert!(made.success());
        let loader = FileCertificate::new(path.clone());

        let loaded = loader.load().await;

        assert!(matches!(loaded, Err(ReadProblem::FileUnreadable)));
        assert!(!loader.reading.load(Ordering::Acquire));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
