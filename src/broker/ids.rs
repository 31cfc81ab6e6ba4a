//! Entra identifiers (tenant, client and object ids) as canonical lower-case GUIDs.
//!
//! Parsing accepts only the 8-4-4-4-12 ASCII-hex form, so whitespace, braces and Unicode look-alikes of an
//! allowed id never compare equal to it; letter case is folded because Entra treats GUIDs case-insensitively.

use std::fmt::{self, Write};
use std::str::FromStr;

/// A GUID in canonical lower-case form. Equality is exact on that form.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Guid(Box<str>);

/// A tenant (directory) id.
pub type TenantId = Guid;
/// An application (client) id.
pub type ClientId = Guid;
/// A user's or service principal's object id (`oid`).
pub type ObjectId = Guid;

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("expected a GUID such as 00000000-0000-0000-0000-000000000000")]
pub struct NotAGuid;

impl Guid {
    /// A random version-4 GUID (RFC 9562 §5.4), for correlation ids and assertion `jti`s.
    pub fn random_v4() -> Self {
        let mut bytes: [u8; 16] = rand::random();
        bytes[6] = (bytes[6] & 0x0f) | 0x40;
        bytes[8] = (bytes[8] & 0x3f) | 0x80;
        let mut text = String::with_capacity(36);
        for (i, byte) in bytes.iter().enumerate() {
            if matches!(i, 4 | 6 | 8 | 10) {
                text.push('-');
            }
            // Writing to a String cannot fail.
            let _ = write!(text, "{byte:02x}");
        }
        Self(text.into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Parses a GUID that is already in canonical lower-case form, as Entra writes `oid` and `tid` in
    /// tokens. A case variant of an allowed id in a token is a look-alike, not that id.
    pub fn parse_canonical(text: &str) -> Result<Self, NotAGuid> {
        let guid: Self = text.parse()?;
        if guid.as_str() == text {
            Ok(guid)
        } else {
            Err(NotAGuid)
        }
    }
}

impl FromStr for Guid {
    type Err = NotAGuid;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let bytes = text.as_bytes();
        if bytes.len() != 36 {
            return Err(NotAGuid);
        }
        let well_formed = bytes.iter().enumerate().all(|(i, b)| match i {
            8 | 13 | 18 | 23 => *b == b'-',
            _ => b.is_ascii_hexdigit(),
        });
        if well_formed {
            Ok(Self(text.to_ascii_lowercase().into()))
        } else {
            Err(NotAGuid)
        }
    }
}

impl fmt::Display for Guid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Guid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_v4_guids_are_canonical_version_4_and_distinct() {
        let (a, b) = (Guid::random_v4(), Guid::random_v4());
        assert_eq!(Guid::parse_canonical(a.as_str()), Ok(a.clone()));
        assert_eq!(a.as_str().as_bytes()[14], b'4');
        assert!(matches!(
            a.as_str().as_bytes()[19],
            b'8' | b'9' | b'a' | b'b'
        ));
        assert_ne!(a, b);
    }

    #[test]
    fn upper_case_guid_is_folded_to_lower_case() {
        let guid: Guid = "1A2B3C4D-5E6F-4A7B-8C9D-0E1F2A3B4C5D".parse().unwrap();
        assert_eq!(guid.as_str(), "1a2b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d");
    }

    #[test]
    fn canonical_parsing_refuses_case_variants() {
        let lower = "1a2b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d";
        assert!(Guid::parse_canonical(lower).is_ok());
        assert_eq!(Guid::parse_canonical(&lower.to_uppercase()), Err(NotAGuid));
    }

    #[test]
    fn look_alikes_of_a_guid_are_rejected() {
        for case in [
            " 1a2b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d",
            "1a2b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d ",
            "{1a2b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d}",
            "1a2b3c4d5e6f4a7b8c9d0e1f2a3b4c5d",
            "1a2b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5\u{0434}",
            "1a2b3c4d\u{2010}5e6f-4a7b-8c9d-0e1f2a3b4c5d",
            "\u{ff11}a2b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d",
            "",
        ] {
            assert_eq!(case.parse::<Guid>(), Err(NotAGuid), "{case:?}");
        }
    }
}
