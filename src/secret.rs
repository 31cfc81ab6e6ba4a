//! A redacting wrapper for every value that must never reach a log, an error or a response by accident:
//! the broker's client secret, callers' bearer tokens, OBO assertions and issued access tokens.

use std::fmt;
use std::sync::Arc;

use serde_json::value::RawValue;

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

/// An issued access token kept as a ready JSON string literal, so that every response embeds it without
/// escaping it again. The same rules as `Secret`: no `Display`, no `Serialize`, a redacted `Debug`, and
/// one greppable way out, [`SecretJson::expose_json`].
#[derive(Clone)]
pub struct SecretJson(Arc<RawValue>);

impl SecretJson {
    /// `None` unless `value` is printable ASCII that JSON carries verbatim (no quote, no backslash), as
    /// every access token Entra issues is.
    pub fn new(value: &str) -> Option<Self> {
        let verbatim = value
            .bytes()
            .all(|b| b.is_ascii_graphic() && b != b'"' && b != b'\\');
        if !verbatim {
            return None;
        }
        let literal = RawValue::from_string(format!("\"{value}\"")).ok()?;
        Some(Self(Arc::from(literal)))
    }

    pub fn expose_json(&self) -> &RawValue {
        &self.0
    }
}

impl fmt::Debug for SecretJson {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretJson([REDACTED])")
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

    #[test]
    fn token_json_is_a_verbatim_literal_and_never_debug_printed() {
        let token = SecretJson::new("eyJ0.eyJ1.c2ln").unwrap();
        assert_eq!(token.expose_json().get(), "\"eyJ0.eyJ1.c2ln\"");
        assert_eq!(format!("{token:?}"), "SecretJson([REDACTED])");
        assert!(SecretJson::new("a\"b").is_none());
        assert!(SecretJson::new("a\\b").is_none());
        assert!(SecretJson::new("a b").is_none());
    }
}
