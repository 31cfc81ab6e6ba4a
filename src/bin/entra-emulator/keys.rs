//! The emulator's RSA signing keys: generation (each with a self-signed certificate, so the JWKS carries
//! `x5c` and `x5t` like Entra's), rotation, retirement, and the JWKS document of the published ones.

use crate::clock;
use anyhow::{Context, anyhow};
use aws_lc_rs::digest::{SHA1_FOR_LEGACY_USE_ONLY, digest};
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::KeyPair;
use aws_lc_rs::signature::KeyPair as _;
use aws_lc_rs::signature::{RSA_PKCS1_2048_8192_SHA256, RSA_PKCS1_SHA256, UnparsedPublicKey};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde_json::{Value, json};
use std::sync::Arc;

/// One RS256 signing key. `kid` equals `x5t` (the certificate's SHA-1 thumbprint), as in Entra.
pub struct SigningKey {
    pub kid: String,
    pair: KeyPair,
    public_der: Vec<u8>,
    modulus: String,
    exponent: String,
    certificate: String,
}

impl SigningKey {
    /// Generates a 2048-bit key and its certificate (tens of milliseconds).
    pub fn generate() -> anyhow::Result<Self> {
        let rc_key =
            rcgen::KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, rcgen::RsaKeySize::_2048)
                .context("generate RSA signing key")?;
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new())?;
        params.distinguished_name.push(
            rcgen::DnType::CommonName,
            "accounts.accesscontrol.windows.net",
        );
        let (year, month, day) = clock::ymd(clock::now() - 86_400);
        params.not_before = rcgen::date_time_ymd(year, month, day);
        let (year, month, day) = clock::ymd(clock::now() + 5 * 365 * 86_400);
        params.not_after = rcgen::date_time_ymd(year, month, day);
        let certificate = params
            .self_signed(&rc_key)
            .context("self-sign signing key")?;
        let der = certificate.der();
        let pair = KeyPair::from_pkcs8(rc_key.serialized_der())
            .map_err(|err| anyhow!("load signing key: {err}"))?;
        let public = pair.public_key();
        Ok(Self {
            kid: URL_SAFE_NO_PAD.encode(digest(&SHA1_FOR_LEGACY_USE_ONLY, der)),
            public_der: public.as_ref().to_vec(),
            modulus: URL_SAFE_NO_PAD.encode(public.modulus().big_endian_without_leading_zero()),
            exponent: URL_SAFE_NO_PAD.encode(public.exponent().big_endian_without_leading_zero()),
            certificate: STANDARD.encode(der),
            pair,
        })
    }

    /// RSASSA-PKCS1-v1_5 with SHA-256 over `message`.
    pub fn sign(&self, message: &[u8]) -> anyhow::Result<Vec<u8>> {
        let mut signature = vec![0u8; self.pair.public_modulus_len()];
        self.pair
            .sign(
                &RSA_PKCS1_SHA256,
                &SystemRandom::new(),
                message,
                &mut signature,
            )
            .map_err(|_| anyhow!("RS256 signing failed"))?;
        Ok(signature)
    }

    /// True when `signature` is this key's RS256 signature of `message`.
    pub fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
        UnparsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, &self.public_der)
            .verify(message, signature)
            .is_ok()
    }

    /// The JWK as Entra publishes it; v2 key sets also name the issuer.
    pub fn jwk(&self, issuer: Option<&str>) -> Value {
        let mut jwk = json!({
            "kty": "RSA",
            "use": "sig",
            "kid": self.kid,
            "x5t": self.kid,
            "n": self.modulus,
            "e": self.exponent,
            "x5c": [self.certificate],
        });
        if let (Some(issuer), Some(object)) = (issuer, jwk.as_object_mut()) {
            object.insert("cloud_instance_name".into(), json!("microsoftonline.com"));
            object.insert("issuer".into(), json!(issuer));
        }
        jwk
    }
}

/// Which key signs a minted token.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KeyChoice {
    Current,
    Previous,
    Unpublished,
}

/// The current key, older keys (published until retired), and a key that is never published.
pub struct KeyRing {
    current: Arc<SigningKey>,
    older: Vec<(Arc<SigningKey>, bool)>,
    unpublished: Option<Arc<SigningKey>>,
}

impl KeyRing {
    pub fn new(first: SigningKey) -> Self {
        Self {
            current: Arc::new(first),
            older: Vec::new(),
            unpublished: None,
        }
    }

    pub fn current(&self) -> Arc<SigningKey> {
        Arc::clone(&self.current)
    }

    /// The key that was current before the last rotation, retired or not.
    pub fn previous(&self) -> Option<Arc<SigningKey>> {
        self.older.last().map(|(key, _)| Arc::clone(key))
    }

    pub fn unpublished(&self) -> Option<Arc<SigningKey>> {
        self.unpublished.clone()
    }

    pub fn set_unpublished(&mut self, key: SigningKey) -> Arc<SigningKey> {
        Arc::clone(self.unpublished.get_or_insert_with(|| Arc::new(key)))
    }

    /// The current key first, then older keys not yet retired, newest first.
    pub fn published(&self) -> Vec<Arc<SigningKey>> {
        std::iter::once(Arc::clone(&self.current))
            .chain(
                self.older
                    .iter()
                    .rev()
                    .filter(|(_, live)| *live)
                    .map(|(key, _)| Arc::clone(key)),
            )
            .collect()
    }

    pub fn published_kids(&self) -> Vec<String> {
        self.published().iter().map(|key| key.kid.clone()).collect()
    }

    /// Makes `next` current; the old current stays published unless `retire_previous`.
    pub fn rotate(&mut self, next: SigningKey, retire_previous: bool) {
        let old = std::mem::replace(&mut self.current, Arc::new(next));
        self.older.push((old, true));
        if retire_previous {
            self.retire_all_but_current();
        }
    }

    pub fn retire_all_but_current(&mut self) {
        for (_, live) in &mut self.older {
            *live = false;
        }
    }
}

/// `{"keys":[...]}` for the given keys.
pub fn jwks(keys: &[Arc<SigningKey>], issuer: Option<&str>) -> Value {
    json!({ "keys": keys.iter().map(|key| key.jwk(issuer)).collect::<Vec<_>>() })
}
