//! The credentials registered on the broker's app registration besides its secret: certificates (the
//! public key and validity, matched by `x5t#S256` or `x5t`) and federated identity credentials
//! (issuer, subject, audiences). Also makes test certificates: an RSA key with a self-signed
//! certificate, as PEM and as an unprotected PKCS#12, the two forms Key Vault serves.

use crate::{clock, ids};
use anyhow::{Context, anyhow};
use aws_lc_rs::digest::{SHA1_FOR_LEGACY_USE_ONLY, SHA256, digest};
use aws_lc_rs::rsa::KeyPair;
use aws_lc_rs::signature::KeyPair as _;
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use p12_keystore::{Certificate, KeyStore, KeyStoreEntry, PrivateKey, PrivateKeyChain};

/// A certificate credential on the app.
#[derive(Clone)]
pub struct RegisteredCertificate {
    pub x5t_s256: String,
    pub x5t: String,
    /// The RSA public key (PKCS#1 DER).
    pub public_key: Vec<u8>,
    /// Unix seconds: the credential's `startDateTime` and `endDateTime` (the certificate's validity).
    pub not_before: i64,
    pub not_after: i64,
}

/// A federated identity credential on the app.
#[derive(Clone)]
pub struct FederatedRecord {
    pub id: String,
    pub issuer: String,
    pub subject: String,
    pub audiences: Vec<String>,
}

#[derive(Default)]
pub struct AppCredentials {
    certificates: Vec<RegisteredCertificate>,
    federated: Vec<FederatedRecord>,
}

impl AppCredentials {
    pub fn register(&mut self, certificate: RegisteredCertificate) {
        self.certificates
            .retain(|c| c.x5t_s256 != certificate.x5t_s256);
        self.certificates.push(certificate);
    }

    /// Removes the certificate whose `x5t#S256` or hex SHA-256 thumbprint is `thumbprint`.
    pub fn unregister(&mut self, thumbprint: &str) -> bool {
        let before = self.certificates.len();
        self.certificates.retain(|c| {
            c.x5t_s256 != thumbprint && !hex_of(&c.x5t_s256).eq_ignore_ascii_case(thumbprint)
        });
        self.certificates.len() != before
    }

    /// The certificate a `x5t#S256` (preferred) or `x5t` header names.
    pub fn certificate(
        &self,
        x5t_s256: Option<&str>,
        x5t: Option<&str>,
    ) -> Option<RegisteredCertificate> {
        self.certificates
            .iter()
            .find(|c| match (x5t_s256, x5t) {
                (Some(s256), _) => c.x5t_s256 == s256,
                (None, Some(sha1)) => c.x5t == sha1,
                (None, None) => false,
            })
            .cloned()
    }

    pub fn add_federated(
        &mut self,
        issuer: &str,
        subject: &str,
        audiences: Vec<String>,
    ) -> FederatedRecord {
        let record = FederatedRecord {
            id: ids::guid(),
            issuer: issuer.to_owned(),
            subject: subject.to_owned(),
            audiences,
        };
        self.federated.push(record.clone());
        record
    }

    pub fn remove_federated(&mut self, id: &str) -> bool {
        let before = self.federated.len();
        self.federated.retain(|r| !r.id.eq_ignore_ascii_case(id));
        self.federated.len() != before
    }

    pub fn federated(&self) -> &[FederatedRecord] {
        &self.federated
    }
}

/// A generated certificate with its private key.
pub struct GeneratedCertificate {
    pub registration: RegisteredCertificate,
    /// The private key (PKCS#8) and then the certificate, PEM.
    pub pem: String,
    /// The same as an unprotected PKCS#12, base64 (how Key Vault holds `application/x-pkcs12`).
    pub pkcs12_base64: String,
}

/// A 2048-bit RSA key with a self-signed certificate valid from `not_before` to `not_after` (Unix
/// seconds; whole days, as certificates state them).
pub fn generate(not_before: i64, not_after: i64) -> anyhow::Result<GeneratedCertificate> {
    let key = rcgen::KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, rcgen::RsaKeySize::_2048)
        .context("generate the certificate's RSA key")?;
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new())?;
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "token-broker client certificate");
    let (year, month, day) = clock::ymd(not_before);
    params.not_before = rcgen::date_time_ymd(year, month, day);
    let (year, month, day) = clock::ymd(not_after);
    params.not_after = rcgen::date_time_ymd(year, month, day);
    let certificate = params
        .self_signed(&key)
        .context("self-sign the certificate")?;
    let der = certificate.der().to_vec();
    let pair =
        KeyPair::from_pkcs8(key.serialized_der()).map_err(|err| anyhow!("load the key: {err}"))?;
    let mut store = KeyStore::new();
    let chain = PrivateKeyChain::new(
        digest(&SHA1_FOR_LEGACY_USE_ONLY, &der).as_ref(),
        PrivateKey::from_der(key.serialized_der()).map_err(|err| anyhow!("PKCS#12 key: {err}"))?,
        [Certificate::from_der(&der).map_err(|err| anyhow!("PKCS#12 certificate: {err}"))?],
    );
    store.add_entry("token-broker", KeyStoreEntry::PrivateKeyChain(chain));
    let pkcs12 = store
        .writer("")
        .write()
        .map_err(|err| anyhow!("write PKCS#12: {err}"))?;
    Ok(GeneratedCertificate {
        registration: RegisteredCertificate {
            x5t_s256: URL_SAFE_NO_PAD.encode(digest(&SHA256, &der)),
            x5t: URL_SAFE_NO_PAD.encode(digest(&SHA1_FOR_LEGACY_USE_ONLY, &der)),
            public_key: pair.public_key().as_ref().to_vec(),
            // The day granularity of the certificate's dates, as Entra records them.
            not_before: day_start(not_before),
            not_after: day_start(not_after),
        },
        pem: format!("{}{}", key.serialize_pem(), certificate.pem()),
        pkcs12_base64: STANDARD.encode(pkcs12),
    })
}

fn day_start(unix: i64) -> i64 {
    unix - unix.rem_euclid(86_400)
}

/// Upper-case hex of a base64url digest, as the portal shows thumbprints.
pub fn hex_of(b64url: &str) -> String {
    URL_SAFE_NO_PAD
        .decode(b64url)
        .unwrap_or_default()
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect()
}
