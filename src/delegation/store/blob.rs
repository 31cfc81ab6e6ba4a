//! The Azure Blob store (`BROKER_DELEGATION_STORE=https://<account>.blob.core.windows.net/<container>`):
//! one block blob per delegation, `<id>.json`, through the official `azure_storage_blob` client and the
//! broker's own HTTP client, authenticated with the Function App's managed identity (no account key, no
//! SAS). `create` is a conditional put (`If-None-Match: *`), `replace` one on the ETag read
//! (`If-Match`), so a lost race is a 412 and never an overwrite.

use std::sync::Arc;

use azure_core::credentials::{AccessToken, TokenCredential, TokenRequestOptions};
use azure_core::http::{ClientOptions, Etag, RequestContent, RetryOptions, StatusCode, Transport};
use azure_identity::UserAssignedId;
use azure_storage_blob::models::{BlobClientDownloadOptions, BlobClientUploadOptions};
use azure_storage_blob::{BlobContainerClient, BlobContainerClientOptions};
use url::Url;

use super::{ETag, RecordStore, StoreError, StoreKind};
use crate::azure::managed_identity::ManagedIdentity;
use crate::broker::ids::ClientId;
use crate::delegation::id::DelegationId;

/// The only scope the store's credential hands out a token for.
const STORAGE_SCOPE: &str = "https://storage.azure.com/.default";
/// Records are a few kilobytes; anything far larger is not one of ours.
const MAX_RECORD_BYTES: usize = 256 * 1024;

pub struct BlobStore {
    container: BlobContainerClient,
}

impl BlobStore {
    /// `identity`: the user-assigned identity's client id, or `None` for the system-assigned one (the
    /// same identity that reads Key Vault).
    pub fn new(
        container_url: Url,
        http: reqwest::Client,
        identity: Option<&ClientId>,
    ) -> azure_core::Result<Self> {
        let identity = ManagedIdentity::new(
            client_options(http.clone()),
            identity.map(|id| UserAssignedId::ClientId(id.as_str().to_owned())),
        )?;
        Self::with_credential(
            container_url,
            http,
            Arc::new(StorageAudienceOnly { identity }),
        )
    }

    /// The store with another credential (tests: a token from the emulator's identity endpoint).
    pub fn with_credential(
        container_url: Url,
        http: reqwest::Client,
        credential: Arc<dyn TokenCredential>,
    ) -> azure_core::Result<Self> {
        let options = BlobContainerClientOptions {
            client_options: client_options(http),
            ..Default::default()
        };
        let container = BlobContainerClient::new(container_url, Some(credential), Some(options))?;
        Ok(Self { container })
    }

    fn blob(&self, id: &DelegationId) -> azure_storage_blob::BlobClient {
        self.container.blob_client(&format!("{id}.json"))
    }

    async fn put(
        &self,
        id: &DelegationId,
        bytes: Vec<u8>,
        options: BlobClientUploadOptions<'_>,
    ) -> Result<ETag, StoreError> {
        let options = BlobClientUploadOptions {
            blob_content_type: Some("application/json".into()),
            ..options
        };
        let uploaded = self
            .blob(id)
            .upload(RequestContent::from(bytes), Some(options))
            .await
            .map_err(|err| classify(id, "write", &err))?;
        uploaded
            .etag
            .map(|etag| ETag::new(etag.to_string()))
            .ok_or(StoreError::Unavailable)
    }
}

#[async_trait::async_trait]
impl RecordStore for BlobStore {
    fn kind(&self) -> StoreKind {
        StoreKind::Blob
    }

    async fn create(&self, id: &DelegationId, bytes: Vec<u8>) -> Result<ETag, StoreError> {
        let options = BlobClientUploadOptions {
            if_none_match: Some(Etag::from("*")),
            ..Default::default()
        };
        self.put(id, bytes, options).await.map_err(|err| match err {
            StoreError::Conflict => StoreError::AlreadyExists,
            other => other,
        })
    }

    async fn read(&self, id: &DelegationId) -> Result<(Vec<u8>, ETag), StoreError> {
        let downloaded = self
            .blob(id)
            .download(Some(BlobClientDownloadOptions::default()))
            .await
            .map_err(|err| classify(id, "read", &err))?;
        let etag = downloaded
            .properties
            .etag
            .map(|etag| ETag::new(etag.to_string()))
            .ok_or(StoreError::Unavailable)?;
        if downloaded
            .properties
            .content_length
            .is_some_and(|length| length > MAX_RECORD_BYTES as u64)
        {
            return Err(StoreError::Corrupt);
        }
        let bytes = downloaded
            .body
            .collect()
            .await
            .map_err(|err| classify(id, "read", &err))?;
        Ok((bytes.to_vec(), etag))
    }

    async fn replace(
        &self,
        id: &DelegationId,
        bytes: Vec<u8>,
        etag: &ETag,
    ) -> Result<ETag, StoreError> {
        let options = BlobClientUploadOptions {
            if_match: Some(Etag::from(etag.as_str().to_owned())),
            ..Default::default()
        };
        self.put(id, bytes, options).await
    }
}

fn client_options(http: reqwest::Client) -> ClientOptions {
    ClientOptions {
        transport: Some(Transport::new(Arc::new(http))),
        // A store that does not answer must surface within the revocation bound, not after the SDK's
        // backoff; callers retry on their own schedule.
        retry: RetryOptions::none(),
        ..ClientOptions::default()
    }
}

/// 404 → NotFound; 409 or 412 (a conditional write lost) → Conflict; everything else, including a
/// refused token, → Unavailable (logged with its status, never a body).
fn classify(id: &DelegationId, operation: &'static str, err: &azure_core::Error) -> StoreError {
    let status = err.http_status();
    let mapped = match status {
        Some(StatusCode::NotFound) => StoreError::NotFound,
        Some(StatusCode::Conflict | StatusCode::PreconditionFailed) => StoreError::Conflict,
        _ => StoreError::Unavailable,
    };
    if mapped == StoreError::Unavailable {
        tracing::warn!(delegation = %id, operation, status = status.map(u16::from), kind = ?err.kind(), "delegation store call failed");
    }
    mapped
}

/// The managed identity, restricted to Azure Storage's scope: the store can never obtain a token for
/// any other audience.
#[derive(Debug)]
struct StorageAudienceOnly {
    identity: Arc<ManagedIdentity>,
}

#[async_trait::async_trait]
impl TokenCredential for StorageAudienceOnly {
    async fn get_token(
        &self,
        scopes: &[&str],
        options: Option<TokenRequestOptions<'_>>,
    ) -> azure_core::Result<AccessToken> {
        if scopes != [STORAGE_SCOPE] {
            tracing::warn!(requested = ?scopes, "delegation store asked for another audience; refused");
            return Err(azure_core::Error::with_message(
                azure_core::error::ErrorKind::Credential,
                "the delegation store's credential serves only Azure Storage",
            ));
        }
        self.identity.get_token(scopes, options).await
    }
}
