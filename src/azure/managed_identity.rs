//! The Function App's managed identity (App Service identity endpoint) as an Azure SDK credential whose
//! cached tokens can be dropped.
//!
//! `azure_identity`'s `ManagedIdentityCredential` keeps each token until five minutes before it expires
//! and has no way to forget one. A resource can refuse a token long before that (the tenant's signing
//! keys rolled over, the grant was revoked), and the broker would then present the refused token for
//! the rest of its lifetime. `renew()` replaces the SDK credential, and its cache with it, so the next
//! token comes fresh from the identity endpoint.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use arc_swap::ArcSwap;
use azure_core::credentials::{AccessToken, TokenCredential, TokenRequestOptions};
use azure_core::http::ClientOptions;
use azure_identity::{ManagedIdentityCredential, ManagedIdentityCredentialOptions, UserAssignedId};

pub struct ManagedIdentity {
    options: ManagedIdentityCredentialOptions,
    current: ArcSwap<ManagedIdentityCredential>,
    renewals: AtomicU64,
}

impl ManagedIdentity {
    /// The system-assigned identity, or the user-assigned one `user_assigned` names.
    pub fn new(
        client_options: ClientOptions,
        user_assigned: Option<UserAssignedId>,
    ) -> azure_core::Result<Arc<Self>> {
        let options = ManagedIdentityCredentialOptions {
            user_assigned_id: user_assigned,
            client_options,
        };
        let current = ManagedIdentityCredential::new(Some(options.clone()))?;
        Ok(Arc::new(Self {
            options,
            current: ArcSwap::new(current),
            renewals: AtomicU64::new(0),
        }))
    }

    /// Forgets every cached token: the next `get_token` asks the identity endpoint. Call it when a
    /// resource refused a token this credential gave out.
    pub fn renew(&self) -> azure_core::Result<()> {
        let fresh = ManagedIdentityCredential::new(Some(self.options.clone()))?;
        self.current.store(fresh);
        self.renewals.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// How many times the cached tokens were dropped.
    pub fn renewals(&self) -> u64 {
        self.renewals.load(Ordering::Relaxed)
    }
}

impl fmt::Debug for ManagedIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ManagedIdentity")
            .field("renewals", &self.renewals())
            .finish_non_exhaustive()
    }
}

#[async_trait::async_trait]
impl TokenCredential for ManagedIdentity {
    async fn get_token(
        &self,
        scopes: &[&str],
        options: Option<TokenRequestOptions<'_>>,
    ) -> azure_core::Result<AccessToken> {
        let credential = self.current.load_full();
        credential.get_token(scopes, options).await
    }
}
