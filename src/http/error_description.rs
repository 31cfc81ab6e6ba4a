//! The fixed sentence each error code answers with: at most it names a setting or lists configured
//! alias names (the `ErrorContext`), never input or upstream text.

use crate::http::error::{ApiError, ErrorContext};

impl ApiError {
    /// A fixed sentence per code. At most it names a setting or lists configured alias names.
    pub fn description(&self, context: &ErrorContext<'_>) -> String {
        let text = match self.code() {
            "invalid_request" => {
                "The request body must be a JSON object with the documented fields and types."
            }
            "payload_too_large" => "The request body is larger than the broker accepts.",
            "unsupported_media_type" => "The request body must be sent as application/json.",
            "method_not_allowed" => "This route does not accept that HTTP method.",
            "not_found" => "No such route.",
            "invalid_scope" => {
                "targetScope must be exactly one scope of the form <resource>/.default."
            }
            "invalid_token" => {
                "The caller token is missing, malformed, expired or not issued for this broker by this tenant."
            }
            "insufficient_scope" => "The user token lacks the delegated scope the broker requires.",
            "caller_not_allowed" => "The caller is not allowed to obtain the broker's tokens.",
            "scope_not_allowed" => "The requested scope is not in the broker's scope map.",
            "unknown_audience" => {
                return format!(
                    "The audience is not a known alias. Known aliases: {}.",
                    context.known_aliases.join(", ")
                );
            }
            "lane_not_allowed" => "An app-only caller cannot use the user lane; use lane service.",
            "delegations_not_enabled" => {
                "Delegations are not enabled on this broker (BROKER_DELEGATION_STORE is none)."
            }
            "delegation_not_found" => "No delegation with this id exists for this caller.",
            "delegation_not_active" => {
                "The delegation is revoked, expired or needs the user to sign in again; create a new one."
            }
            "audience_not_allowed" => {
                "An audience is outside the delegator's delegate grant or the subject's own user-lane grants."
            }
            "invalid_subject_token" => {
                "The subject token is missing, malformed, expired or not a user token issued for this broker by this tenant."
            }
            "audience_not_delegated" => "The audience is not one of this delegation's audiences.",
            "lane_not_delegated" => "The lane is not this delegation's lane.",
            "reauthentication_required" => {
                "The user's sign-in behind this delegation was refused by Microsoft Entra ID; the delegator must have the user sign in again and create a new delegation."
            }
            "delegation_store_unavailable" => {
                "The delegation store could not be reached within the revocation bound; retry after the indicated delay."
            }
            "revision_mismatch" => {
                "The request pins a configuration revision other than the broker's current one."
            }
            "rate_limited" => {
                "Too many requests from this caller or in total; retry after the indicated delay."
            }
            "signing_keys_unavailable" => {
                "The broker has not loaded the tenant's signing keys yet; retry shortly."
            }
            "policy_unavailable" => {
                "The broker has not loaded its policy document yet; retry shortly."
            }
            "allowlist_misconfigured" => {
                "The broker could not load its allowlist from Key Vault (access denied, missing or unparseable secret); check BROKER_KEY_VAULT_URL, BROKER_ALLOWLIST_SECRET_NAME and the managed identity's access."
            }
            "allowlist_stale" => {
                "The broker could not confirm its allowlist with Key Vault for longer than BROKER_ALLOWLIST_MAX_AGE_SECONDS and refuses app callers until it can; retry later."
            }
            "client_secret_misconfigured" => {
                "The broker could not load its client secret from Key Vault; check BROKER_CLIENT_SECRET_NAME and the managed identity's access."
            }
            "client_certificate_misconfigured" => {
                "The broker could not load a usable client certificate (missing, unreadable, not RSA of 2048 bits or more, or expired); check BROKER_CERTIFICATE_NAME or BROKER_CERTIFICATE_PATH and the broker's log."
            }
            "managed_identity_unavailable" => {
                "The managed identity endpoint gave the broker no token for its federated credential; retry later, and check BROKER_MANAGED_IDENTITY_CLIENT_ID."
            }
            "key_vault_unavailable" => {
                "Key Vault or the managed identity endpoint could not be reached; retry later."
            }
            "entra_unavailable" => {
                "Microsoft Entra ID could not be reached or failed; retry later."
            }
            "entra_invalid_response" => {
                "Microsoft Entra ID answered with something that is not a token response."
            }
            "entra_error" => "Microsoft Entra ID refused the token request.",
            "upstream_throttled" => {
                "Microsoft Entra ID is throttling the broker; retry after the indicated delay."
            }
            "broker_credentials_rejected" => {
                "Microsoft Entra ID rejected the broker's own credential, or it has expired; check BROKER_CLIENT_ID and the credential BROKER_CREDENTIAL selects (the broker's log names the AADSTS code)."
            }
            "scope_rejected_by_entra" => {
                "Microsoft Entra ID does not know the requested resource in this tenant; check the scope map settings."
            }
            "interaction_required" => {
                "The user must sign in again to satisfy a Conditional Access or MFA requirement; retry with a token that carries the claims challenge."
            }
            "consent_required" => {
                return format!(
                    "The user or an administrator must consent to the broker's delegated access to {} (AADSTS65001).",
                    context.resource.unwrap_or("the requested resource")
                );
            }
            _ => "The request could not be served.",
        };
        text.to_owned()
    }
}
