//! The soak's request mix: valid service and On-Behalf-Of requests from several callers, and hostile
//! ones (forged, expired, foreign and mis-addressed tokens, malformed bodies), each with the rule its
//! answer must follow. A worker sends them in a fixed rotation so every run has the same mix. The few
//! fixed callers are answered from the broker's token cache through every fault, so the mix also has a
//! user the broker has never seen: a cache miss that reaches the token endpoint and meets its faults.

use std::net::SocketAddr;
use std::sync::{Arc, RwLock};

use serde_json::{Value, json};

use crate::emulator::Emulator;

pub const SQL_RESOURCE: &str = "https://database.windows.net";
const SQL_SCOPE: &str = "https://database.windows.net/.default";
const MSI_CALLER_OID: &str = "1a2b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d";
const BROKER_SP_OID: &str = "5c1f0e2d-8b3a-4f7c-9d6e-1a2b3c4d5e6f";
const FOREIGN_TENANT_ID: &str = "9e8d7c6b-5a49-4837-a625-1403f2e1d0c9";
/// Distinct users whose On-Behalf-Of tokens must never be mixed up.
pub const USERS: [&str; 4] = [
    "3c4d5e6f-7a8b-4c9d-8e0f-2a3b4c5d6e7f",
    "4d5e6f7a-8b9c-4dae-9f01-3b4c5d6e7f80",
    "5e6f7a8b-9cad-4ebf-8012-4c5d6e7f8091",
    "6f7a8b9c-adbe-4fc0-9123-5d6e7f8091a2",
];

/// The caller tokens in use: minted again after every key rotation.
pub struct Tokens {
    msi: String,
    users: Vec<String>,
    forged: String,
    expired: String,
    wrong_audience: String,
    foreign: String,
}

impl Tokens {
    pub async fn mint(emulator: &Emulator) -> anyhow::Result<Self> {
        let mut users = Vec::with_capacity(USERS.len());
        for (i, oid) in USERS.iter().enumerate() {
            let upn = format!("user{i}@contoso.com");
            users.push(
                emulator
                    .mint(json!({"kind": "user", "oid": oid, "upn": upn}))
                    .await?,
            );
        }
        Ok(Self {
            msi: emulator.mint(json!({"kind": "msi"})).await?,
            users,
            forged: emulator
                .mint(json!({"kind": "msi", "key": "unpublished"}))
                .await?,
            expired: emulator
                .mint(json!({"kind": "msi", "lifetime_seconds": -600}))
                .await?,
            wrong_audience: emulator
                .mint(json!({"kind": "msi", "audience": "https://graph.microsoft.com"}))
                .await?,
            foreign: emulator
                .mint(json!({"kind": "msi", "tenant": FOREIGN_TENANT_ID}))
                .await?,
        })
    }
}

pub type SharedTokens = Arc<RwLock<Arc<Tokens>>>;

/// One request of the mix.
#[derive(Clone, Copy, Debug)]
pub enum Case {
    /// GetSPToken for the SQL scope, as the allowlisted managed identity.
    ServiceScope,
    /// `/api/token`, lane service, as the managed identity.
    ServiceLane,
    /// `/api/token`, lane user, as user `n`: the token must be that user's.
    UserObo(usize),
    /// `/api/token`, lane user, as a [`NewUser`] minted for this one request.
    NewUserObo,
    Forged,
    Expired,
    WrongAudience,
    ForeignTenant,
    NotAJws,
    NoBearer,
    BodyNotJson,
    WrongMediaType,
    Oversized,
    ScopeNotAllowed,
    UnknownAudience,
    AppOnUserLane,
}

/// Half valid, half hostile.
pub const MIX: [Case; 23] = [
    Case::ServiceScope,
    Case::UserObo(0),
    Case::Forged,
    Case::ServiceLane,
    Case::UserObo(1),
    Case::Expired,
    Case::ServiceScope,
    Case::UserObo(2),
    Case::WrongAudience,
    Case::ServiceLane,
    Case::UserObo(3),
    Case::ForeignTenant,
    Case::NotAJws,
    Case::NoBearer,
    Case::BodyNotJson,
    Case::WrongMediaType,
    Case::ServiceScope,
    Case::Oversized,
    Case::ScopeNotAllowed,
    Case::UnknownAudience,
    Case::AppOnUserLane,
    Case::UserObo(0),
    Case::NewUserObo,
];

/// A user of the tenant minted for one request, so that the broker has no token cached for them.
pub struct NewUser {
    pub oid: String,
    token: String,
}

impl NewUser {
    /// The `n`th new user of `worker`.
    pub async fn mint(emulator: &Emulator, worker: usize, n: u64) -> anyhow::Result<Self> {
        let oid = format!("00000000-0000-4000-8000-{worker:04x}{n:08x}");
        let upn = format!("new-{worker}-{n}@contoso.com");
        let token = emulator
            .mint(json!({"kind": "user", "oid": oid, "upn": upn}))
            .await?;
        Ok(Self { oid, token })
    }
}

/// What a correct token for a valid case is issued to; `None` for hostile cases, which must never get
/// a 200.
pub fn expected_oid(case: Case, new_user: Option<&NewUser>) -> Option<&str> {
    match case {
        Case::ServiceScope | Case::ServiceLane => Some(BROKER_SP_OID),
        Case::UserObo(user) => USERS.get(user).copied(),
        Case::NewUserObo => new_user.map(|user| user.oid.as_str()),
        _ => None,
    }
}

/// The GetSPToken answer's `caller.oid` a valid service-scope request must report.
pub fn expected_caller(case: Case) -> Option<&'static str> {
    matches!(case, Case::ServiceScope).then_some(MSI_CALLER_OID)
}

/// Sends `case` (`new_user` is the caller of a `NewUserObo`) and returns the status and the JSON body
/// (`Null` if the body is not JSON).
pub async fn send(
    client: &reqwest::Client,
    broker: SocketAddr,
    tokens: &Tokens,
    case: Case,
    new_user: Option<&NewUser>,
) -> reqwest::Result<(u16, Value)> {
    let get_sp_token = format!("http://{broker}/api/GetSPToken");
    let token = format!("http://{broker}/api/token");
    let sql = json!({"targetScope": SQL_SCOPE});
    let service = json!({"audience": "sql", "lane": "service"});
    let (url, bearer, body, media_type) = match case {
        Case::ServiceScope => (
            get_sp_token,
            Some(tokens.msi.as_str()),
            sql.to_string(),
            JSON,
        ),
        Case::ServiceLane => (token, Some(tokens.msi.as_str()), service.to_string(), JSON),
        Case::UserObo(user) => (
            token,
            tokens.users.get(user).map(String::as_str),
            json!({"audience": "sql", "lane": "user"}).to_string(),
            JSON,
        ),
        Case::NewUserObo => (
            token,
            new_user.map(|user| user.token.as_str()),
            json!({"audience": "sql", "lane": "user"}).to_string(),
            JSON,
        ),
        Case::Forged => (
            get_sp_token,
            Some(tokens.forged.as_str()),
            sql.to_string(),
            JSON,
        ),
        Case::Expired => (
            get_sp_token,
            Some(tokens.expired.as_str()),
            sql.to_string(),
            JSON,
        ),
        Case::WrongAudience => (
            token,
            Some(tokens.wrong_audience.as_str()),
            service.to_string(),
            JSON,
        ),
        Case::ForeignTenant => (
            get_sp_token,
            Some(tokens.foreign.as_str()),
            sql.to_string(),
            JSON,
        ),
        Case::NotAJws => (get_sp_token, Some("a.b.c"), sql.to_string(), JSON),
        Case::NoBearer => (token, None, service.to_string(), JSON),
        Case::BodyNotJson => (
            get_sp_token,
            Some(tokens.msi.as_str()),
            "{\"targetScope\":".into(),
            JSON,
        ),
        Case::WrongMediaType => (
            get_sp_token,
            Some(tokens.msi.as_str()),
            sql.to_string(),
            "text/plain",
        ),
        Case::Oversized => (
            token,
            Some(tokens.msi.as_str()),
            json!({"audience": "sql", "pad": "x".repeat(9 * 1024)}).to_string(),
            JSON,
        ),
        Case::ScopeNotAllowed => (
            get_sp_token,
            Some(tokens.msi.as_str()),
            json!({"targetScope": "https://graph.microsoft.com/.default"}).to_string(),
            JSON,
        ),
        Case::UnknownAudience => (
            token,
            Some(tokens.msi.as_str()),
            json!({"audience": "nowhere", "lane": "service"}).to_string(),
            JSON,
        ),
        Case::AppOnUserLane => (
            token,
            Some(tokens.msi.as_str()),
            json!({"audience": "sql", "lane": "user"}).to_string(),
            JSON,
        ),
    };
    let mut request = client
        .post(url)
        .header("content-type", media_type)
        .body(body);
    if let Some(bearer) = bearer {
        request = request.bearer_auth(bearer);
    }
    let response = request.send().await?;
    let status = response.status().as_u16();
    let bytes = response.bytes().await?;
    Ok((
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    ))
}

const JSON: &str = "application/json";
