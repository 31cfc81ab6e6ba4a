//! The refresh tokens the tenant has issued (On-Behalf-Of with `offline_access`, and every refresh): opaque
//! random strings bound to one user's sign-in. An admin's "revoke sessions" invalidates every one of a
//! user's tokens issued until then; in strict mode a token is spent by its first redemption, so a client
//! that does not keep the newest one is found out. Entra's 90-day inactivity expiry is not emulated.

use crate::{clock, ids};
use serde_json::{Map, Value};
use std::collections::HashMap;

/// A user's identity claims (the shape `issue::Claims` has; named here so the store needs nothing of
/// token issuing).
pub type Claims = Map<String, Value>;

/// The sign-in a refresh token continues: the user's identity claims and when the token was issued.
#[derive(Clone)]
pub struct Grant {
    /// `oid`, `sub`, `name`, `upn`, `amr` and the other user claims of the original assertion.
    pub user: Claims,
    pub issued_at: i64,
}

impl Grant {
    pub fn user_oid(&self) -> &str {
        self.user
            .get("oid")
            .and_then(serde_json::Value::as_str)
            .unwrap_or_default()
    }
}

struct Entry {
    grant: Grant,
    redeemed: bool,
    /// When the user's sessions were revoked after this token was issued.
    revoked_at: Option<i64>,
}

/// Why a presented refresh token was not honoured.
pub enum Refusal {
    /// Never issued here (or malformed).
    Unknown,
    /// The user's sessions were revoked after the token was issued.
    Revoked { issued_at: i64, valid_from: i64 },
    /// Strict mode: the token was already redeemed once.
    AlreadyRedeemed,
}

#[derive(Default)]
pub struct RefreshTokens {
    tokens: HashMap<String, Entry>,
    /// A redeemed token cannot be redeemed again.
    pub strict: bool,
}

impl RefreshTokens {
    /// Issues a new refresh token for this sign-in.
    pub fn issue(&mut self, user: Claims) -> String {
        let token = format!("1.AQ{}", ids::random_b64url(96));
        let grant = Grant {
            user,
            issued_at: clock::now(),
        };
        self.tokens.insert(
            token.clone(),
            Entry {
                grant,
                redeemed: false,
                revoked_at: None,
            },
        );
        token
    }

    /// The sign-in behind `token`, marking the token redeemed.
    pub fn redeem(&mut self, token: &str) -> Result<Grant, Refusal> {
        let strict = self.strict;
        let entry = self.tokens.get_mut(token).ok_or(Refusal::Unknown)?;
        if let Some(valid_from) = entry.revoked_at {
            return Err(Refusal::Revoked {
                issued_at: entry.grant.issued_at,
                valid_from,
            });
        }
        if strict && entry.redeemed {
            return Err(Refusal::AlreadyRedeemed);
        }
        entry.redeemed = true;
        Ok(entry.grant.clone())
    }

    /// What an admin's "revoke sessions" does to refresh tokens: every token of the user issued until now
    /// stops working. Returns how many were revoked.
    pub fn revoke_user(&mut self, user_oid: &str) -> usize {
        let now = clock::now();
        let mut revoked = 0;
        for entry in self.tokens.values_mut() {
            if entry.revoked_at.is_none() && entry.grant.user_oid().eq_ignore_ascii_case(user_oid) {
                entry.revoked_at = Some(now);
                revoked += 1;
            }
        }
        revoked
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn user(oid: &str) -> Claims {
        let mut claims = Claims::new();
        claims.insert("oid".into(), json!(oid));
        claims
    }

    #[test]
    fn tokens_are_reusable_unless_strict() {
        let mut tokens = RefreshTokens::default();
        let token = tokens.issue(user("u1"));
        assert!(tokens.redeem(&token).is_ok());
        assert!(tokens.redeem(&token).is_ok());
        tokens.strict = true;
        assert!(matches!(
            tokens.redeem(&token),
            Err(Refusal::AlreadyRedeemed)
        ));
        let fresh = tokens.issue(user("u1"));
        assert!(tokens.redeem(&fresh).is_ok());
    }

    #[test]
    fn revoking_a_user_spares_other_users_and_later_tokens() {
        let mut tokens = RefreshTokens::default();
        let first = tokens.issue(user("u1"));
        let other = tokens.issue(user("u2"));
        assert_eq!(tokens.revoke_user("U1"), 1);
        assert!(matches!(
            tokens.redeem(&first),
            Err(Refusal::Revoked { .. })
        ));
        assert!(tokens.redeem(&other).is_ok());
        let later = tokens.issue(user("u1"));
        assert!(tokens.redeem(&later).is_ok());
        assert!(matches!(tokens.redeem("1.AQnope"), Err(Refusal::Unknown)));
    }
}
