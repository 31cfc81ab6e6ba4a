//! The broker's client certificate: parsed from PKCS#12 or PEM, checked (RSA of 2048 bits or more, the
//! certificate's key is the private key's), and used to sign client assertions (RFC 7523, as Entra
//! documents its certificate credentials). Knows nothing of where the bytes came from.
//!
//! Signing uses aws-lc-rs directly: PKCS#12 holds the key as PKCS#8, which `jsonwebtoken`'s RSA
//! `EncodingKey` does not take (it wants PKCS#1), and the key's size has to be read anyway.

use aws_lc_rs::digest::{SHA1_FOR_LEGACY_USE_ONLY, SHA256, digest};
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::KeyPair;
use aws_lc_rs::signature::{KeyPair as _, RSA_PSS_SHA256};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use p12_keystore::{KeyStore, Pkcs12ImportPolicy};
use serde_json::json;
use x509_parser::prelude::{FromDer, X509Certificate};
use x509_parser::public_key::PublicKey;

use crate::broker::ids::Guid;
use crate::secret::Secret;

/// Smallest RSA modulus accepted, in bits (Entra's own floor for certificate credentials).
const MIN_KEY_BITS: usize = 2048;
/// Lifetime of one client assertion: Entra wants "a few minutes".
pub const ASSERTION_LIFETIME_SECONDS: u64 = 300;

/// Why a certificate was refused at load. The text names the problem, never key material.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CertificateError {
    #[error("not a readable PKCS#12 file (a password-protected one is not supported)")]
    Pkcs12,
    #[error("not a PEM file with a certificate and an unencrypted private key")]
    Pem,
    #[error("the private key is not an RSA key")]
    NotRsa,
    #[error("the RSA key has {bits} bits; 2048 or more are required")]
    KeyTooSmall { bits: usize },
    #[error("no certificate in the file matches the private key")]
    NoMatchingCertificate,
    #[error("the certificate is expired")]
    Expired,
    #[error("the client assertion could not be signed")]
    Signing,
}

/// A usable client certificate. No `Debug`: it holds the private key.
pub struct ClientCertificate {
    key: KeyPair,
    /// Base64url SHA-256 of the certificate's DER (`x5t#S256`).
    x5t_s256: String,
    /// Base64url SHA-1 of the certificate's DER (`x5t`): an identifier only, the signature secures.
    x5t: String,
    /// Upper-case hex SHA-256 thumbprint, as the portal and `az` show it.
    pub thumbprint_sha256: String,
    /// Unix seconds.
    pub not_before: i64,
    /// Unix seconds.
    pub not_after: i64,
}

impl ClientCertificate {
    /// PEM when the bytes look like PEM, PKCS#12 otherwise.
    pub fn parse(bytes: &[u8]) -> Result<Self, CertificateError> {
        if bytes.trim_ascii_start().starts_with(b"-----BEGIN") {
            Self::from_pem(bytes)
        } else {
            Self::from_pkcs12(bytes)
        }
    }

    /// A PKCS#12 (PFX) file without a password, as Key Vault and App Service hold them.
    pub fn from_pkcs12(der: &[u8]) -> Result<Self, CertificateError> {
        let store = KeyStore::from_pkcs12(der, "", Pkcs12ImportPolicy::Strict)
            .map_err(|_| CertificateError::Pkcs12)?;
        let (_, chain) = store.private_key_chain().ok_or(CertificateError::Pkcs12)?;
        let certificates: Vec<&[u8]> = chain.certs().iter().map(|c| c.as_der()).collect();
        let key =
            KeyPair::from_pkcs8(chain.key().as_der()).map_err(|_| key_refusal(&certificates))?;
        Self::new(key, &certificates)
    }

    /// PEM with one unencrypted private key (PKCS#8 or PKCS#1) and its certificate, in any order,
    /// possibly with the issuing chain (Key Vault's `application/x-pem-file`).
    pub fn from_pem(text: &[u8]) -> Result<Self, CertificateError> {
        let blocks = pem::parse_many(text).map_err(|_| CertificateError::Pem)?;
        let mut keys = blocks.iter().filter_map(|block| match block.tag() {
            "PRIVATE KEY" => Some(KeyPair::from_pkcs8(block.contents())),
            "RSA PRIVATE KEY" => Some(KeyPair::from_der(block.contents())),
            _ => None,
        });
        let certificates: Vec<&[u8]> = blocks
            .iter()
            .filter(|block| block.tag() == "CERTIFICATE")
            .map(pem::Pem::contents)
            .collect();
        let key = match (keys.next(), keys.next()) {
            (Some(Ok(key)), None) => key,
            (Some(Err(_)), None) => return Err(key_refusal(&certificates)),
            _ => return Err(CertificateError::Pem),
        };
        Self::new(key, &certificates)
    }

    fn new(key: KeyPair, certificates: &[&[u8]]) -> Result<Self, CertificateError> {
        let bits = key.public_modulus_len() * 8;
        if bits < MIN_KEY_BITS {
            return Err(CertificateError::KeyTooSmall { bits });
        }
        let public = key.public_key().as_ref().to_vec();
        let (der, certificate) = certificates
            .iter()
            .filter_map(|der| Some((*der, X509Certificate::from_der(der).ok()?.1)))
            .find(|(_, cert)| cert.public_key().subject_public_key.data.as_ref() == public)
            .ok_or(CertificateError::NoMatchingCertificate)?;
        let validity = certificate.validity();
        let sha256 = digest(&SHA256, der);
        Ok(Self {
            x5t_s256: URL_SAFE_NO_PAD.encode(sha256.as_ref()),
            x5t: URL_SAFE_NO_PAD.encode(digest(&SHA1_FOR_LEGACY_USE_ONLY, der).as_ref()),
            thumbprint_sha256: sha256.as_ref().iter().map(|b| format!("{b:02X}")).collect(),
            not_before: validity.not_before.timestamp(),
            not_after: validity.not_after.timestamp(),
            key,
        })
    }

    pub fn is_expired(&self, now: u64) -> bool {
        i64::try_from(now).map_or(true, |now| now >= self.not_after)
    }

    /// A PS256 client assertion for `client_id` at `token_endpoint`, valid from `now` for
    /// `ASSERTION_LIFETIME_SECONDS`. Refused for an expired certificate.
    pub fn assertion(
        &self,
        client_id: &str,
        token_endpoint: &str,
        now: u64,
    ) -> Result<Secret, CertificateError> {
        if self.is_expired(now) {
            return Err(CertificateError::Expired);
        }
        let header = json!({
            "alg": "PS256",
            "typ": "JWT",
            "x5t#S256": self.x5t_s256,
            "x5t": self.x5t,
        });
        let claims = json!({
            "aud": token_endpoint,
            "iss": client_id,
            "sub": client_id,
            "jti": Guid::random_v4().as_str(),
            "nbf": now,
            "iat": now,
            "exp": now + ASSERTION_LIFETIME_SECONDS,
        });
        let signing_input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let mut signature = vec![0; self.key.public_modulus_len()];
        self.key
            .sign(
                &RSA_PSS_SHA256,
                &SystemRandom::new(),
                signing_input.as_bytes(),
                &mut signature,
            )
            .map_err(|_| CertificateError::Signing)?;
        Ok(Secret::new(format!(
            "{signing_input}.{}",
            URL_SAFE_NO_PAD.encode(signature)
        )))
    }
}

/// Why a private key did not load: aws-lc-rs takes no RSA key under 2048 bits, so a certificate with
/// a smaller RSA key names the size; anything else is not RSA.
fn key_refusal(certificates: &[&[u8]]) -> CertificateError {
    certificates
        .iter()
        .filter_map(|der| X509Certificate::from_der(der).ok())
        .find_map(|(_, cert)| match cert.public_key().parsed() {
            Ok(PublicKey::RSA(rsa)) if rsa.key_size() < MIN_KEY_BITS => {
                Some(CertificateError::KeyTooSmall {
                    bits: rsa.key_size(),
                })
            }
            _ => None,
        })
        .unwrap_or(CertificateError::NotRsa)
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_lc_rs::signature::{RSA_PSS_2048_8192_SHA256, UnparsedPublicKey};

    fn generated(algorithm: &'static rcgen::SignatureAlgorithm) -> (String, String) {
        let key = match algorithm {
            a if *a == rcgen::PKCS_RSA_SHA256 => {
                rcgen::KeyPair::generate_rsa_for(a, rcgen::RsaKeySize::_2048).unwrap()
            }
            a => rcgen::KeyPair::generate_for(a).unwrap(),
        };
        let params = rcgen::CertificateParams::new(vec!["broker".into()]).unwrap();
        let cert = params.self_signed(&key).unwrap();
        (cert.pem(), key.serialize_pem())
    }

    fn decode(segment: &str) -> serde_json::Value {
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(segment).unwrap()).unwrap()
    }

    #[test]
    fn pem_certificate_signs_a_verifiable_ps256_assertion_with_the_documented_claims() {
        let (cert, key) = generated(&rcgen::PKCS_RSA_SHA256);
        let certificate = ClientCertificate::from_pem(format!("{key}{cert}").as_bytes()).unwrap();
        let assertion = certificate
            .assertion("client", "https://login/t/oauth2/v2.0/token", 1_000)
            .unwrap();
        let parts: Vec<&str> = assertion.expose().split('.').collect();
        let header = decode(parts[0]);
        let claims = decode(parts[1]);
        assert_eq!(
            (&header["alg"], &header["typ"]),
            (&json!("PS256"), &json!("JWT"))
        );
        assert_eq!(header["x5t#S256"].as_str().unwrap().len(), 43);
        assert_eq!(
            (
                &claims["aud"],
                &claims["iss"],
                &claims["sub"],
                &claims["nbf"],
                &claims["exp"]
            ),
            (
                &json!("https://login/t/oauth2/v2.0/token"),
                &json!("client"),
                &json!("client"),
                &json!(1_000),
                &json!(1_300)
            )
        );
        let public = certificate.key.public_key().as_ref().to_vec();
        let signature = URL_SAFE_NO_PAD.decode(parts[2]).unwrap();
        UnparsedPublicKey::new(&RSA_PSS_2048_8192_SHA256, &public)
            .verify(format!("{}.{}", parts[0], parts[1]).as_bytes(), &signature)
            .unwrap();
        assert_eq!(certificate.thumbprint_sha256.len(), 64);
    }

    #[test]
    fn each_assertion_has_its_own_jti() {
        let (cert, key) = generated(&rcgen::PKCS_RSA_SHA256);
        let certificate = ClientCertificate::parse(format!("{cert}{key}").as_bytes()).unwrap();
        let jti = |a: Secret| decode(a.expose().split('.').nth(1).unwrap())["jti"].clone();
        assert_ne!(
            jti(certificate.assertion("c", "a", 1).unwrap()),
            jti(certificate.assertion("c", "a", 1).unwrap())
        );
    }

    #[test]
    fn non_rsa_keys_and_mismatched_certificates_are_refused() {
        let (cert, key) = generated(&rcgen::PKCS_ECDSA_P256_SHA256);
        assert!(matches!(
            ClientCertificate::from_pem(format!("{key}{cert}").as_bytes()),
            Err(CertificateError::NotRsa)
        ));
        let (_, key) = generated(&rcgen::PKCS_RSA_SHA256);
        let (other_cert, _) = generated(&rcgen::PKCS_RSA_SHA256);
        assert!(matches!(
            ClientCertificate::from_pem(format!("{key}{other_cert}").as_bytes()),
            Err(CertificateError::NoMatchingCertificate)
        ));
        assert!(matches!(
            ClientCertificate::parse(b"not a pfx"),
            Err(CertificateError::Pkcs12)
        ));
    }

    #[test]
    fn an_rsa_key_under_2048_bits_is_refused_naming_its_size() {
        // A 1024-bit key and certificate (made with openssl; no crate here generates one that small).
        let pem = include_str!("../../tests/fixtures/rsa1024-client-certificate.pem");
        assert!(matches!(
            ClientCertificate::from_pem(pem.as_bytes()),
            Err(CertificateError::KeyTooSmall { bits: 1024 })
        ));
    }

    #[test]
    fn an_expired_certificate_signs_nothing() {
        let (cert, key) = generated(&rcgen::PKCS_RSA_SHA256);
        let certificate = ClientCertificate::from_pem(format!("{key}{cert}").as_bytes()).unwrap();
        let after = u64::try_from(certificate.not_after).unwrap();
        assert!(matches!(
            certificate.assertion("c", "a", after),
            Err(CertificateError::Expired)
        ));
    }
}
