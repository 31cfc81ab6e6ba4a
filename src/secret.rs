//! A redacting wrapper for every value that must never reach a log, an error or a response by accident:
//! the broker's client secret, callers' bearer tokens, OBO assertions and issued access tokens.

use std::fmt;
use std::sync::Arc;

/// A value that must never be printed. It has no `Display` and no `Serialize`; `Debug` prints
/// `Secret([REDACTED])`, and the one way to read it, [`Secret::expose`], is easy to find in review.
/// Shared (`Arc`), so the copies a cached token hands to each request cost no allocation.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Arc<str>);

impl Secret {
    pub fn new(value: impl Into<Arc<str>>) -> Self {
        Self(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret([REDACTED])")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_value() {
        let secret = Secret::new("hunter2");
        assert_eq!(format!("{secret:?}"), "Secret([REDACTED])");
        assert_eq!(secret.expose(), "hunter2");
    }
}
