//! The delegation store's Azure Blob implementation, used as a library against Azurite (HTTPS,
//! `--oauth basic`, a token from the emulator's identity endpoint): compare-and-swap on the ETag, what
//! the raw blobs hold, key versions, tampering, and an unreachable store.

use std::sync::Arc;
use std::time::Duration;

use token_broker::broker::Lane;
use token_broker::delegation::store::blob::BlobStore;
use token_broker::delegation::{
    Bearer, BearerRefused, Bounds, DelegationId, DelegationRecord, DelegationState, Delegations,
    Keyring, Membership, SealError, SharedKeyring, StoreError, Subject, SubjectKind,
};
use token_broker::secret::Secret;
use url::Url;

use crate::helpers::azurite::{EmulatorIdentity, TestAzurite};
use crate::helpers::emulator::TestEmulator;

const CONTAINER: &str = "delegations";
const REFRESH_TOKEN: &str = "0.AAAA-refresh-token-of-ana-that-must-never-be-readable";

struct Fixture {
    emulator: TestEmulator,
    azurite: TestAzurite,
}

async fn fixture() -> Option<Fixture> {
    let emulator = TestEmulator::start().await;
    let azurite = TestAzurite::start().await?;
    azurite.create_container(&emulator, CONTAINER).await;
    Some(Fixture { emulator, azurite })
}

impl Fixture {
    /// One broker instance's handle on the shared container, sealing with `keys` (version, fill byte).
    fn instance(&self, keys: &[(&str, u8)], revocation: Duration) -> Delegations {
        let url = Url::parse(&self.azurite.container_url(CONTAINER)).unwrap();
        // Trusting the bundle a broker would get as SSL_CERT_FILE: the emulator's CA and Azurite's.
        let bundle = std::fs::read(self.azurite.trust_bundle(&self.emulator)).unwrap();
        let http = reqwest::Client::builder()
            .tls_certs_only(reqwest::Certificate::from_pem_bundle(&bundle).unwrap())
            .build()
            .unwrap();
        let store =
            BlobStore::with_credential(url, http, EmulatorIdentity::new(&self.emulator)).unwrap();
        let keyring = Keyring::from_versions(
            keys.iter()
                .map(|(version, fill)| (version.to_string(), vec![*fill; 32]))
                .collect(),
        )
        .unwrap();
        Delegations::new(
            Arc::new(store),
            SharedKeyring::new(keyring),
            Bounds {
                revocation,
                token_lifetime: Duration::from_secs(900),
            },
        )
    }
}

fn now() -> u64 {
    token_broker::clock::now()
}

/// A user-lane record for `delegations` with one bearer and a sealed refresh token.
fn record(delegations: &Delegations) -> (DelegationRecord, Bearer) {
    let id = DelegationId::generate().unwrap();
    let bearer = Bearer::generate(&id).unwrap();
    let sealed = delegations.seal(&id, &Secret::new(REFRESH_TOKEN)).unwrap();
    let mut record = DelegationRecord {
        id,
        delegator: "1a2b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d".parse().unwrap(),
        delegator_membership: Membership::default(),
        lane: Lane::User,
        audiences: vec!["sql".into(), "storage".into()],
        subject: Subject {
            kind: SubjectKind::User,
            oid: "5c1f0e2d-8b3a-4f7c-9d6e-1a2b3c4d5e6f".parse().unwrap(),
            display: "ana@contoso.example".into(),
            membership: Membership {
                roles: Vec::new(),
                groups: vec!["0b6a1c2d-3e4f-4a5b-8c7d-9e0f1a2b3c4d".parse().unwrap()],
                group_overage: false,
            },
        },
        label: Some("session 4711".into()),
        created: now(),
        expires_at: now() + 3600,
        state: DelegationState::Active,
        claims: None,
        refresh_token: Some(sealed),
        bearers: Vec::new(),
        last_used: None,
        redemptions: 0,
        policy_revision: 1,
    };
    record.add_bearer(&bearer, now() + 900, now());
    (record, bearer)
}

#[tokio::test]
async fn two_instances_writing_one_record_never_lose_an_update() {
    let Some(fixture) = fixture().await else {
        return;
    };
    let (one, two) = (
        fixture.instance(&[("v1", 1)], Duration::from_secs(5)),
        fixture.instance(&[("v1", 1)], Duration::from_secs(5)),
    );
    let (record, _) = record(&one);
    one.create(&record).await.unwrap();
    assert_eq!(
        one.create(&record).await.err(),
        Some(StoreError::AlreadyExists)
    );

    // Both read the same version; the first write wins, the second is refused as a conflict.
    let (read_one, read_two) = (
        one.read(&record.id).await.unwrap(),
        two.read(&record.id).await.unwrap(),
    );
    let mut counted = read_one.record.clone();
    counted.redemptions = 1;
    one.replace(&read_one, &counted).await.unwrap();
    let mut revoked = read_two.record.clone();
    revoked.state = DelegationState::Revoked;
    assert_eq!(
        two.replace(&read_two, &revoked).await.err(),
        Some(StoreError::Conflict)
    );

    // The loser re-reads and applies its change on top of the winner's.
    two.update(&record.id, |record| {
        record.state = DelegationState::Revoked;
        Ok::<_, ()>(true)
    })
    .await
    .unwrap()
    .unwrap();
    let stored = one.read(&record.id).await.unwrap().record;
    assert_eq!(
        (stored.redemptions, stored.state),
        (1, DelegationState::Revoked)
    );
}

#[tokio::test]
async fn stored_blobs_hold_no_bearer_and_no_readable_refresh_token() {
    let Some(fixture) = fixture().await else {
        return;
    };
    let delegations = fixture.instance(&[("v1", 1)], Duration::from_secs(5));
    let (record, bearer) = record(&delegations);
    delegations.create(&record).await.unwrap();

    let blobs = fixture
        .azurite
        .raw_blobs(&fixture.emulator, CONTAINER)
        .await;
    assert_eq!(blobs.len(), 1);
    let stored = String::from_utf8(blobs[0].clone()).unwrap();
    // The bearer's random part (after the id) appears nowhere, nor the refresh token or a piece of it.
    let secret_part = &bearer.expose()[30..70];
    assert!(!stored.contains(secret_part), "the blob holds the bearer");
    assert!(
        !stored.contains(&REFRESH_TOKEN[..20]),
        "the blob holds the refresh token"
    );
    // It is still the same delegation: the bearer is accepted and the sealed token opens.
    assert!(delegations.authenticate(&bearer, now()).await.is_ok());
    let opened = delegations.open_refresh_token(&record).unwrap().unwrap();
    assert_eq!(opened.expose(), REFRESH_TOKEN);
}

#[tokio::test]
async fn a_record_sealed_under_an_unknown_key_version_is_refused() {
    let Some(fixture) = fixture().await else {
        return;
    };
    let old = fixture.instance(&[("v1", 1)], Duration::from_secs(5));
    let (record, _) = record(&old);
    old.create(&record).await.unwrap();

    let rotated = fixture.instance(&[("v1", 1), ("v2", 2)], Duration::from_secs(5));
    let stored = rotated.read(&record.id).await.unwrap().record;
    assert_eq!(
        rotated
            .open_refresh_token(&stored)
            .unwrap()
            .unwrap()
            .expose(),
        REFRESH_TOKEN
    );

    let v1_removed = fixture.instance(&[("v2", 2)], Duration::from_secs(5));
    let stored = v1_removed.read(&record.id).await.unwrap().record;
    assert_eq!(
        v1_removed.open_refresh_token(&stored).err(),
        Some(SealError::UnknownKeyVersion)
    );
}

#[tokio::test]
async fn a_blob_altered_in_the_container_is_refused() {
    let Some(fixture) = fixture().await else {
        return;
    };
    let delegations = fixture.instance(&[("v1", 1)], Duration::from_secs(5));
    let (record, bearer) = record(&delegations);
    delegations.create(&record).await.unwrap();
    let blob = format!("{}.json", record.id);
    let stored = String::from_utf8(
        fixture
            .azurite
            .raw_blobs(&fixture.emulator, CONTAINER)
            .await[0]
            .clone(),
    )
    .unwrap();
    let widened = stored.replace("\"redemptions\":0", "\"redemptions\":0,\"admin\":true");
    fixture
        .azurite
        .overwrite_blob(&fixture.emulator, CONTAINER, &blob, widened.into_bytes())
        .await;

    let fresh = fixture.instance(&[("v1", 1)], Duration::from_secs(5));
    assert_eq!(
        fresh.read(&record.id).await.err(),
        Some(StoreError::Corrupt)
    );
    assert_eq!(
        fresh.authenticate(&bearer, now()).await.err(),
        Some(BearerRefused::Invalid)
    );
}

#[tokio::test]
async fn with_the_store_stopped_a_record_is_served_within_the_bound_and_refused_after_it() {
    const BOUND: Duration = Duration::from_secs(4);
    let Some(mut fixture) = fixture().await else {
        return;
    };
    let delegations = fixture.instance(&[("v1", 1)], BOUND);
    let (record, bearer) = record(&delegations);
    delegations.create(&record).await.unwrap();
    let read_at = tokio::time::Instant::now();
    assert!(delegations.authenticate(&bearer, now()).await.is_ok());

    fixture.azurite.stop().await;
    // Within the bound the copy read before the stop still serves (skipped if this machine was too
    // slow to get here inside the bound: that proves nothing either way).
    if read_at.elapsed() < BOUND {
        assert!(delegations.authenticate(&bearer, now()).await.is_ok());
    }
    tokio::time::sleep_until(read_at + BOUND).await;
    assert_eq!(
        delegations.authenticate(&bearer, now()).await.err(),
        Some(BearerRefused::Unavailable)
    );
    let (another, _) = self::record(&delegations);
    assert_eq!(
        delegations.create(&another).await.err(),
        Some(StoreError::Unavailable)
    );
    assert!(!delegations.health().reachable);
}
