//! What the fuzz targets share: the fuzzing RSA key that signs tokens and is the one key the validator
//! trusts, and the checks every accepted token must pass.
//!
//! The key is multi-prime RSA (32 primes of 64 bits, e = 65537). Its public half is an ordinary 2048-bit
//! RSA key to the validator; its small factors make signing a few microseconds instead of about a
//! millisecond, so genuinely signed inputs reach the claim rules at the fuzzer's full speed.

use std::sync::OnceLock;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use num_bigint::BigUint;
use serde_json::Value;
use token_broker::broker::caller::Caller;
use token_broker::fuzz_entry_points::{
    BROKER, FixedTenant, KID, SKEW, TENANT, V1_ISSUER, V2_ISSUER,
};

const PRIMES: &str = include_str!("../signing-key-primes.txt");
const E: u64 = 65_537;
/// DER prefix of a PKCS#1 v1.5 SHA-256 DigestInfo (RFC 8017 §9.2, note 1).
const SHA256_DIGEST_INFO: [u8; 19] = [
    0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01, 0x05,
    0x00, 0x04, 0x20,
];

/// The fuzzing key: for each prime, the private exponent modulo `p - 1` and the CRT coefficient.
pub struct SigningKey {
    modulus: BigUint,
    factors: Vec<Factor>,
}

struct Factor {
    prime: u64,
    exponent: u64,
    /// `(n / p) * ((n / p)^-1 mod p)`: 1 modulo this prime, 0 modulo the others.
    coefficient: BigUint,
}

impl SigningKey {
    fn load() -> Self {
        let primes: Vec<u64> = PRIMES
            .lines()
            .filter(|line| !line.starts_with('#') && !line.is_empty())
            .map(|line| u64::from_str_radix(line, 16).expect("prime in hex"))
            .collect();
        let modulus: BigUint = primes.iter().map(|&p| BigUint::from(p)).product();
        let factors = primes
            .iter()
            .map(|&prime| {
                let rest = &modulus / prime;
                let rest_mod_p = (&rest % prime).iter_u64_digits().next().unwrap_or(0);
                let inverse = pow_mod(rest_mod_p, prime - 2, prime);
                Factor {
                    prime,
                    exponent: inverse_mod(E, prime - 1),
                    coefficient: (rest * inverse) % &modulus,
                }
            })
            .collect();
        Self { modulus, factors }
    }

    /// The modulus as a JWKS `n` field.
    pub fn modulus_b64url(&self) -> String {
        URL_SAFE_NO_PAD.encode(self.modulus.to_bytes_be())
    }

    /// An RS256 (RSASSA-PKCS1-v1_5 with SHA-256) signature of `message`.
    pub fn sign(&self, message: &[u8]) -> Vec<u8> {
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, message);
        let len = self.modulus.bits().div_ceil(8) as usize;
        let mut encoded = vec![0xff; len];
        encoded[0] = 0;
        encoded[1] = 1;
        let tail = SHA256_DIGEST_INFO.len() + 32;
        encoded[len - tail - 1] = 0;
        encoded[len - tail..len - 32].copy_from_slice(&SHA256_DIGEST_INFO);
        encoded[len - 32..].copy_from_slice(digest.as_ref());
        let m = BigUint::from_bytes_be(&encoded);
        let mut signature = BigUint::ZERO;
        for factor in &self.factors {
            let residue = (&m % factor.prime).iter_u64_digits().next().unwrap_or(0);
            signature += &factor.coefficient * pow_mod(residue, factor.exponent, factor.prime);
        }
        let bytes = (signature % &self.modulus).to_bytes_be();
        let mut padded = vec![0; len - bytes.len()];
        padded.extend_from_slice(&bytes);
        padded
    }

    /// A compact JWS of `header` and `payload` as given (not re-encoded: they may be malformed).
    pub fn sign_token(&self, header: &[u8], payload: &[u8]) -> String {
        let input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header),
            URL_SAFE_NO_PAD.encode(payload)
        );
        let signature = URL_SAFE_NO_PAD.encode(self.sign(input.as_bytes()));
        format!("{input}.{signature}")
    }
}

fn pow_mod(base: u64, mut exponent: u64, modulus: u64) -> u64 {
    let (mut result, mut base) = (1u128, u128::from(base) % u128::from(modulus));
    let modulus = u128::from(modulus);
    while exponent > 0 {
        if exponent & 1 == 1 {
            result = result * base % modulus;
        }
        base = base * base % modulus;
        exponent >>= 1;
    }
    result as u64
}

fn inverse_mod(value: u64, modulus: u64) -> u64 {
    let (mut old_r, mut r) = (i128::from(value), i128::from(modulus));
    let (mut old_s, mut s) = (1i128, 0i128);
    while r != 0 {
        let q = old_r / r;
        (old_r, r) = (r, old_r - q * r);
        (old_s, s) = (s, old_s - q * s);
    }
    assert_eq!(old_r, 1, "e is not invertible modulo p - 1");
    old_s.rem_euclid(i128::from(modulus)) as u64
}

pub fn signing_key() -> &'static SigningKey {
    static KEY: OnceLock<SigningKey> = OnceLock::new();
    KEY.get_or_init(SigningKey::load)
}

/// The validator, trusting only the fuzzing key.
pub fn tenant() -> &'static FixedTenant {
    static TENANT: OnceLock<FixedTenant> = OnceLock::new();
    TENANT.get_or_init(|| {
        FixedTenant::new(&signing_key().modulus_b64url()).expect("fuzzing key is a valid RSA key")
    })
}

/// What an accepted token must be: signed RS256 by the trusted key, from the tenant, for the broker,
/// current, an access token of another app, and the caller the validator reports.
pub fn assert_sound(token: &str, caller: &Caller) {
    let segments: Vec<&str> = token.split('.').collect();
    assert_eq!(
        segments.len(),
        3,
        "accepted a token that is not a compact JWS"
    );
    let decode = |segment: &str| -> Value {
        let bytes = URL_SAFE_NO_PAD
            .decode(segment)
            .expect("accepted non-base64url");
        serde_json::from_slice(&bytes).expect("accepted a segment that is not JSON")
    };
    let (header, claims) = (decode(segments[0]), decode(segments[1]));
    assert_eq!(header["alg"], "RS256", "accepted alg {}", header["alg"]);
    assert_eq!(header["kid"], KID);
    assert!(header.get("crit").is_none(), "accepted a crit header");
    assert_eq!(claims["tid"], TENANT, "accepted another tenant");
    // RFC 7519 §4.1.3: `aud` is one string or an array; one of its values must name the broker.
    let ours = |aud: &Value| aud == BROKER || aud.as_str() == Some(&format!("api://{BROKER}"));
    let aud = &claims["aud"];
    assert!(
        ours(aud) || aud.as_array().is_some_and(|values| values.iter().any(ours)),
        "accepted audience {aud}"
    );
    let iss = claims["iss"].as_str().expect("accepted without iss");
    assert!(
        iss == V1_ISSUER || iss == V2_ISSUER,
        "accepted issuer {iss}"
    );
    let now = token_broker::clock::now();
    let exp = claims["exp"]
        .as_u64()
        .expect("accepted without numeric exp");
    assert!(exp + SKEW.as_secs() > now, "accepted an expired token");
    // RFC 7519 §2: a NumericDate may be non-integer (the campaign found `"nbf":17000.0000` accepted).
    let nbf = claims["nbf"]
        .as_f64()
        .expect("accepted without numeric nbf");
    assert!(
        nbf <= (now + SKEW.as_secs()) as f64,
        "accepted a token not yet valid"
    );
    assert_eq!(caller.expires_at, exp);
    assert_eq!(
        claims["oid"],
        caller.oid.as_str(),
        "caller is not the token's oid"
    );
    assert_eq!(caller.tenant.as_str(), TENANT);
    for app in ["appid", "azp"] {
        let value = claims[app].as_str().unwrap_or_default();
        assert!(
            !value.eq_ignore_ascii_case(BROKER),
            "accepted a token whose {app} is the broker"
        );
    }
    assert!(
        claims.get("nonce").is_none() && claims.get("at_hash").is_none(),
        "accepted an ID token"
    );
}
