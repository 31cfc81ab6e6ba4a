//! SHA-256 digests used as cache keys, so no cache ever holds a bearer token or secret as its key.

use aws_lc_rs::digest::{SHA256, digest};

#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Digest([u8; 32]);

impl Digest {
    /// Digest of the parts, each length-prefixed so that ("ab", "c") and ("a", "bc") differ. For short
    /// parts (cache-key fields); a whole token goes through [`Digest::of_bytes`] without a copy.
    pub fn of(parts: &[&[u8]]) -> Self {
        let mut input = Vec::with_capacity(parts.iter().map(|p| p.len() + 8).sum());
        for part in parts {
            input.extend_from_slice(&(part.len() as u64).to_be_bytes());
            input.extend_from_slice(part);
        }
        Self::of_bytes(&input)
    }

    /// Digest of one byte string, in one call (no hashing context to set up and tear down).
    pub fn of_bytes(bytes: &[u8]) -> Self {
        let mut out = [0u8; 32];
        out.copy_from_slice(digest(&SHA256, bytes).as_ref());
        Self(out)
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_are_length_prefixed() {
        assert!(Digest::of(&[b"ab", b"c"]) != Digest::of(&[b"a", b"bc"]));
        assert!(Digest::of(&[b"ab", b"c"]) == Digest::of(&[b"ab", b"c"]));
    }
}
