//! The delegation bearer a sandbox presents: `tbdlg_` + base64url(delegation id ‖ 256 random bits) +
//! base64url(checksum), 78 characters. The fixed prefix lets secret scanners find leaked bearers; the
//! checksum (the first 48 bits of SHA-256 over prefix and body, as GitHub's tokens carry a CRC32) lets a
//! malformed or altered bearer be refused without a store read. The store keeps only [`BearerHash`].

use std::fmt;

use aws_lc_rs::constant_time::verify_slices_are_equal;
use aws_lc_rs::digest::{SHA256, digest};
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::id::{DelegationId, ID_BYTES, RandomUnavailable};
use crate::secret::Secret;

/// What every delegation bearer starts with.
pub const BEARER_PREFIX: &str = "tbdlg_";

const SECRET_BYTES: usize = 32;
const BODY_BYTES: usize = ID_BYTES + SECRET_BYTES;
const CHECKSUM_BYTES: usize = 6;
/// base64url without padding: 48 bytes → 64 characters, 6 → 8.
const BODY_CHARS: usize = BODY_BYTES / 3 * 4;
const CHECKSUM_CHARS: usize = CHECKSUM_BYTES / 3 * 4;
/// The length of every delegation bearer.
pub const BEARER_LEN: usize = BEARER_PREFIX.len() + BODY_CHARS + CHECKSUM_CHARS;

/// A well-formed delegation bearer: the id it names, and the whole text kept as a [`Secret`].
#[derive(Clone)]
pub struct Bearer {
    id: DelegationId,
    text: Secret,
}

/// The text is not a delegation bearer, or was altered. Deliberately carries no detail: every malformed
/// bearer gets the same answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("not a well-formed delegation bearer")]
pub struct Malformed;

/// Whether `token` is meant as a delegation bearer (it has the prefix), so the HTTP layer can route it
/// away from JWT validation. Says nothing about validity: [`parse`] decides that.
pub fn looks_like_delegation_bearer(token: &str) -> bool {
    token.starts_with(BEARER_PREFIX)
}

/// Parses a bearer: prefix, length, alphabet and checksum. Never panics, reads no store; the checksum
/// is compared in constant time.
pub fn parse(text: &str) -> Result<Bearer, Malformed> {
    let rest = text.strip_prefix(BEARER_PREFIX).ok_or(Malformed)?;
    if text.len() != BEARER_LEN || !rest.is_ascii() {
        return Err(Malformed);
    }
    let (body, checksum) = rest.split_at_checked(BODY_CHARS).ok_or(Malformed)?;
    let decoded = URL_SAFE_NO_PAD.decode(body).map_err(|_| Malformed)?;
    let presented = URL_SAFE_NO_PAD.decode(checksum).map_err(|_| Malformed)?;
    // base64 accepts non-canonical trailing bits; re-encoding rules out two spellings of one bearer.
    if URL_SAFE_NO_PAD.encode(&decoded) != body || URL_SAFE_NO_PAD.encode(&presented) != checksum {
        return Err(Malformed);
    }
    verify_slices_are_equal(&checksum_of(body), &presented).map_err(|_| Malformed)?;
    let id: [u8; ID_BYTES] = decoded
        .get(..ID_BYTES)
        .and_then(|id| id.try_into().ok())
        .ok_or(Malformed)?;
    Ok(Bearer {
        id: DelegationId::from_bytes(id),
        text: Secret::new(text),
    })
}

impl Bearer {
    /// A new bearer for delegation `id`, with 256 bits from the OS random generator.
    pub fn generate(id: &DelegationId) -> Result<Self, RandomUnavailable> {
        let mut body = [0u8; BODY_BYTES];
        let (id_part, secret_part) = body.split_at_mut(ID_BYTES);
        id_part.copy_from_slice(id.as_bytes());
        SystemRandom::new()
            .fill(secret_part)
            .map_err(|_| RandomUnavailable)?;
        let body = URL_SAFE_NO_PAD.encode(body);
        let checksum = URL_SAFE_NO_PAD.encode(checksum_of(&body));
        Ok(Self {
            id: id.clone(),
            text: Secret::new(format!("{BEARER_PREFIX}{body}{checksum}")),
        })
    }

    /// The delegation this bearer names (not yet proven: the store's hash decides).
    pub fn id(&self) -> &DelegationId {
        &self.id
    }

    /// The whole bearer, for the one answer that hands it out.
    pub fn expose(&self) -> &str {
        self.text.expose()
    }

    /// The hash the store keeps in place of the bearer.
    pub fn hash(&self) -> BearerHash {
        BearerHash::of(self.text.expose())
    }
}

impl fmt::Debug for Bearer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Bearer")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

fn checksum_of(body: &str) -> [u8; CHECKSUM_BYTES] {
    let hash = digest(&SHA256, format!("{BEARER_PREFIX}{body}").as_bytes());
    let mut checksum = [0u8; CHECKSUM_BYTES];
    for (out, byte) in checksum.iter_mut().zip(hash.as_ref()) {
        *out = *byte;
    }
    checksum
}

/// SHA-256 of a whole bearer. The bearer holds 256 random bits, so a plain hash is enough: there is
/// nothing to guess, and a stolen store yields no usable bearer. Stored as base64url.
#[derive(Clone, PartialEq, Eq)]
pub struct BearerHash([u8; 32]);

impl BearerHash {
    fn of(bearer: &str) -> Self {
        let mut hash = [0u8; 32];
        hash.copy_from_slice(digest(&SHA256, bearer.as_bytes()).as_ref());
        Self(hash)
    }

    /// Whether `bearer` is the one this hash was made from, compared in constant time.
    pub fn matches(&self, bearer: &Bearer) -> bool {
        self.equals(&bearer.hash())
    }

    /// Constant-time equality, for checking one presented bearer against many stored hashes.
    pub(crate) fn equals(&self, other: &BearerHash) -> bool {
        verify_slices_are_equal(&self.0, &other.0).is_ok()
    }
}

impl fmt::Debug for BearerHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("BearerHash(..)")
    }
}

impl Serialize for BearerHash {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&URL_SAFE_NO_PAD.encode(self.0))
    }
}

impl<'de> Deserialize<'de> for BearerHash {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        let bytes = URL_SAFE_NO_PAD
            .decode(&text)
            .map_err(|_| serde::de::Error::custom("bearer hash is not base64url"))?;
        let hash = <[u8; 32]>::try_from(bytes)
            .map_err(|_| serde::de::Error::custom("bearer hash is not 32 bytes"))?;
        Ok(Self(hash))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bearer() -> Bearer {
        Bearer::generate(&DelegationId::generate().unwrap()).unwrap()
    }

    #[test]
    fn a_generated_bearer_parses_back_to_its_delegation() {
        let bearer = bearer();
        let parsed = parse(bearer.expose()).unwrap();
        assert_eq!(parsed.id(), bearer.id());
        assert_eq!(bearer.expose().len(), BEARER_LEN);
        assert!(looks_like_delegation_bearer(bearer.expose()));
        assert!(bearer.hash().matches(&parsed));
    }

    #[test]
    fn every_one_character_change_is_refused_by_the_checksum() {
        let text = bearer().expose().to_owned();
        for position in BEARER_PREFIX.len()..text.len() {
            for replacement in ['A', 'z', '0', '-', '_'] {
                let mut changed = text.clone().into_bytes();
                if changed[position] == replacement as u8 {
                    continue;
                }
                changed[position] = replacement as u8;
                let changed = String::from_utf8(changed).unwrap();
                assert_eq!(parse(&changed).err(), Some(Malformed), "{position}");
            }
        }
    }

    #[test]
    fn malformed_texts_are_refused() {
        let text = bearer().expose().to_owned();
        for case in [
            String::new(),
            BEARER_PREFIX.to_owned(),
            text[..text.len() - 1].to_owned(),
            format!("{text}A"),
            text.replacen(BEARER_PREFIX, "tbdlx_", 1),
            format!("{}é{}", &text[..10], &text[12..]),
            "eyJhbGciOiJSUzI1NiJ9.e30.c2ln".to_owned(),
        ] {
            assert_eq!(parse(&case).err(), Some(Malformed), "{case:?}");
        }
    }

    #[test]
    fn the_fuzz_seeds_start_from_genuine_bearers() {
        let seeds =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/seeds/delegation_bearer");
        for seed in ["seed-00", "seed-01", "seed-02"] {
            let text = std::fs::read_to_string(seeds.join(seed)).unwrap();
            assert!(parse(&text).is_ok(), "{seed} is not a genuine bearer");
        }
    }

    #[test]
    fn another_bearer_of_the_same_delegation_does_not_match_the_hash() {
        let id = DelegationId::generate().unwrap();
        let (first, second) = (
            Bearer::generate(&id).unwrap(),
            Bearer::generate(&id).unwrap(),
        );
        assert!(!first.hash().matches(&second));
    }

    #[test]
    fn debug_and_the_stored_hash_never_show_the_bearer() {
        let bearer = bearer();
        let secret_part = &bearer.expose()[BEARER_PREFIX.len() + 22..BEARER_PREFIX.len() + 64];
        assert!(!format!("{bearer:?}").contains(secret_part));
        let stored = serde_json::to_string(&bearer.hash()).unwrap();
        assert!(!stored.contains(secret_part));
        let back: BearerHash = serde_json::from_str(&stored).unwrap();
        assert!(back.matches(&bearer));
    }
}
