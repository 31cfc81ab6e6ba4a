//! Compact JWTs: signing, parsing and RS256 verification against a set of keys. Only RS256 is ever
//! verified; the header's `alg` is read to refuse anything else, never to choose an algorithm.

use crate::keys::SigningKey;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Map, Value};
use std::sync::Arc;

/// Tokens longer than this are refused as malformed before any decoding.
const MAX_TOKEN_LEN: usize = 16 * 1024;

/// Signs `header.claims` with `key` (RS256, whatever the header claims).
pub fn encode(
    header: &Map<String, Value>,
    claims: &Map<String, Value>,
    key: &SigningKey,
) -> anyhow::Result<String> {
    encode_raw(header, &serde_json::to_vec(claims)?, key)
}

/// Signs `header.payload` with `key`, the payload bytes taken verbatim (so tests can sign payloads no
/// JSON map can hold: duplicated or deeply nested claims).
pub fn encode_raw(
    header: &Map<String, Value>,
    payload: &[u8],
    key: &SigningKey,
) -> anyhow::Result<String> {
    let signing_input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(header)?),
        URL_SAFE_NO_PAD.encode(payload)
    );
    let signature = key.sign(signing_input.as_bytes())?;
    Ok(format!(
        "{signing_input}.{}",
        URL_SAFE_NO_PAD.encode(signature)
    ))
}

/// A parsed, not yet verified, JWT.
pub struct Jwt {
    pub header: Map<String, Value>,
    pub claims: Map<String, Value>,
    pub encoded_header: String,
    signing_input: String,
    signature: Vec<u8>,
}

/// Why a signature was not accepted.
pub enum VerifyError {
    /// The header's `alg` is not RS256 (e.g. `none`, HS256).
    NotRs256,
    /// No published key has this `kid` (empty when the header has none).
    UnknownKey(String),
    /// The key was found but the signature does not match.
    BadSignature(String),
}

impl Jwt {
    /// Splits and decodes a compact JWT; `None` when it is not three base64url JSON parts.
    pub fn parse(token: &str) -> Option<Self> {
        if token.len() > MAX_TOKEN_LEN {
            return None;
        }
        let mut parts = token.split('.');
        let (header, claims, signature) = (parts.next()?, parts.next()?, parts.next()?);
        if parts.next().is_some() {
            return None;
        }
        Some(Self {
            header: decode_object(header)?,
            claims: decode_object(claims)?,
            encoded_header: header.to_owned(),
            signing_input: format!("{header}.{claims}"),
            signature: URL_SAFE_NO_PAD.decode(signature).ok()?,
        })
    }

    /// The key id: `kid`, or `x5t` for tokens that carry only a thumbprint.
    pub fn kid(&self) -> &str {
        ["kid", "x5t"]
            .iter()
            .find_map(|name| self.header.get(*name).and_then(Value::as_str))
            .unwrap_or("")
    }

    /// Checks the RS256 signature against `keys` and returns the key that made it.
    pub fn verify(&self, keys: &[Arc<SigningKey>]) -> Result<Arc<SigningKey>, VerifyError> {
        if self.header.get("alg").and_then(Value::as_str) != Some("RS256") {
            return Err(VerifyError::NotRs256);
        }
        let kid = self.kid();
        let key = keys
            .iter()
            .find(|key| key.kid == kid)
            .ok_or_else(|| VerifyError::UnknownKey(kid.to_owned()))?;
        if key.verify(self.signing_input.as_bytes(), &self.signature) {
            Ok(Arc::clone(key))
        } else {
            Err(VerifyError::BadSignature(kid.to_owned()))
        }
    }

    /// True when the signature verifies with `public_key` (PKCS#1 DER) under `algorithm`.
    pub fn verify_with(
        &self,
        algorithm: &'static aws_lc_rs::signature::RsaParameters,
        public_key: &[u8],
    ) -> bool {
        aws_lc_rs::signature::UnparsedPublicKey::new(algorithm, public_key)
            .verify(self.signing_input.as_bytes(), &self.signature)
            .is_ok()
    }

    pub fn str_claim(&self, name: &str) -> Option<&str> {
        self.claims.get(name).and_then(Value::as_str)
    }

    pub fn int_claim(&self, name: &str) -> Option<i64> {
        self.claims.get(name).and_then(Value::as_i64)
    }
}

fn decode_object(part: &str) -> Option<Map<String, Value>> {
    let bytes = URL_SAFE_NO_PAD.decode(part).ok()?;
    match serde_json::from_slice(&bytes).ok()? {
        Value::Object(map) => Some(map),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn object(value: Value) -> Map<String, Value> {
        value.as_object().cloned().unwrap_or_default()
    }

    #[test]
    fn signed_tokens_verify_and_tampered_ones_do_not() {
        let key = Arc::new(SigningKey::generate().expect("key"));
        let header = object(json!({"alg": "RS256", "kid": key.kid}));
        let token = encode(&header, &object(json!({"oid": "x"})), &key).expect("token");
        let jwt = Jwt::parse(&token).expect("parse");
        assert!(jwt.verify(std::slice::from_ref(&key)).is_ok());

        let forged = encode(
            &header,
            &object(json!({"oid": "y"})),
            &SigningKey::generate().expect("key"),
        )
        .expect("token");
        let jwt = Jwt::parse(&forged).expect("parse");
        assert!(matches!(
            jwt.verify(&[key]),
            Err(VerifyError::BadSignature(_))
        ));
    }

    #[test]
    fn non_jwts_are_refused() {
        assert!(Jwt::parse("a.b").is_none());
        assert!(Jwt::parse("e30.e30.e30.e30").is_none());
        assert!(Jwt::parse("bm90IGpzb24.e30.").is_none());
    }
}
