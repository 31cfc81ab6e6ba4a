//! Injected failures per target (token endpoint, JWKS, discovery, Key Vault, identity endpoint, or all):
//! what is active and how a request consumes one. The answer a faulted request gets is `routes`'.

use serde_json::{Value, json};
use std::collections::HashMap;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Target {
    Token,
    Jwks,
    Discovery,
    KeyVault,
    Identity,
    All,
}

impl Target {
    pub fn name(self) -> &'static str {
        match self {
            Self::Token => "token",
            Self::Jwks => "jwks",
            Self::Discovery => "discovery",
            Self::KeyVault => "key_vault",
            Self::Identity => "identity",
            Self::All => "all",
        }
    }

    fn parse(name: &str) -> Option<Self> {
        [
            Self::Token,
            Self::Jwks,
            Self::Discovery,
            Self::KeyVault,
            Self::Identity,
            Self::All,
        ]
        .into_iter()
        .find(|target| target.name() == name)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Close the connection without an answer.
    Down,
    /// Wait `delay_ms`, then answer normally.
    Slow,
    TooManyRequests,
    ServerError,
    /// 200 with an HTML body.
    Garbage,
    /// Identity endpoint only: 200 with a token that expired 10 minutes ago while `expires_on` claims
    /// the usual lifetime (an endpoint that overstates a token's life).
    StaleToken,
}

impl Mode {
    pub fn name(self) -> &'static str {
        match self {
            Self::Down => "down",
            Self::Slow => "slow",
            Self::TooManyRequests => "429",
            Self::ServerError => "500",
            Self::Garbage => "garbage",
            Self::StaleToken => "stale_token",
        }
    }
}

#[derive(Clone, Copy, Debug)]
pub struct Fault {
    pub mode: Mode,
    remaining: Option<u64>,
    pub delay_ms: u64,
    pub retry_after: u64,
}

#[derive(Default)]
pub struct Faults {
    active: HashMap<Target, Fault>,
}

impl Faults {
    /// Applies a `POST /_emulator/faults` body; mode `none` clears the target (`all` + `none` clears every target).
    pub fn apply(&mut self, body: &Value) -> Result<(), String> {
        let object = body.as_object().ok_or("the body must be a JSON object")?;
        if let Some(unknown) = object.keys().find(|key| {
            !["target", "mode", "count", "delay_ms", "retry_after"].contains(&key.as_str())
        }) {
            return Err(format!("unknown field '{unknown}'"));
        }
        let target = object
            .get("target")
            .and_then(Value::as_str)
            .and_then(Target::parse)
            .ok_or("target must be one of token, jwks, discovery, key_vault, identity, all")?;
        let mode = match object.get("mode") {
            Some(Value::String(mode)) => mode.clone(),
            Some(Value::Number(mode)) => mode.to_string(),
            _ => return Err("mode is required".into()),
        };
        let mode = match mode.as_str() {
            "none" => None,
            "down" => Some(Mode::Down),
            "slow" => Some(Mode::Slow),
            "429" => Some(Mode::TooManyRequests),
            "500" => Some(Mode::ServerError),
            "garbage" => Some(Mode::Garbage),
            "stale_token" if target == Target::Identity => Some(Mode::StaleToken),
            "stale_token" => return Err("mode stale_token is for target identity only".into()),
            _ => {
                return Err(
                    "mode must be one of none, down, slow, 429, 500, garbage, stale_token".into(),
                );
            }
        };
        let number = |name: &str| -> Result<Option<u64>, String> {
            match object.get(name) {
                None | Some(Value::Null) => Ok(None),
                Some(value) => value
                    .as_u64()
                    .map(Some)
                    .ok_or_else(|| format!("{name} must be a non-negative integer")),
            }
        };
        let remaining = number("count")?;
        if remaining == Some(0) {
            return Err("count must be at least 1".into());
        }
        let delay_ms = number("delay_ms")?.unwrap_or(1_000).min(600_000);
        let retry_after = number("retry_after")?.unwrap_or(2);
        match mode {
            None if target == Target::All => self.active.clear(),
            None => {
                self.active.remove(&target);
            }
            Some(mode) => {
                self.active.insert(
                    target,
                    Fault {
                        mode,
                        remaining,
                        delay_ms,
                        retry_after,
                    },
                );
            }
        }
        Ok(())
    }

    /// The fault this request meets, if any; a target's own fault wins over `all`. Counts down `count`.
    pub fn take(&mut self, target: Target) -> Option<Fault> {
        let key = [target, Target::All]
            .into_iter()
            .find(|key| self.active.contains_key(key))?;
        let fault = self.active.get_mut(&key)?;
        let taken = *fault;
        if let Some(remaining) = &mut fault.remaining {
            *remaining -= 1;
            if *remaining == 0 {
                self.active.remove(&key);
            }
        }
        Some(taken)
    }

    pub fn describe(&self) -> Value {
        let faults: serde_json::Map<String, Value> = self
            .active
            .iter()
            .map(|(target, fault)| {
                (
                    target.name().to_owned(),
                    json!({
                        "mode": fault.mode.name(),
                        "remaining": fault.remaining,
                        "delay_ms": fault.delay_ms,
                        "retry_after": fault.retry_after,
                    }),
                )
            })
            .collect();
        json!({ "faults": faults })
    }
}
