//! SHA-256 digests used as cache keys, so no cache ever holds a bearer token or secret as its key.

use aws_lc_rs::digest::{Context, SHA256};

#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Digest([u8; 32]);

impl Digest {
    /// Digest of the parts, each length-prefixed so that ("ab", "c") and ("a", "bc") differ.
    pub fn of(parts: &[&[u8]]) -> Self {
        let mut context = Context::new(&SHA256);
        for part in parts {
            context.update(&(part.len() as u64).to_be_bytes());
            context.update(part);
        }
        let mut out = [0u8; 32];
        out.copy_from_slice(context.finish().as_ref());
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
