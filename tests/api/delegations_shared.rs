//! Delegations across broker processes sharing one Azure Blob container (Azurite, HTTPS, `--oauth
//! basic`): made on one instance and redeemed on another, revoked on one and refused on the other within
//! the revocation bound (measured), two instances refreshing one delegation at once under strict refresh
//! tokens, and the store going away.

use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};

use crate::helpers::assertions::{assert_error, json_body};
use crate::helpers::azurite::TestAzurite;
use crate::helpers::broker::TestBroker;
use crate::helpers::emulator::TestEmulator;
use crate::helpers::ids::MSI_OID;

const CONTAINER: &str = "delegations";
const POLICY_SECRET: &str = "broker-policy";
const KEY_SECRET: &str = "delegation-key";
/// The revocation bound the instances run with (the default).
const BOUND: Duration = Duration::from_secs(5);

fn document() -> Value {
    json!({
        "revision": 1,
        "audiences": {
            "sql": "https://database.windows.net/.default",
            "storage": "https://storage.azure.com/.default",
        },
        "grants": [
            {"name": "backend-user", "apps": [MSI_OID], "lane": "user",
             "audiences": ["sql", "storage"], "delegate": true},
            {"name": "backend-service", "apps": [MSI_OID], "lane": "service",
             "audiences": ["sql"], "delegate": true},
            {"name": "users-own", "users": "tenant", "lane": "user", "audiences": ["sql", "storage"]},
        ],
    })
}

struct Shared {
    emulator: TestEmulator,
    azurite: TestAzurite,
}

/// The emulator (policy and sealing key in its Key Vault) and Azurite with the container; `None` when
/// Azurite is not installed outside CI.
async fn shared() -> Option<Shared> {
    let emulator = TestEmulator::start().await;
    let azurite = TestAzurite::start().await?;
    azurite.create_container(&emulator, CONTAINER).await;
    emulator
        .set_secret(POLICY_SECRET, &document().to_string())
        .await;
    emulator
        .set_secret(KEY_SECRET, &STANDARD.encode([7u8; 32]))
        .await;
    Some(Shared { emulator, azurite })
}

impl Shared {
    /// One broker instance on the shared container.
    async fn instance(&self) -> TestBroker {
        let store = self.azurite.container_url(CONTAINER);
        let bundle = self.azurite.trust_bundle(&self.emulator);
        let bundle = bundle.to_str().expect("a UTF-8 path");
        TestBroker::spawn_with(
            &self.emulator,
            &[
                ("BROKER_POLICY_SECRET_NAME", POLICY_SECRET),
                ("BROKER_DELEGATION_STORE", &store),
                ("BROKER_DELEGATION_KEY_NAME", KEY_SECRET),
                ("SSL_CERT_FILE", bundle),
            ],
        )
        .await
    }
}

async fn create(broker: &TestBroker, delegator: &str, body: Value) -> Value {
    let response = broker
        .post_json_as("/api/delegations", delegator, &body)
        .await;
    assert_eq!(response.status(), 201);
    json_body(response).await
}

fn bearer_of(created: &Value) -> &str {
    created["token"].as_str().expect("a bearer")
}

/// A service-lane delegation of `sql` made on `maker` by `backend`, then redeemed `times` times on
/// `redeemer`, each answered 200 (after the first, from the redeemer's token cache); its 201 body.
async fn service_delegation_redeemed(
    maker: &TestBroker,
    redeemer: &TestBroker,
    backend: &str,
    times: usize,
) -> Value {
    let created = create(
        maker,
        backend,
        json!({"lane": "service", "audiences": ["sql"]}),
    )
    .await;
    for _ in 0..times {
        let redeemed = redeemer
            .token(bearer_of(&created), json!({"audience": "sql"}))
            .await;
        assert_eq!(redeemed.status(), 200, "made on one, redeemed on the other");
    }
    created
}

#[tokio::test]
async fn made_on_one_instance_redeemed_on_another_and_revoked_there_within_the_bound() {
    // Arrange: two instances, twenty delegations made on the first and each redeemed on the second.
    let Some(shared) = shared().await else { return };
    let (first, second) = (shared.instance().await, shared.instance().await);
    let backend = shared.emulator.msi_token().await;
    let mut delegations = Vec::new();
    for _ in 0..20 {
        delegations.push(service_delegation_redeemed(&first, &second, &backend, 1).await);
    }

    // Act: revoke each on the first; poll the second until it refuses.
    let mut latencies = Vec::new();
    for created in &delegations {
        let id = created["id"].as_str().unwrap();
        let revoked_at = Instant::now();
        let revoked = first
            .delete(&format!("/api/delegations/{id}"), &backend)
            .await;
        assert_eq!(revoked.status(), 204);
        let refused = loop {
            let response = second
                .token(bearer_of(created), json!({"audience": "sql"}))
                .await;
            if response.status() != 200 || revoked_at.elapsed() > BOUND * 2 {
                break response;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        latencies.push(revoked_at.elapsed());
        assert_error(refused, 401, "invalid_token").await;
    }

    // Assert: every revocation held on the other instance within the bound (plus a poll interval).
    latencies.sort();
    eprintln!(
        "revocation latency across two instances, 20 delegations: median {:?}, worst {:?} (bound {BOUND:?})",
        latencies[10], latencies[19]
    );
    assert!(
        latencies[19] <= BOUND + Duration::from_millis(500),
        "worst {:?}",
        latencies[19]
    );
}

#[tokio::test]
async fn redemptions_on_one_instance_cache_hits_included_reach_a_read_on_another_within_the_bound()
{
    // Arrange
    let Some(shared) = shared().await else { return };
    let (first, second) = (shared.instance().await, shared.instance().await);
    let backend = shared.emulator.msi_token().await;

    // Act: three tokens on the second instance, the last two from its token cache.
    let created = service_delegation_redeemed(&first, &second, &backend, 3).await;
    let path = format!("/api/delegations/{}", created["id"].as_str().unwrap());
    let redeemed_at = Instant::now();
    let read = loop {
        let read = json_body(first.get(&path, Some(&backend)).await).await;
        if read["redemptions"] == 3 || redeemed_at.elapsed() > BOUND * 2 {
            break read;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };

    // Assert
    assert_eq!(read["redemptions"], 3, "{read}");
    assert!(read["last_used"].is_u64(), "{read}");
    assert!(
        redeemed_at.elapsed() <= BOUND + Duration::from_secs(2),
        "counted after {:?}",
        redeemed_at.elapsed()
    );
}

#[tokio::test]
async fn an_instance_stopped_before_its_next_write_still_writes_its_redemption_counts() {
    // Arrange
    let Some(shared) = shared().await else { return };
    let first = shared.instance().await;
    let mut second = shared.instance().await;
    let backend = shared.emulator.msi_token().await;
    let created = service_delegation_redeemed(&first, &second, &backend, 2).await;
    let path = format!("/api/delegations/{}", created["id"].as_str().unwrap());

    // Act: SIGTERM well within the first write interval.
    let exit = second.terminate(BOUND).await;
    let read = json_body(first.get(&path, Some(&backend)).await).await;

    // Assert
    assert!(exit.is_some_and(|status| status.success()), "{exit:?}");
    assert_eq!(read["redemptions"], 2, "{read}");
}

#[tokio::test]
async fn two_instances_refreshing_one_delegation_at_once_lose_no_refresh_token() {
    // Arrange: strict refresh tokens, so a refresh token redeemed twice is refused.
    let Some(shared) = shared().await else { return };
    shared.emulator.set_strict_refresh_tokens(true).await;
    let (first, second) = (shared.instance().await, shared.instance().await);
    let backend = shared.emulator.msi_token().await;
    let subject = shared.emulator.user_token().await;
    let created = create(
        &first,
        &backend,
        json!({"lane": "user", "audiences": ["sql", "storage"], "subject_token": subject}),
    )
    .await;
    let bearer = bearer_of(&created);

    // Act: both instances refresh for `storage` at the same moment.
    let (one, two) = tokio::join!(
        first.token(bearer, json!({"audience": "storage"})),
        second.token(bearer, json!({"audience": "storage"})),
    );

    // Assert: both served, and the record still holds a live refresh token: `sql`, never asked
    // before, is refreshed from it on either instance.
    assert_eq!((one.status().as_u16(), two.status().as_u16()), (200, 200));
    let sql = second.token(bearer, json!({"audience": "sql"})).await;
    assert_eq!(sql.status(), 200);
    let state = json_body(
        first
            .get(
                &format!("/api/delegations/{}", created["id"].as_str().unwrap()),
                Some(&backend),
            )
            .await,
    )
    .await;
    assert_eq!(state["state"], "active");
}

#[tokio::test]
async fn with_the_store_stopped_creation_is_refused_and_redemption_serves_only_within_the_bound() {
    // Arrange
    let Some(mut shared) = shared().await else {
        return;
    };
    let broker = shared.instance().await;
    let backend = shared.emulator.msi_token().await;
    let created = create(
        &broker,
        &backend,
        json!({"lane": "service", "audiences": ["sql"]}),
    )
    .await;
    let bearer = bearer_of(&created).to_owned();
    assert_eq!(
        broker
            .token(&bearer, json!({"audience": "sql"}))
            .await
            .status(),
        200
    );
    let read_at = Instant::now();

    // Act
    shared.azurite.stop().await;
    let creation = broker
        .post_json_as(
            "/api/delegations",
            &backend,
            &json!({"lane": "service", "audiences": ["sql"]}),
        )
        .await;
    let within = broker.token(&bearer, json!({"audience": "sql"})).await;
    let served_within = read_at.elapsed() < BOUND;
    tokio::time::sleep(BOUND.saturating_sub(read_at.elapsed()) + Duration::from_millis(200)).await;
    let after = broker.token(&bearer, json!({"audience": "sql"})).await;

    // Assert
    assert_error(creation, 503, "delegation_store_unavailable").await;
    if served_within {
        assert_eq!(
            within.status(),
            200,
            "within the bound the record read before is served"
        );
    }
    let after = assert_error(after, 503, "delegation_store_unavailable").await;
    assert!(after.get("claims").is_none());
}

#[tokio::test]
async fn the_container_holds_no_bearer_and_no_readable_refresh_token() {
    let Some(shared) = shared().await else { return };
    let broker = shared.instance().await;
    let backend = shared.emulator.msi_token().await;
    let subject = shared.emulator.user_token().await;
    let created = create(
        &broker,
        &backend,
        json!({"lane": "user", "audiences": ["sql"], "subject_token": subject}),
    )
    .await;
    assert_eq!(
        broker
            .token(bearer_of(&created), json!({"audience": "sql"}))
            .await
            .status(),
        200
    );

    let blobs = shared.azurite.raw_blobs(&shared.emulator, CONTAINER).await;

    assert_eq!(blobs.len(), 1);
    let stored = String::from_utf8_lossy(&blobs[0]);
    assert!(
        !stored.contains(bearer_of(&created)),
        "the bearer is stored"
    );
    assert!(!stored.contains("tbdlg_"), "a bearer is stored");
    // The emulator's refresh tokens start `1.AQ`; the stored one is sealed.
    assert!(
        !stored.contains("1.AQ"),
        "a readable refresh token is stored: {stored}"
    );
    assert!(!stored.contains(&subject), "the subject token is stored");
}
