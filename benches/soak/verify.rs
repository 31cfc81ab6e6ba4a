//! Checks every token the broker hands out against the emulator's signing keys and the request that
//! asked for it: signature, audience, tenant, expiry, and whose token it is. Keys are kept once seen, so
//! a token issued before a key was retired still verifies against the key that signed it.

use std::collections::HashMap;
use std::sync::RwLock;

use anyhow::Context;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use serde_json::Value;

use crate::emulator::Emulator;

/// What a correct token for one request looks like.
pub struct Expected<'a> {
    pub audience: &'a str,
    /// The `oid` it must be issued to: the user for OBO, the broker's service principal otherwise.
    pub oid: &'a str,
}

pub struct Verifier {
    client: reqwest::Client,
    jwks_url: String,
    tenant: String,
    keys: RwLock<HashMap<String, DecodingKey>>,
}

#[derive(Deserialize)]
struct Jwks {
    keys: Vec<Jwk>,
}

#[derive(Deserialize)]
struct Jwk {
    kid: String,
    n: String,
    e: String,
}

impl Verifier {
    pub async fn new(emulator: &Emulator) -> anyhow::Result<Self> {
        let (authority, tenant, ca_file) = emulator.authority();
        let ca = std::fs::read(ca_file).with_context(|| format!("read {ca_file}"))?;
        let client = reqwest::Client::builder()
            .add_root_certificate(reqwest::Certificate::from_pem(&ca)?)
            .build()?;
        let verifier = Self {
            client,
            jwks_url: format!(
                "{}/{tenant}/discovery/v2.0/keys",
                authority.trim_end_matches('/')
            ),
            tenant: tenant.to_owned(),
            keys: RwLock::default(),
        };
        verifier.refresh().await?;
        Ok(verifier)
    }

    /// Adds the keys the emulator publishes now to those seen before.
    async fn refresh(&self) -> anyhow::Result<()> {
        let jwks: Jwks = self
            .client
            .get(&self.jwks_url)
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        let mut keys = self.keys.write().expect("key map poisoned");
        for jwk in jwks.keys {
            keys.insert(jwk.kid, DecodingKey::from_rsa_components(&jwk.n, &jwk.e)?);
        }
        Ok(())
    }

    /// `Err` with the reason when `token` is not the one `expected` describes.
    pub async fn check(&self, token: &str, expected: &Expected<'_>) -> Result<(), String> {
        let kid = jsonwebtoken::decode_header(token)
            .map_err(|err| format!("issued token has no readable header: {err}"))?
            .kid
            .ok_or("issued token has no kid")?;
        if !self
            .keys
            .read()
            .expect("key map poisoned")
            .contains_key(&kid)
        {
            // Transient failures of this fetch are the emulator's own faults, not the broker's.
            let _ = self.refresh().await;
        }
        let keys = self.keys.read().expect("key map poisoned");
        let key = keys
            .get(&kid)
            .ok_or_else(|| format!("issued token signed by unknown key {kid}"))?;
        let mut validation = Validation::new(Algorithm::RS256);
        validation.set_audience(&[expected.audience]);
        validation.set_required_spec_claims(&["exp", "aud"]);
        let claims = jsonwebtoken::decode::<Value>(token, key, &validation)
            .map_err(|err| format!("issued token fails verification: {err}"))?
            .claims;
        if claims["tid"] != self.tenant.as_str() {
            return Err(format!("issued token for tenant {}", claims["tid"]));
        }
        if claims["oid"] != expected.oid {
            return Err(format!(
                "issued token for oid {} where {} asked",
                claims["oid"], expected.oid
            ));
        }
        Ok(())
    }
}
