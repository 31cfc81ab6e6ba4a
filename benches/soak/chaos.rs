//! The faults and key rotations of the soak: every `FAULT_EVERY` the next fault of `FAULTS` is
//! injected into the emulator for `FAULT_FOR`, and every `ROTATE_EVERY` the signing keys roll over
//! (every other time retiring the previous key) and the caller tokens are minted again.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::emulator::Emulator;
use crate::tally::Tally;
use crate::traffic::{SharedTokens, Tokens};

const FAULT_EVERY: Duration = Duration::from_secs(10);
const FAULT_FOR: Duration = Duration::from_secs(4);
const ROTATE_EVERY: Duration = Duration::from_secs(45);

/// (target, fault) in the order they are injected.
fn faults() -> [(&'static str, Value); 9] {
    [
        ("token", json!({"mode": "500"})),
        ("token", json!({"mode": "429", "retry_after": 2})),
        ("jwks", json!({"mode": "500"})),
        ("token", json!({"mode": "down"})),
        ("key_vault", json!({"mode": "500"})),
        ("token", json!({"mode": "garbage"})),
        ("identity", json!({"mode": "down"})),
        ("token", json!({"mode": "slow", "delay_ms": 3000})),
        ("discovery", json!({"mode": "garbage"})),
    ]
}

pub async fn run(
    emulator: Arc<Emulator>,
    tokens: SharedTokens,
    tally: Arc<Tally>,
    deadline: Instant,
) -> anyhow::Result<()> {
    let started = Instant::now();
    let (mut next_fault, mut next_rotation) = (started + FAULT_EVERY, started + ROTATE_EVERY);
    let mut retire = false;
    for (target, fault) in faults().into_iter().cycle() {
        let now = Instant::now();
        if now >= deadline {
            break;
        }
        if next_rotation <= next_fault && next_rotation < deadline {
            tokio::time::sleep_until(next_rotation.into()).await;
            emulator.rotate_keys(retire).await?;
            let fresh = Arc::new(Tokens::mint(&emulator).await?);
            *tokens.write().expect("tokens poisoned") = fresh;
            tally.count_rotation();
            retire = !retire;
            next_rotation += ROTATE_EVERY;
        }
        tokio::time::sleep_until(next_fault.into()).await;
        if Instant::now() + FAULT_FOR > deadline {
            break;
        }
        let mut spec = fault;
        spec["target"] = json!(target);
        emulator.inject_fault(spec).await?;
        tally.count_fault();
        tokio::time::sleep(FAULT_FOR).await;
        emulator
            .inject_fault(json!({"target": target, "mode": "none"}))
            .await?;
        next_fault += FAULT_EVERY;
    }
    Ok(())
}
