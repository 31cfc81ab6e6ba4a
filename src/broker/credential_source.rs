//! Which version of the broker's credential is in force. A version re-read from where it is kept
//! replaces the one in force only if it can be used: one that is expired or not yet valid is set aside
//! at once, and one Entra refuses on its first use, while the version it replaced was accepted, is set
//! aside and that version serves again (with the tokens cached under it). A set-aside version is never
//! tried again; health names it while the source still serves it.
//!
//! Re-reads of a certificate run as one task at a time, bounded by `LOAD_TIMEOUT`; whoever waits for
//! one holds no lock meanwhile.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use futures_util::FutureExt;
use futures_util::future::{BoxFuture, Shared};

use crate::broker::certificate::ClientCertificate;
use crate::broker::credential::{ClientCredential, CredentialKind, Standing, Unusable};
use crate::broker::digest::Digest;
use crate::broker::error::{BrokerError, LoadFailure};
use crate::broker::freshness::{Freshness, ReadProblem};
use crate::clock::now;

/// Longest wait for one read of the certificate: a file on a hung share, or a Key Vault that never
/// answers, counts as a failed read after this long.
pub const LOAD_TIMEOUT: Duration = Duration::from_secs(10);
/// Shortest time between two reloads that Entra's refusals trigger.
const RELOAD_FLOOR: Duration = Duration::from_secs(5);
/// How many set-aside versions are remembered (many rotations' worth).
const SET_ASIDE_REMEMBERED: usize = 16;

/// Re-reads the certificate from where it is kept (implemented in `certificate_loader`).
#[async_trait::async_trait]
pub trait CertificateLoader: Send + Sync {
    /// The certificate, or why the read failed (`Unparseable` for a value that is no usable certificate).
    async fn load(&self) -> Result<Arc<ClientCertificate>, ReadProblem>;
}

/// Why a version was set aside.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SetAsideReason {
    Expired,
    NotYetValid,
    /// Entra refused it on its first use while the version before it still worked.
    Refused,
}

impl SetAsideReason {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Expired => "expired",
            Self::NotYetValid => "not_yet_valid",
            Self::Refused => "refused",
        }
    }
}

impl From<Unusable> for SetAsideReason {
    fn from(unusable: Unusable) -> Self {
        match unusable {
            Unusable::Expired => Self::Expired,
            Unusable::NotYetValid => Self::NotYetValid,
        }
    }
}

/// A version the source serves that is not used, as health names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetAside {
    /// The version's printable label (a certificate's SHA-256 thumbprint).
    pub version: Arc<str>,
    pub reason: SetAsideReason,
}

#[derive(Clone)]
struct State {
    current: Result<Arc<ClientCredential>, LoadFailure>,
    /// The version Entra last accepted, kept while `current` is a newer one it has not accepted yet.
    previous: Option<Arc<ClientCredential>>,
    /// Versions never to be used again, oldest first.
    set_aside: VecDeque<Digest>,
    /// The set-aside version the source still serves, until it serves another.
    served_set_aside: Option<SetAside>,
    /// Reads from where the credential is kept (a fixed one is never read, so it stays at the default).
    freshness: Freshness,
}

impl State {
    fn set_aside(&mut self, credential: &ClientCredential, reason: SetAsideReason) {
        if self.set_aside.len() == SET_ASIDE_REMEMBERED {
            self.set_aside.pop_front();
        }
        self.set_aside.push_back(credential.version);
        self.served_set_aside = Some(SetAside {
            version: credential.used.version.clone(),
            reason,
        });
    }
}

/// A reload in progress, shared by everyone who waits for it.
pub type Reload = Shared<BoxFuture<'static, ()>>;

#[derive(Default)]
struct Reloads {
    /// When the last reload that a refusal triggered started (see `newer_than`).
    last: Option<Instant>,
    in_flight: Option<Reload>,
}

pub struct CredentialSource {
    kind: CredentialKind,
    state: ArcSwap<State>,
    /// Serialises changes of `state`; never held across an await.
    changing: Mutex<()>,
    loader: Option<Arc<dyn CertificateLoader>>,
    reloads: Mutex<Reloads>,
}

impl CredentialSource {
    /// A credential known at start-up (a secret from settings, or the managed identity).
    pub fn fixed(credential: ClientCredential) -> Self {
        Self::with(credential.kind(), Ok(Arc::new(credential)), None)
    }

    /// A credential still to be loaded (from Key Vault, or a certificate file); `loader` re-reads a
    /// certificate, on `reload` and when Entra refuses the current one.
    pub fn pending(kind: CredentialKind, loader: Option<Arc<dyn CertificateLoader>>) -> Self {
        Self::with(kind, Err(LoadFailure::Unreachable), loader)
    }

    fn with(
        kind: CredentialKind,
        current: Result<Arc<ClientCredential>, LoadFailure>,
        loader: Option<Arc<dyn CertificateLoader>>,
    ) -> Self {
        Self {
            kind,
            state: ArcSwap::from_pointee(State {
                current,
                previous: None,
                set_aside: VecDeque::new(),
                served_set_aside: None,
                freshness: Freshness::default(),
            }),
            changing: Mutex::new(()),
            loader,
            reloads: Mutex::new(Reloads::default()),
        }
    }

    pub fn kind(&self) -> CredentialKind {
        self.kind
    }

    pub fn current(&self) -> Result<Arc<ClientCredential>, BrokerError> {
        self.state
            .load()
            .current
            .clone()
            .map_err(|failure| BrokerError::CredentialUnavailable(self.kind, failure))
    }

    /// How current the loaded copy is.
    pub fn freshness(&self) -> Freshness {
        self.state.load().freshness
    }

    /// The version the source serves that was set aside, if it serves one.
    pub fn served_set_aside(&self) -> Option<SetAside> {
        self.state.load().served_set_aside.clone()
    }

    /// Applies a load. A failure keeps the credential in force; so does a version that cannot be used
    /// while the one in force can, and a version set aside before.
    pub fn apply(&self, loaded: Result<ClientCredential, ReadProblem>) {
        let _changing = lock(&self.changing);
        let state = self.state.load_full();
        let mut next = State::clone(&state);
        match loaded {
            Err(problem) => {
                if next.current.is_err() {
                    next.current = Err(problem.load_failure());
                }
                next.freshness = state.freshness.failed(problem);
            }
            Ok(fresh) => {
                next.freshness = state.freshness.succeeded();
                match &state.current {
                    Ok(old) if old.version == fresh.version => next.served_set_aside = None,
                    _ if state.set_aside.contains(&fresh.version) => {}
                    current => Self::take(&mut next, current, &state.previous, fresh),
                }
            }
        }
        self.state.store(Arc::new(next));
    }

    /// A version not seen before: in force, unless it cannot be used and the one in force can.
    fn take(
        next: &mut State,
        current: &Result<Arc<ClientCredential>, LoadFailure>,
        previous: &Option<Arc<ClientCredential>>,
        fresh: ClientCredential,
    ) {
        let now = now();
        let current = current.as_ref().ok();
        let current_usable = current.is_some_and(|c| c.unusable_at(now).is_none());
        if let (Some(unusable), true) = (fresh.unusable_at(now), current_usable) {
            tracing::warn!(
                credential_kind = fresh.kind().as_str(),
                credential_version = &*fresh.used.version,
                reason = SetAsideReason::from(unusable).as_str(),
                "new broker credential version cannot be used; set aside, the version in force keeps serving"
            );
            next.set_aside(&fresh, unusable.into());
            return;
        }
        tracing::info!(
            credential_kind = fresh.kind().as_str(),
            credential_version = &*fresh.used.version,
            "broker credential loaded"
        );
        next.previous = match current {
            Some(old) if old.standing() == Standing::Accepted => Some(Arc::clone(old)),
            _ => previous.clone(),
        };
        // Back to the version that served before: the same credential, with what Entra made of it.
        next.current = Ok(match previous {
            Some(earlier) if earlier.version == fresh.version => Arc::clone(earlier),
            _ => Arc::new(fresh),
        });
        next.served_set_aside = None;
    }

    /// After Entra refused `refused`: the version to retry with, if any. A version refused on its first
    /// use, while the one it replaced was accepted and can still be used, is set aside and that one
    /// serves again; otherwise a certificate is re-read in case a newer version is there.
    pub async fn replacement_for(
        self: &Arc<Self>,
        refused: &ClientCredential,
    ) -> Option<Arc<ClientCredential>> {
        match self.fall_back(refused) {
            Some(previous) => Some(previous),
            None => self.newer_than(refused).await,
        }
    }

    fn fall_back(&self, refused: &ClientCredential) -> Option<Arc<ClientCredential>> {
        if refused.standing() != Standing::Untried {
            return None;
        }
        let _changing = lock(&self.changing);
        let state = self.state.load_full();
        let current = state.current.as_ref().ok()?;
        if current.version != refused.version {
            // Another request already fell back, or a newer version came meanwhile.
            return state
                .set_aside
                .contains(&refused.version)
                .then(|| Arc::clone(current));
        }
        let now = now();
        let previous = state
            .previous
            .clone()
            .filter(|previous| previous.unusable_at(now).is_none())?;
        tracing::warn!(
            credential_kind = refused.kind().as_str(),
            credential_version = &*refused.used.version,
            previous_version = &*previous.used.version,
            "Entra refused a new broker credential version on its first use; set aside, the previous version serves again"
        );
        let mut next = State::clone(&state);
        next.set_aside(refused, SetAsideReason::Refused);
        next.current = Ok(Arc::clone(&previous));
        next.previous = None;
        self.state.store(Arc::new(next));
        Some(previous)
    }

    /// After Entra refused `rejected`: re-reads the certificate and returns the current credential if
    /// it is another version. One reload at a time, at most one per `RELOAD_FLOOR` for refusals;
    /// whoever waited sees its result.
    async fn newer_than(
        self: &Arc<Self>,
        rejected: &ClientCredential,
    ) -> Option<Arc<ClientCredential>> {
        if let Some(newer) = self.newer(rejected) {
            return Some(newer);
        }
        let reload = {
            let mut reloads = lock(&self.reloads);
            match &reloads.in_flight {
                Some(reload) => reload.clone(),
                None if reloads.last.is_some_and(|at| at.elapsed() < RELOAD_FLOOR) => return None,
                None => {
                    reloads.last = Some(Instant::now());
                    self.start_reload(&mut reloads)?
                }
            }
        };
        reload.await;
        self.newer(rejected)
    }

    fn newer(&self, rejected: &ClientCredential) -> Option<Arc<ClientCredential>> {
        self.current()
            .ok()
            .filter(|c| c.version != rejected.version)
    }

    /// Re-reads the certificate (the refresh loop's call): joins the reload in progress or starts one.
    /// None for a credential that is not re-read from here.
    pub fn reload(self: &Arc<Self>) -> Option<Reload> {
        let mut reloads = lock(&self.reloads);
        match &reloads.in_flight {
            Some(reload) => Some(reload.clone()),
            None => self.start_reload(&mut reloads),
        }
    }

    /// A task that reads the certificate, bounded by `LOAD_TIMEOUT`, and applies what it read; it
    /// runs to its end even when nobody waits for it.
    fn start_reload(self: &Arc<Self>, reloads: &mut Reloads) -> Option<Reload> {
        let loader = Arc::clone(self.loader.as_ref()?);
        let source = Arc::clone(self);
        let task = tokio::spawn(async move {
            let loaded = match tokio::time::timeout(LOAD_TIMEOUT, loader.load()).await {
                Ok(loaded) => loaded,
                Err(_) => {
                    tracing::warn!(
                        timeout_seconds = LOAD_TIMEOUT.as_secs(),
                        "client certificate read did not finish in time; counted as a failed read"
                    );
                    Err(ReadProblem::Unreachable)
                }
            };
            source.apply(loaded.map(ClientCredential::certificate));
            lock(&source.reloads).in_flight = None;
        });
        let reload = async move {
            let _ = task.await;
        }
        .boxed()
        .shared();
        reloads.in_flight = Some(reload.clone());
        Some(reload)
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A certificate valid from `from` to `until` days from now.
    fn certificate(from: i64, until: i64) -> ClientCredential {
        credential(&pem(from, until))
    }

    fn credential(pem: &str) -> ClientCredential {
        ClientCredential::certificate(Arc::new(ClientCertificate::parse(pem.as_bytes()).unwrap()))
    }

    fn pem(from: i64, until: i64) -> String {
        let key =
            rcgen::KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, rcgen::RsaKeySize::_2048)
                .unwrap();
        let mut params = rcgen::CertificateParams::new(vec!["broker".into()]).unwrap();
        let now = time::OffsetDateTime::now_utc();
        params.not_before = now + time::Duration::days(from);
        params.not_after = now + time::Duration::days(until);
        let cert = params.self_signed(&key).unwrap();
        format!("{}{}", key.serialize_pem(), cert.pem())
    }

    fn source() -> CredentialSource {
        CredentialSource::pending(CredentialKind::Certificate, None)
    }

    fn current_version(source: &CredentialSource) -> Digest {
        source.current().ok().unwrap().version
    }

    #[test]
    fn an_expired_or_not_yet_valid_version_is_set_aside_while_the_one_in_force_is_usable() {
        let source = source();
        let good = certificate(-1, 30);
        let version = good.version;
        source.apply(Ok(good));

        for (unusable, reason) in [
            (certificate(-30, -2), SetAsideReason::Expired),
            (certificate(2, 30), SetAsideReason::NotYetValid),
        ] {
            let label = unusable.used.version.clone();
            source.apply(Ok(unusable));

            assert!(current_version(&source) == version);
            assert_eq!(
                source.served_set_aside(),
                Some(SetAside {
                    version: label,
                    reason
                })
            );
        }
    }

    #[test]
    fn a_set_aside_version_read_again_stays_aside_until_the_source_serves_another() {
        let source = source();
        let good = certificate(-1, 30);
        let (version, again) = (good.version, certificate(-1, 30));
        source.apply(Ok(good));
        let expired = pem(-30, -2);
        source.apply(Ok(credential(&expired)));
        source.apply(Ok(credential(&expired)));
        assert!(current_version(&source) == version);
        assert!(source.served_set_aside().is_some());

        source.apply(Ok(again));

        assert!(source.served_set_aside().is_none());
        assert!(current_version(&source) != version);
    }

    #[test]
    fn an_unusable_version_is_taken_when_nothing_usable_is_in_force() {
        let source = source();
        let expired = certificate(-30, -2);
        let version = expired.version;

        source.apply(Ok(expired));

        assert!(current_version(&source) == version);
        assert!(source.served_set_aside().is_none());
    }

    #[test]
    fn a_version_refused_on_first_use_gives_way_to_the_accepted_one_for_good() {
        let source = source();
        let accepted = certificate(-1, 30);
        let accepted_version = accepted.version;
        source.apply(Ok(accepted));
        source
            .current()
            .ok()
            .unwrap()
            .set_standing(Standing::Accepted);
        let refused = certificate(-1, 30);
        let refused_version = refused.version;
        source.apply(Ok(refused));
        let new = source.current().ok().unwrap();
        assert!(new.version == refused_version);

        let fallback = source.fall_back(&new);

        assert!(fallback.is_some_and(|c| c.version == accepted_version));
        assert!(current_version(&source) == accepted_version);
        assert_eq!(
            source.served_set_aside().map(|s| s.reason),
            Some(SetAsideReason::Refused)
        );
        // Another request refused with the same version at the same time retries with the accepted one.
        assert!(
            source
                .fall_back(&new)
                .is_some_and(|c| c.version == accepted_version)
        );
    }

    #[test]
    fn a_refused_version_with_no_accepted_predecessor_stays_in_force() {
        let source = source();
        let only = certificate(-1, 30);
        let version = only.version;
        source.apply(Ok(only));

        let fallback = source.fall_back(&source.current().ok().unwrap());

        assert!(fallback.is_none());
        assert!(current_version(&source) == version);
        assert!(source.served_set_aside().is_none());
    }

    struct NeverAnswers;

    #[async_trait::async_trait]
    impl CertificateLoader for NeverAnswers {
        async fn load(&self) -> Result<Arc<ClientCertificate>, ReadProblem> {
            std::future::pending().await
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_read_that_never_returns_ends_after_the_timeout_as_a_failed_read() {
        let source = Arc::new(CredentialSource::pending(
            CredentialKind::Certificate,
            Some(Arc::new(NeverAnswers)),
        ));

        source.reload().expect("a loader").await;

        assert_eq!(source.freshness().failed_reads(), 1);
        assert!(lock(&source.reloads).in_flight.is_none());
    }
}
