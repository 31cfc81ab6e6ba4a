//! Hand-built hostile caller tokens and what builds them: forgeries around genuine emulator tokens, the
//! published key as PEM or DER, and a key the tenant never published, held by the test.

use aws_lc_rs::encoding::{AsDer, Pkcs8V1Der};
use aws_lc_rs::hmac;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::{KeyPair, KeySize};
use aws_lc_rs::signature::{KeyPair as _, RSA_PKCS1_SHA256};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde_json::{Value, json};

use crate::helpers::assertions::{decode_claims, decode_header};
use crate::helpers::emulator::TestEmulator;
use crate::helpers::ids::{MSI_OID, OTHER_MSI_OID};

/// Named forgeries built around valid tokens for the allowlisted managed identity.
pub async fn hostile_corpus(emulator: &TestEmulator) -> Vec<(&'static str, String)> {
    let valid = emulator.msi_token().await;
    let claims = decode_claims(&valid);
    let kid = decode_header(&valid)["kid"].clone();
    let public_pem = public_key_pem(emulator, &kid).await;
    let other = emulator
        .mint(json!({"kind": "msi", "oid": OTHER_MSI_OID}))
        .await;
    let mut escalated = decode_claims(&other);
    escalated["oid"] = json!(MSI_OID);
    escalated["sub"] = json!(MSI_OID);
    vec![
        (
            "alg none, no signature",
            unsigned(&json!({"alg": "none", "typ": "JWT", "kid": kid}), &claims),
        ),
        (
            "HS256 keyed with the published RSA public key",
            hs256(&kid, &claims, public_pem.as_bytes()),
        ),
        (
            "RS256 signature under a header claiming HS256",
            emulator
                .mint(json!({"kind": "msi", "header": {"alg": "HS256"}}))
                .await,
        ),
        (
            "payload edited to another oid, signature kept",
            with_claims(&other, &escalated),
        ),
        (
            "unpublished key with a jku pointing elsewhere",
            emulator
                .mint(json!({"kind": "msi", "key": "unpublished",
                    "header": {"jku": "https://attacker.example/keys"}}))
                .await,
        ),
    ]
}

/// A genuine token for the allowlisted managed identity, with its claims and its header's `kid`.
pub async fn genuine_msi(emulator: &TestEmulator) -> (String, Value, Value) {
    let token = emulator.msi_token().await;
    let claims = decode_claims(&token);
    let kid = decode_header(&token)["kid"].clone();
    (token, claims, kid)
}

/// Unix seconds now, for time claims.
pub fn unix_now() -> i64 {
    let since_epoch = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970");
    i64::try_from(since_epoch.as_secs()).expect("seconds fit in i64")
}

/// `header.claims.` with an empty signature.
pub fn unsigned(header: &Value, claims: &Value) -> String {
    format!("{}.{}.", segment(header), segment(claims))
}

/// An HS256 token under `kid` whose HMAC key is `secret` (the confused-deputy forgery).
pub fn hs256(kid: &Value, claims: &Value, secret: &[u8]) -> String {
    let signing_input = format!(
        "{}.{}",
        segment(&json!({"alg": "HS256", "typ": "JWT", "kid": kid})),
        segment(claims)
    );
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret);
    let signature = hmac::sign(&key, signing_input.as_bytes());
    format!(
        "{signing_input}.{}",
        URL_SAFE_NO_PAD.encode(signature.as_ref())
    )
}

/// `token` with its payload replaced and its original signature kept.
pub fn with_claims(token: &str, claims: &Value) -> String {
    let parts: Vec<&str> = token.split('.').collect();
    format!("{}.{}.{}", parts[0], segment(claims), parts[2])
}

/// One base64url (unpadded) segment of compact JSON.
pub fn segment(value: &Value) -> String {
    URL_SAFE_NO_PAD.encode(value.to_string())
}

/// The PEM (SubjectPublicKeyInfo) of the published key `kid`.
pub async fn public_key_pem(emulator: &TestEmulator, kid: &Value) -> String {
    let spki = public_key_der(emulator, kid).await;
    let base64 = STANDARD.encode(spki);
    let lines: Vec<&str> = base64
        .as_bytes()
        .chunks(64)
        .map(|chunk| std::str::from_utf8(chunk).expect("base64 is ASCII"))
        .collect();
    format!(
        "-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n",
        lines.join("\n")
    )
}

/// The published JWK whose `kid` is `kid`.
pub async fn published_jwk(emulator: &TestEmulator, kid: &Value) -> Value {
    let jwks = published_keys(emulator).await;
    jwks["keys"]
        .as_array()
        .and_then(|keys| keys.iter().find(|k| k["kid"] == *kid))
        .cloned()
        .unwrap_or_else(|| panic!("kid {kid} not in the JWKS {jwks}"))
}

/// The DER SubjectPublicKeyInfo of the published key `kid`, built from the JWKS `n` and `e`.
pub async fn public_key_der(emulator: &TestEmulator, kid: &Value) -> Vec<u8> {
    let key = published_jwk(emulator, kid).await;
    let number = |field: &str| {
        URL_SAFE_NO_PAD
            .decode(key[field].as_str().expect("RSA JWK field"))
            .expect("base64url JWK field")
    };
    let rsa_public_key = der(
        0x30,
        &[integer(&number("n")), integer(&number("e"))].concat(),
    );
    let algorithm = [
        0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01, 0x05, 0x00,
    ];
    let bit_string = der(0x03, &[&[0u8][..], &rsa_public_key].concat());
    der(0x30, &[&algorithm[..], &bit_string].concat())
}

/// An RSA key the tenant never published, held by the test as an attacker would hold one: it signs
/// arbitrary bytes and can describe itself as a JWK or a self-signed certificate for `jwk`/`x5c` headers.
pub struct ForeignKey {
    key: KeyPair,
    pub kid: String,
}

impl ForeignKey {
    pub fn generate() -> Self {
        Self {
            key: KeyPair::generate(KeySize::Rsa2048).expect("generate an RSA key"),
            kid: "attacker-key-1".to_owned(),
        }
    }

    /// The public key as a JWK, the shape an embedded `jwk` header carries.
    pub fn jwk(&self) -> Value {
        let public = self.key.public_key();
        json!({
            "kty": "RSA",
            "use": "sig",
            "kid": self.kid,
            "n": URL_SAFE_NO_PAD.encode(public.modulus().big_endian_without_leading_zero()),
            "e": URL_SAFE_NO_PAD.encode(public.exponent().big_endian_without_leading_zero()),
        })
    }

    /// A self-signed certificate for this key, standard base64 DER as in an `x5c` header.
    pub fn certificate(&self) -> String {
        let pkcs8: Pkcs8V1Der = self.key.as_der().expect("export the key as PKCS#8");
        let key = rcgen::KeyPair::try_from(pkcs8.as_ref()).expect("rcgen reads the key");
        let certificate = rcgen::CertificateParams::new(vec!["attacker.example".to_owned()])
            .and_then(|params| params.self_signed(&key))
            .expect("self-sign a certificate");
        STANDARD.encode(certificate.der())
    }

    /// An RS256 token over `header` and `claims`.
    pub fn sign(&self, header: &Value, claims: &Value) -> String {
        self.sign_raw(header, claims.to_string().as_bytes())
    }

    /// An RS256 token whose payload segment encodes exactly `payload`, JSON or not.
    pub fn sign_raw(&self, header: &Value, payload: &[u8]) -> String {
        let input = format!("{}.{}", segment(header), URL_SAFE_NO_PAD.encode(payload));
        let mut signature = vec![0; self.key.public_modulus_len()];
        self.key
            .sign(
                &RSA_PKCS1_SHA256,
                &SystemRandom::new(),
                input.as_bytes(),
                &mut signature,
            )
            .expect("sign with RS256");
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature))
    }
}

/// The tenant's JWKS, fetched over HTTPS as any relying party would.
async fn published_keys(emulator: &TestEmulator) -> Value {
    let url = format!(
        "{}/{}/discovery/v2.0/keys",
        emulator.ready.authority, emulator.ready.tenant_id
    );
    let response = emulator
        .https_client()
        .get(url)
        .send()
        .await
        .expect("fetch the JWKS");
    assert_eq!(response.status(), 200, "JWKS request failed");
    response.json().await.expect("JWKS is JSON")
}

fn integer(magnitude: &[u8]) -> Vec<u8> {
    let needs_pad = magnitude.first().is_some_and(|b| b & 0x80 != 0);
    let content = if needs_pad {
        [&[0u8][..], magnitude].concat()
    } else {
        magnitude.to_vec()
    };
    der(0x02, &content)
}

fn der(tag: u8, content: &[u8]) -> Vec<u8> {
    let len = content.len();
    let mut out = vec![tag];
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes: Vec<u8> = len
            .to_be_bytes()
            .into_iter()
            .skip_while(|b| *b == 0)
            .collect();
        out.push(0x80 | bytes.len() as u8);
        out.extend(bytes);
    }
    out.extend_from_slice(content);
    out
}
