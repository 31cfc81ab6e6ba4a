//! Routing: which service a request is for, counting it, applying any injected fault, calling the
//! handler, and the one log line per request (method, path, status, target, fault, elapsed; nothing else).

use crate::entra_error::AadstsCode;
use crate::faults::{Fault, Mode, Target};
use crate::http::{self, Listener, Request, Response};
use crate::state::State;
use crate::stats::Counter;
use crate::{
    aadsts, control, discovery, key_vault, key_vault_list, log, managed_identity, token_route,
};
use serde_json::json;
use std::time::{Duration, Instant};
use warp::http::StatusCode;

/// What a request is for.
enum Route<'a> {
    Discovery {
        tenant: &'a str,
        v2: bool,
    },
    Jwks {
        tenant: &'a str,
        v2: bool,
    },
    Token {
        tenant: &'a str,
    },
    KeyVault {
        name: &'a str,
        version: Option<&'a str>,
    },
    KeyVaultVersions {
        name: &'a str,
    },
    Identity,
    Control(Vec<&'a str>),
    NotFound,
}

fn classify<'a>(listener: Listener, segments: &[&'a str]) -> Route<'a> {
    let is = |segment: &str, expected: &str| segment.eq_ignore_ascii_case(expected);
    match (listener, segments) {
        (Listener::Https, [s, name]) if is(s, "secrets") => Route::KeyVault {
            name,
            version: None,
        },
        (Listener::Https, [s, name, v]) if is(s, "secrets") && is(v, "versions") => {
            Route::KeyVaultVersions { name }
        }
        (Listener::Https, [s, name, version]) if is(s, "secrets") => Route::KeyVault {
            name,
            version: Some(version),
        },
        (Listener::Https, [tenant, v, w, o])
            if is(v, "v2.0") && is(w, ".well-known") && is(o, "openid-configuration") =>
        {
            Route::Discovery { tenant, v2: true }
        }
        (Listener::Https, [tenant, w, o])
            if is(w, ".well-known") && is(o, "openid-configuration") =>
        {
            Route::Discovery { tenant, v2: false }
        }
        (Listener::Https, [tenant, d, v, k])
            if is(d, "discovery") && is(v, "v2.0") && is(k, "keys") =>
        {
            Route::Jwks { tenant, v2: true }
        }
        (Listener::Https, [tenant, d, k]) if is(d, "discovery") && is(k, "keys") => {
            Route::Jwks { tenant, v2: false }
        }
        (Listener::Https, [tenant, o, v, t])
            if is(o, "oauth2") && is(v, "v2.0") && is(t, "token") =>
        {
            Route::Token { tenant }
        }
        (Listener::Http, [m, t]) if is(m, "msi") && is(t, "token") => Route::Identity,
        (Listener::Http, [first, rest @ ..]) if *first == "_emulator" => {
            Route::Control(rest.to_vec())
        }
        _ => Route::NotFound,
    }
}

impl Route<'_> {
    fn target(&self) -> Option<Target> {
        match self {
            Self::Discovery { .. } => Some(Target::Discovery),
            Self::Jwks { .. } => Some(Target::Jwks),
            Self::Token { .. } => Some(Target::Token),
            Self::KeyVault { .. } | Self::KeyVaultVersions { .. } => Some(Target::KeyVault),
            Self::Identity => Some(Target::Identity),
            Self::Control(_) | Self::NotFound => None,
        }
    }

    /// The counter a request to this route bumps (the token endpoint's depends on the grant type).
    fn counter(&self, request: &Request) -> Option<Counter> {
        match self {
            Self::Discovery { .. } => Some(Counter::Discovery),
            Self::Jwks { .. } => Some(Counter::Jwks),
            Self::Token { .. } => Some(token_route::counter(request)),
            Self::KeyVault { .. } | Self::KeyVaultVersions { .. } => Some(Counter::KeyVault),
            Self::Identity => Some(Counter::Identity),
            Self::Control(_) | Self::NotFound => None,
        }
    }
}

/// Answers one request; a response carrying `http::DropConnection` makes the server hang up instead.
pub async fn dispatch(state: &State, request: Request) -> Response {
    let started = Instant::now();
    let segments = request.segments();
    let route = classify(request.listener, &segments);
    let target = route.target();
    let mut fault_mode = None;
    let response = match target {
        None => answer(state, &request, &route).await,
        Some(target) => {
            if let Some(counter) = route.counter(&request) {
                state.stats.bump(counter);
            }
            let fault = state.faults().take(target);
            fault_mode = fault.map(|fault| fault.mode);
            let response = match fault {
                Some(fault) if fault.mode == Mode::Down => http::drop_connection(),
                Some(fault) if fault.mode == Mode::StaleToken => {
                    managed_identity::handle_stale(state, &request)
                }
                Some(fault) if fault.mode != Mode::Slow => fault_answer(&fault, target, &request),
                slow => {
                    if let Some(fault) = slow {
                        tokio::time::sleep(Duration::from_millis(fault.delay_ms)).await;
                    }
                    answer(state, &request, &route).await
                }
            };
            let failed = fault_mode == Some(Mode::Down) || response.status() != StatusCode::OK;
            if target == Target::Token && failed {
                state.stats.bump(Counter::TokenErrors);
            }
            response
        }
    };
    let dropped = response
        .extensions()
        .get::<http::DropConnection>()
        .is_some();
    log::event(&json!({
        "event": "request",
        "listener": request.listener.name(),
        "method": request.method.as_str(),
        "path": request.path,
        "status": (!dropped).then(|| response.status().as_u16()),
        "target": target.map(Target::name),
        "fault": fault_mode.map(Mode::name),
        "aadsts": response.extensions().get::<AadstsCode>().map(|code| code.0),
        "elapsed_ms": u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
    }));
    response
}

async fn answer(state: &State, request: &Request, route: &Route<'_>) -> Response {
    match route {
        Route::Discovery { tenant, v2 } => {
            discovery::openid_configuration(state, request, tenant, *v2)
        }
        Route::Jwks { tenant, v2 } => discovery::keys(state, request, tenant, *v2),
        Route::Token { tenant } => token_route::handle(state, request, tenant),
        Route::KeyVault { name, version } => key_vault::handle(state, request, name, *version),
        Route::KeyVaultVersions { name } => key_vault_list::handle(state, request, name),
        Route::Identity => managed_identity::handle(state, request),
        Route::Control(rest) => control::handle(state, request, rest).await,
        Route::NotFound => http::json(StatusCode::NOT_FOUND, &json!({"error": "not_found"})),
    }
}

/// The answer to a request that met a 429, 500 or garbage fault, shaped like the real service's.
fn fault_answer(fault: &Fault, target: Target, request: &Request) -> Response {
    match fault.mode {
        Mode::Garbage => http::text(
            StatusCode::OK,
            "text/html; charset=utf-8",
            "<html>oops</html>".into(),
        ),
        Mode::TooManyRequests => {
            let mut response = match target {
                Target::KeyVault => key_vault::throttled(),
                Target::Identity => {
                    managed_identity::failure(StatusCode::TOO_MANY_REQUESTS, "Too many requests.")
                }
                _ => aadsts::throttled().respond(request),
            };
            http::set_header(&mut response, "retry-after", &fault.retry_after.to_string());
            response
        }
        _ => match target {
            Target::KeyVault => key_vault::internal_error(),
            Target::Identity => managed_identity::failure(
                StatusCode::INTERNAL_SERVER_ERROR,
                "An unexpected error occured while fetching the AAD Token.",
            ),
            _ => aadsts::server_error().respond(request),
        },
    }
}
