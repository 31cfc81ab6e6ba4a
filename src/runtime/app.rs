//! Building and running the broker: the HTTP client, the core and its background refreshes, the first
//! loads (bounded, so the Functions host's readiness poll is not answered before keys exist when they
//! can be had), the listener on IPv4 loopback, and serving until shutdown.

use std::future::Future;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;

use crate::azure::federated_identity::FederatedIdentity;
use crate::azure::key_vault::VaultReader;
use crate::broker::allowlist::{Allowlist, VaultList};
use crate::broker::credential::{ClientCredential, CredentialKind};
use crate::broker::credential_source::{CertificateLoader, CredentialSource};
use crate::broker::exchange::TokenEndpoint;
use crate::broker::jwks::JwksCache;
use crate::broker::metrics::Metrics;
use crate::broker::policy::legacy::{self, LegacySettings};
use crate::broker::policy::source::{PolicyOrigin, PolicySource};
use crate::broker::rate_limit::RateLimiter;
use crate::broker::token_cache::TokenCache;
use crate::broker::upstream::Upstream;
use crate::broker::validation::CallerValidator;
use crate::broker::{Broker, BrokerParts};
use crate::delegation::setup::{self, SetupError};
use crate::http::server::{self, ServerLimits};
use crate::runtime::certificate_loader::{FileCertificate, VaultCertificate};
use crate::runtime::policy_loader::{FilePolicy, VaultPolicy};
use crate::runtime::refresh::{self, VaultSources};
use crate::settings::{
    CertificateSource, ClientSecretSource, CredentialSettings, PolicyDocumentSource, Settings,
};

/// Longest wait for the first signing keys and Key Vault values before serving anyway; the host
/// allows 30 s, and requests arriving before the keys get a 503 with Retry-After.
const FIRST_LOAD_WAIT: Duration = Duration::from_secs(10);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
const HOUSEKEEPING: Duration = Duration::from_secs(60);
/// Longest wait at shutdown for the last redemption counts to reach the delegation store.
const FINAL_FLUSH_WAIT: Duration = Duration::from_secs(2);

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error("bind 127.0.0.1:{port}: {source}")]
    Bind { port: u16, source: std::io::Error },
    #[error("build the HTTP client: {0}")]
    HttpClient(#[from] reqwest::Error),
    #[error("set up the Key Vault client: {0}")]
    KeyVault(#[from] azure_core::Error),
    #[error("set up the managed identity for the federated credential: {0}")]
    ManagedIdentity(azure_core::Error),
    #[error("build the token endpoint URL: {0}")]
    Url(#[from] url::ParseError),
    #[error("set up delegations: {0}")]
    Delegations(#[from] SetupError),
}

pub struct App {
    listener: TcpListener,
    broker: Arc<Broker>,
    limits: ServerLimits,
}

impl App {
    pub async fn build(settings: Settings) -> Result<Self, StartupError> {
        let http = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT.min(settings.http_timeout))
            .timeout(settings.http_timeout)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("token-broker/", env!("CARGO_PKG_VERSION")))
            .build()?;
        let metrics = Arc::new(Metrics::default());
        let reader = match &settings.key_vault {
            Some(key_vault) => Some(Arc::new(VaultReader::new(
                &key_vault.url,
                &key_vault.audience,
                http.clone(),
                settings.resource_identity_client_id.as_ref(),
            )?)),
            None => None,
        };
        let loader = certificate_loader(&settings, reader.as_ref(), &metrics);
        let certificate = loader.is_some();
        let credential = Arc::new(credential_source(&settings, &http, loader)?);
        let vault = reader.map(|reader| VaultSources {
            reader,
            allowlist_secret: settings
                .policy_document
                .is_none()
                .then(|| settings.allowlist_secret_name.clone()),
            policy: match &settings.policy_document {
                Some(PolicyDocumentSource::KeyVault { name }) => {
                    Some(VaultPolicy::new(name.clone()))
                }
                _ => None,
            },
            client_secret: match &settings.credential {
                CredentialSettings::Secret(ClientSecretSource::KeyVault { name }) => {
                    Some(name.clone())
                }
                _ => None,
            },
        });
        let delegations = settings
            .delegation
            .as_ref()
            .map(|config| {
                setup::build(
                    config,
                    &http,
                    settings.managed_identity_client_id.as_ref(),
                    vault.as_ref().map(|sources| &sources.reader),
                )
            })
            .transpose()?;
        let upstream = Upstream::new(http);
        let mut parts = parts(&settings, upstream, metrics, credential)?;
        parts.delegations = delegations
            .as_ref()
            .map(|started| started.delegations.clone());
        let broker = Arc::new(Broker::new(parts));

        // IPv4 loopback: the host always connects to http://127.0.0.1:<port>. Bound before the first
        // loads, so the port the host chose is ours from the start (no other process can take it while
        // they run); the host's readiness poll waits in the listen backlog until serving begins.
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, settings.port))
            .await
            .map_err(|source| StartupError::Bind {
                port: settings.port,
                source,
            })?;

        let policy_file = match &settings.policy_document {
            Some(PolicyDocumentSource::File { path }) => {
                Some(Arc::new(FilePolicy::new(path.clone())))
            }
            _ => None,
        };

        // First loads run concurrently and are retried within the bounded wait; the refresh loops take
        // over from there.
        let first_loads = async {
            let vault_values = async {
                if let Some(sources) = &vault {
                    refresh::load_vault_until_loaded(&broker, sources).await;
                }
            };
            let client_certificate = async {
                if certificate {
                    refresh::load_certificate_until_loaded(&broker).await;
                }
            };
            let file = async {
                if let Some(file) = &policy_file {
                    refresh::load_policy_file_until_loaded(&broker, file).await;
                }
            };
            let sealing_key = async {
                if let Some(source) = delegations.as_ref().and_then(|d| d.keyring_source.as_ref()) {
                    source.load_until_loaded().await;
                }
            };
            tokio::join!(
                refresh::load_keys_until_loaded(&broker),
                vault_values,
                client_certificate,
                file,
                sealing_key
            );
        };
        if tokio::time::timeout(FIRST_LOAD_WAIT, first_loads)
            .await
            .is_err()
        {
            tracing::warn!("first loads did not finish in time; serving while they continue");
        }
        refresh::spawn_key_refresh(broker.clone(), settings.jwks_refresh);
        if let Some(sources) = vault {
            refresh::spawn_vault_refresh(broker.clone(), sources, settings.allowlist_refresh);
        }
        if certificate {
            refresh::spawn_certificate_refresh(broker.clone(), settings.allowlist_refresh);
        }
        if let Some(file) = policy_file {
            refresh::spawn_policy_file_refresh(broker.clone(), file, settings.allowlist_refresh);
        }
        if let Some(started) = &delegations {
            setup::spawn_keyring_refresh(started, settings.allowlist_refresh);
            setup::spawn_usage_flush(started, started.delegations.bounds().revocation);
        }
        refresh::spawn_housekeeping(broker.clone(), HOUSEKEEPING);

        let limits = ServerLimits {
            header_read_timeout: settings.header_read_timeout,
            max_connections: settings.max_connections,
        };
        Ok(Self {
            listener,
            broker,
            limits,
        })
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    pub async fn run_until(self, shutdown: impl Future<Output = ()> + Send + 'static) {
        if let Ok(addr) = self.local_addr() {
            tracing::info!(addr = %addr, "listening");
        }
        let broker = self.broker.clone();
        server::serve(self.listener, self.broker, self.limits, shutdown).await;
        // The redemption counts not yet written would go with the process.
        if let Some(delegations) = &broker.delegations
            && tokio::time::timeout(FINAL_FLUSH_WAIT, delegations.flush_usage())
                .await
                .is_err()
        {
            tracing::warn!("redemption counts not all written before exit");
        }
    }
}

/// Where the client certificate is read from, when the broker uses one.
fn certificate_loader(
    settings: &Settings,
    reader: Option<&Arc<VaultReader>>,
    metrics: &Arc<Metrics>,
) -> Option<Arc<dyn CertificateLoader>> {
    match &settings.credential {
        CredentialSettings::Certificate(CertificateSource::KeyVault { name }) => {
            reader.map(|reader| {
                Arc::new(VaultCertificate::new(
                    reader.clone(),
                    name.clone(),
                    metrics.clone(),
                )) as Arc<dyn CertificateLoader>
            })
        }
        CredentialSettings::Certificate(CertificateSource::File(path)) => {
            Some(Arc::new(FileCertificate::new(path.clone())))
        }
        _ => None,
    }
}

fn credential_source(
    settings: &Settings,
    http: &reqwest::Client,
    certificate: Option<Arc<dyn CertificateLoader>>,
) -> Result<CredentialSource, StartupError> {
    Ok(match &settings.credential {
        CredentialSettings::Secret(ClientSecretSource::Value(secret)) => {
            CredentialSource::fixed(ClientCredential::secret(secret.clone()))
        }
        CredentialSettings::Secret(ClientSecretSource::KeyVault { .. }) => {
            CredentialSource::pending(CredentialKind::Secret, None)
        }
        CredentialSettings::Certificate(_) => {
            CredentialSource::pending(CredentialKind::Certificate, certificate)
        }
        CredentialSettings::ManagedIdentity {
            client_id,
            audience,
        } => {
            let identity = FederatedIdentity::new(client_id, audience, http.clone())
                .map_err(StartupError::ManagedIdentity)?;
            CredentialSource::fixed(ClientCredential::managed_identity(
                client_id.as_str(),
                audience,
                Arc::new(identity),
            ))
        }
    })
}

fn parts(
    settings: &Settings,
    upstream: Upstream,
    metrics: Arc<Metrics>,
    credential: Arc<CredentialSource>,
) -> Result<BrokerParts, StartupError> {
    let tenant = settings.tenant_id.clone();
    let client_id = settings.client_id.clone();
    let jwks = Arc::new(JwksCache::new(
        upstream.clone(),
        settings.authority_host.clone(),
        tenant.clone(),
        settings.jwks_min_refresh,
    ));
    let (policy, allowlist) = policy(settings);
    Ok(BrokerParts {
        validator: CallerValidator::new(
            jwks.clone(),
            tenant.clone(),
            client_id.clone(),
            settings.clock_skew,
        ),
        jwks,
        required_user_scope: settings.required_user_scope.clone(),
        policy,
        allowlist,
        endpoint: TokenEndpoint::new(
            upstream,
            metrics.clone(),
            &settings.authority_host,
            &tenant,
            client_id.clone(),
        )?,
        cache: TokenCache::new(settings.token_margin),
        rate_limiter: RateLimiter::new(settings.rate_limits),
        credential,
        metrics,
        tenant,
        client_id,
        delegations: None,
    })
}

/// The policy source, and the legacy allowlist it decides through when there is no document.
fn policy(settings: &Settings) -> (PolicySource, Option<Arc<Allowlist>>) {
    match &settings.policy_document {
        Some(PolicyDocumentSource::KeyVault { .. }) => {
            (PolicySource::pending(PolicyOrigin::KeyVault), None)
        }
        Some(PolicyDocumentSource::File { .. }) => {
            (PolicySource::pending(PolicyOrigin::File), None)
        }
        None => {
            let allowlist = Arc::new(Allowlist::new(
                settings.static_allowlist.clone(),
                settings.key_vault.as_ref().map(|_| VaultList {
                    secret: settings.allowlist_secret_name.clone(),
                    max_age: settings.allowlist_max_age,
                    refresh: settings.allowlist_refresh,
                }),
            ));
            let policy = legacy::built_in(LegacySettings {
                allowlist: allowlist.clone(),
                user_access: &settings.user_access,
                allowed_scopes: &settings.allowed_scopes,
                audiences: &settings.audiences,
                revision: settings.policy_revision,
            });
            (PolicySource::fixed(policy), Some(allowlist))
        }
    }
}
