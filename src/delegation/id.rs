//! A delegation's id: 128 bits from the OS random generator, written as 32 lower-case hex digits. It
//! names the record in the store and is carried inside every bearer of the delegation. It is not a
//! secret (it appears in URLs, answers and audit lines); the bearer's secret part is.

use std::fmt::{self, Write};
use std::str::FromStr;

use aws_lc_rs::rand::{SecureRandom, SystemRandom};

/// Length of the id in bytes.
pub(crate) const ID_BYTES: usize = 16;

/// A delegation id in canonical form (32 lower-case hex digits).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DelegationId([u8; ID_BYTES]);

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("expected a delegation id: 32 lower-case hex digits")]
pub struct NotADelegationId;

/// The OS random generator failed; nothing can be issued without it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the OS random generator failed")]
pub struct RandomUnavailable;

impl DelegationId {
    /// A new random id.
    pub fn generate() -> Result<Self, RandomUnavailable> {
        let mut bytes = [0u8; ID_BYTES];
        SystemRandom::new()
            .fill(&mut bytes)
            .map_err(|_| RandomUnavailable)?;
        Ok(Self(bytes))
    }

    pub(crate) fn from_bytes(bytes: [u8; ID_BYTES]) -> Self {
        Self(bytes)
    }

    pub(crate) fn as_bytes(&self) -> &[u8; ID_BYTES] {
        &self.0
    }
}

impl FromStr for DelegationId {
    type Err = NotADelegationId;

    /// Only the canonical form: upper-case or padded variants name no delegation.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let digits = text.as_bytes();
        if digits.len() != ID_BYTES * 2 {
            return Err(NotADelegationId);
        }
        let mut bytes = [0u8; ID_BYTES];
        for (byte, pair) in bytes.iter_mut().zip(digits.chunks_exact(2)) {
            let [high, low] = pair else {
                return Err(NotADelegationId);
            };
            *byte = (hex_value(*high)? << 4) | hex_value(*low)?;
        }
        Ok(Self(bytes))
    }
}

fn hex_value(digit: u8) -> Result<u8, NotADelegationId> {
    match digit {
        b'0'..=b'9' => Ok(digit - b'0'),
        b'a'..=b'f' => Ok(digit - b'a' + 10),
        _ => Err(NotADelegationId),
    }
}

impl fmt::Display for DelegationId {
    /// One write of the whole text: every redemption's audit line names the id.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut text = [0u8; 2 * ID_BYTES];
        for (pair, byte) in text.chunks_exact_mut(2).zip(self.0) {
            pair.copy_from_slice(&[hex_digit(byte >> 4), hex_digit(byte & 0x0f)]);
        }
        f.write_str(std::str::from_utf8(&text).map_err(|_| fmt::Error)?)
    }
}

/// The lower-case hex digit of a value below 16.
fn hex_digit(nibble: u8) -> u8 {
    if nibble < 10 {
        b'0' + nibble
    } else {
        b'a' + nibble - 10
    }
}

impl fmt::Debug for DelegationId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_char('"')?;
        fmt::Display::fmt(self, f)?;
        f.write_char('"')
    }
}

impl serde::Serialize for DelegationId {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for DelegationId {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_ids_round_trip_through_their_text_and_differ() {
        let (a, b) = (
            DelegationId::generate().unwrap(),
            DelegationId::generate().unwrap(),
        );
        assert_eq!(a.to_string().parse::<DelegationId>(), Ok(a.clone()));
        assert_eq!(a.to_string().len(), 32);
        assert_ne!(a, b);
    }

    #[test]
    fn only_the_canonical_form_parses() {
        let id = DelegationId::generate().unwrap().to_string();
        for case in [
            id.to_uppercase(),
            format!(" {id}"),
            id[1..].to_owned(),
            format!("{id}0"),
            String::new(),
            "g".repeat(32),
        ] {
            assert_eq!(
                case.parse::<DelegationId>(),
                Err(NotADelegationId),
                "{case:?}"
            );
        }
    }
}
