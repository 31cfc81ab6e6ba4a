//! Sealing of the one secret a record holds, the subject's refresh token: AES-256-GCM-SIV through
//! aws-lc-rs with a random 96-bit nonce per seal, the delegation id as associated data (a sealed value
//! moved into another record does not open), and the key version written beside the ciphertext.
//!
//! The keyring holds every version of the sealing key: new seals use the newest, older ones still open,
//! and a value sealed under a version the keyring does not hold is refused.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use arc_swap::ArcSwap;
use aws_lc_rs::aead::{AES_256_GCM_SIV, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde::{Deserialize, Serialize};

use super::id::{DelegationId, RandomUnavailable};
use crate::secret::Secret;

/// Length of a sealing key: 256 bits.
pub const KEY_BYTES: usize = 32;

/// A sealed secret as the record stores it: key version, nonce and ciphertext with its tag.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SealedSecret {
    pub key_version: String,
    /// base64url, 12 bytes.
    nonce: String,
    /// base64url: ciphertext followed by the 16-byte tag.
    ciphertext: String,
}

impl fmt::Debug for SealedSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SealedSecret")
            .field("key_version", &self.key_version)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SealError {
    /// The keyring has no key yet (the Key Vault secret was never read).
    #[error("no sealing key is loaded")]
    NoKey,
    /// Sealed under a key version this keyring does not hold.
    #[error("sealed under an unknown key version")]
    UnknownKeyVersion,
    /// The ciphertext, nonce or associated data was altered, or does not belong to this delegation.
    #[error("sealed value does not open")]
    Tampered,
    #[error(transparent)]
    Random(#[from] RandomUnavailable),
}

/// A key version's material is not 32 bytes of base64.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a sealing key must be 32 random bytes in base64")]
pub struct BadKey;

/// One key version.
struct SealingKey {
    key: LessSafeKey,
}

impl SealingKey {
    fn new(material: &[u8]) -> Result<Self, BadKey> {
        if material.len() != KEY_BYTES {
            return Err(BadKey);
        }
        let unbound = UnboundKey::new(&AES_256_GCM_SIV, material).map_err(|_| BadKey)?;
        Ok(Self {
            key: LessSafeKey::new(unbound),
        })
    }
}

/// The key versions loaded at one time, and which is newest.
pub struct Keyring {
    keys: BTreeMap<String, SealingKey>,
    newest: Option<String>,
}

impl Keyring {
    /// No key: every seal fails with [`SealError::NoKey`], every open with `UnknownKeyVersion`.
    pub fn empty() -> Self {
        Self {
            keys: BTreeMap::new(),
            newest: None,
        }
    }

    /// One random key for this process only (`BROKER_DELEGATION_STORE=memory` without a key name).
    pub fn random() -> Result<Self, RandomUnavailable> {
        let mut material = [0u8; KEY_BYTES];
        SystemRandom::new()
            .fill(&mut material)
            .map_err(|_| RandomUnavailable)?;
        let mut version = [0u8; 12];
        SystemRandom::new()
            .fill(&mut version)
            .map_err(|_| RandomUnavailable)?;
        let version = format!("process-{}", URL_SAFE_NO_PAD.encode(version));
        Self::from_versions(vec![(version, material.to_vec())]).map_err(|_| RandomUnavailable)
    }

    /// Key versions oldest first, each with its raw 32-byte material; the last one seals.
    pub fn from_versions(versions: Vec<(String, Vec<u8>)>) -> Result<Self, BadKey> {
        let mut keys = BTreeMap::new();
        let mut newest = None;
        for (version, material) in versions {
            keys.insert(version.clone(), SealingKey::new(&material)?);
            newest = Some(version);
        }
        Ok(Self { keys, newest })
    }

    /// Key versions oldest first, each the base64 text of the Key Vault secret's version.
    pub fn from_base64_versions(versions: Vec<(String, &str)>) -> Result<Self, BadKey> {
        let decoded = versions
            .into_iter()
            .map(|(version, text)| {
                let material = STANDARD.decode(text.trim()).map_err(|_| BadKey)?;
                Ok((version, material))
            })
            .collect::<Result<Vec<_>, BadKey>>()?;
        Self::from_versions(decoded)
    }

    /// The versions held, never the keys (for health).
    pub fn versions(&self) -> Vec<String> {
        self.keys.keys().cloned().collect()
    }

    /// The version new seals use.
    pub fn newest_version(&self) -> Option<&str> {
        self.newest.as_deref()
    }

    /// Seals `secret` for delegation `id` under the newest key.
    pub fn seal(&self, id: &DelegationId, secret: &Secret) -> Result<SealedSecret, SealError> {
        let version = self.newest.as_ref().ok_or(SealError::NoKey)?;
        let key = self.keys.get(version).ok_or(SealError::NoKey)?;
        let mut nonce = [0u8; NONCE_LEN];
        SystemRandom::new()
            .fill(&mut nonce)
            .map_err(|_| RandomUnavailable)?;
        let mut in_out = secret.expose().as_bytes().to_vec();
        key.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(aad(version, id).as_slice()),
                &mut in_out,
            )
            .map_err(|_| SealError::Tampered)?;
        Ok(SealedSecret {
            key_version: version.clone(),
            nonce: URL_SAFE_NO_PAD.encode(nonce),
            ciphertext: URL_SAFE_NO_PAD.encode(in_out),
        })
    }

    /// Opens a value sealed for delegation `id`.
    pub fn open(&self, id: &DelegationId, sealed: &SealedSecret) -> Result<Secret, SealError> {
        let key = self
            .keys
            .get(&sealed.key_version)
            .ok_or(SealError::UnknownKeyVersion)?;
        let nonce: [u8; NONCE_LEN] = URL_SAFE_NO_PAD
            .decode(&sealed.nonce)
            .ok()
            .and_then(|nonce| nonce.try_into().ok())
            .ok_or(SealError::Tampered)?;
        let mut in_out = URL_SAFE_NO_PAD
            .decode(&sealed.ciphertext)
            .map_err(|_| SealError::Tampered)?;
        let plain = key
            .key
            .open_in_place(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(aad(&sealed.key_version, id).as_slice()),
                &mut in_out,
            )
            .map_err(|_| SealError::Tampered)?;
        let text = std::str::from_utf8(plain).map_err(|_| SealError::Tampered)?;
        Ok(Secret::new(text))
    }
}

/// The associated data: the delegation id and the key version, so neither can be swapped.
fn aad(version: &str, id: &DelegationId) -> Vec<u8> {
    format!("token-broker delegation {id} key {version}").into_bytes()
}

impl fmt::Debug for Keyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Keyring")
            .field("versions", &self.versions())
            .field("newest", &self.newest)
            .finish()
    }
}

/// The current keyring, swapped whole when the Key Vault secret is re-read; readers never wait.
#[derive(Clone)]
pub struct SharedKeyring(Arc<ArcSwap<Keyring>>);

impl SharedKeyring {
    pub fn new(keyring: Keyring) -> Self {
        Self(Arc::new(ArcSwap::from_pointee(keyring)))
    }

    pub fn current(&self) -> Arc<Keyring> {
        self.0.load_full()
    }

    /// Replaces the keyring (a refresh that read every version).
    pub fn replace(&self, keyring: Keyring) {
        self.0.store(Arc::new(keyring));
    }
}

impl fmt::Debug for SharedKeyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.current(), f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keyring(versions: &[(&str, u8)]) -> Keyring {
        Keyring::from_versions(
            versions
                .iter()
                .map(|(version, fill)| (version.to_string(), vec![*fill; KEY_BYTES]))
                .collect(),
        )
        .unwrap()
    }

    fn id() -> DelegationId {
        DelegationId::generate().unwrap()
    }

    #[test]
    fn a_sealed_secret_opens_for_its_delegation_and_hides_the_plaintext() {
        let (keyring, id) = (keyring(&[("v1", 1)]), id());
        let sealed = keyring
            .seal(&id, &Secret::new("refresh-token-value"))
            .unwrap();
        assert_eq!(
            keyring.open(&id, &sealed).unwrap().expose(),
            "refresh-token-value"
        );
        let stored = serde_json::to_string(&sealed).unwrap();
        assert!(!stored.contains("refresh-token-value"));
        assert_eq!(sealed.key_version, "v1");
    }

    #[test]
    fn new_seals_use_the_newest_version_and_older_versions_still_open() {
        let id = id();
        let old = keyring(&[("v1", 1)]).seal(&id, &Secret::new("rt")).unwrap();
        let rotated = keyring(&[("v1", 1), ("v2", 2)]);
        assert_eq!(rotated.open(&id, &old).unwrap().expose(), "rt");
        assert_eq!(
            rotated.seal(&id, &Secret::new("rt")).unwrap().key_version,
            "v2"
        );
    }

    #[test]
    fn a_value_sealed_under_an_unknown_version_is_refused() {
        let id = id();
        let sealed = keyring(&[("v1", 1)]).seal(&id, &Secret::new("rt")).unwrap();
        let other = keyring(&[("v2", 1)]);
        assert_eq!(
            other.open(&id, &sealed).err(),
            Some(SealError::UnknownKeyVersion)
        );
        let mut relabelled = sealed.clone();
        relabelled.key_version = "v2".into();
        assert_eq!(
            other.open(&id, &relabelled).err(),
            Some(SealError::Tampered)
        );
    }

    #[test]
    fn a_sealed_value_does_not_open_for_another_delegation_or_when_altered() {
        let (keyring, id) = (keyring(&[("v1", 1)]), id());
        let sealed = keyring.seal(&id, &Secret::new("rt")).unwrap();
        assert_eq!(
            keyring.open(&self::id(), &sealed).err(),
            Some(SealError::Tampered)
        );
        let mut altered = sealed.clone();
        let mut bytes = URL_SAFE_NO_PAD.decode(&altered.ciphertext).unwrap();
        bytes[0] ^= 1;
        altered.ciphertext = URL_SAFE_NO_PAD.encode(bytes);
        assert_eq!(keyring.open(&id, &altered).err(), Some(SealError::Tampered));
    }

    #[test]
    fn two_seals_of_one_value_differ() {
        let (keyring, id) = (keyring(&[("v1", 1)]), id());
        let secret = Secret::new("rt");
        assert_ne!(
            keyring.seal(&id, &secret).unwrap(),
            keyring.seal(&id, &secret).unwrap()
        );
    }

    #[test]
    fn keys_must_be_32_bytes_and_an_empty_keyring_cannot_seal() {
        assert_eq!(
            Keyring::from_base64_versions(vec![("v1".into(), "c2hvcnQ=")]).err(),
            Some(BadKey)
        );
        assert!(
            Keyring::from_base64_versions(vec![("v1".into(), &STANDARD.encode([7u8; 32]))]).is_ok()
        );
        assert_eq!(
            Keyring::empty().seal(&id(), &Secret::new("rt")).err(),
            Some(SealError::NoKey)
        );
        let debug = format!("{:?}", Keyring::random().unwrap());
        assert!(debug.contains("process-"));
    }
}
