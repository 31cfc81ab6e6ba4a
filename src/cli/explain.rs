//! `policy explain`: the caller described or read from a token, and the decision the broker would make
//! for it, with the grant or the refusal's code and reason.

use std::io::Write;

use crate::broker::Lane;
use crate::broker::caller::Caller;
use crate::broker::error::BrokerError;
use crate::broker::excerpt::quoted;
use crate::broker::ids::Guid;
use crate::broker::policy::{Ask, Grant, Policy};
use crate::broker::scope::TargetScope;
use crate::broker::validation::unverified_caller;
use crate::cli::args::{CallerSpec, Explain, Target};
use crate::cli::{input, shown};
use crate::http::request::MAX_BEARER;

/// A token file may end with a line break the route would not have carried.
const LINE_BREAK: usize = 2;

pub(super) fn caller_of(spec: &CallerSpec) -> Result<Caller, String> {
    let (kind, oid, roles, groups) = match spec {
        CallerSpec::Token(path) => {
            let bytes = input::read_regular(path, MAX_BEARER + LINE_BREAK)
                .map_err(|err| format!("{}: cannot be read: {err}", shown(path)))?;
            // The route's own limit: a token the route would refuse is not explained.
            let text = String::from_utf8_lossy(&bytes);
            if text.trim().len() > MAX_BEARER {
                return Err(format!(
                    "{}: longer than the {MAX_BEARER} bytes a bearer token may have",
                    shown(path)
                ));
            }
            return unverified_caller(&text)
                .map_err(|err| format!("{}: not an Entra access token ({err})", shown(path)));
        }
        CallerSpec::Made {
            kind,
            oid,
            roles,
            groups,
        } => (kind, oid, roles, groups),
    };
    let guid = |text: &str| {
        text.parse::<Guid>()
            .map_err(|_| format!("{} is not an object id (a GUID)", quoted(text)))
    };
    Ok(Caller {
        kind: *kind,
        oid: guid(oid)?,
        tenant: guid("00000000-0000-0000-0000-000000000000")?,
        app_id: None,
        display: oid.as_str().into(),
        scopes: Vec::new(),
        roles: roles.clone(),
        groups: groups.iter().map(|g| guid(g)).collect::<Result<_, _>>()?,
        group_overage: false,
        expires_at: 0,
        kid: String::new(),
    })
}

pub(super) fn decide(
    explain: &Explain,
    policy: &Policy,
    caller: &Caller,
    out: &mut impl Write,
) -> std::io::Result<bool> {
    if matches!(explain.caller, CallerSpec::Token(_)) {
        writeln!(
            out,
            "note: the token was read offline; its signature and lifetime were not checked"
        )?;
    }
    if caller.group_overage {
        writeln!(
            out,
            "note: the token has group overage (no groups claim), so no group grant can match"
        )?;
    }
    let (scope, via_alias, default_lane) = match &explain.target {
        Target::Scope(text) => match TargetScope::parse(text) {
            // GetSPToken: always the service lane.
            Ok(scope) => (scope, false, Ok(Lane::Service)),
            Err(err) => {
                let reason = format!("{} is malformed: {err}", quoted(text));
                return deny(out, "invalid_scope", &reason);
            }
        },
        Target::Audience(alias) => match policy.resolve_audience(alias) {
            Ok(scope) => (scope, true, Lane::choose(caller.kind, None)),
            Err(_) => {
                let known: Vec<&str> = policy.audiences.aliases().collect();
                let reason = format!(
                    "{} is not an alias of this document (known: {})",
                    quoted(alias),
                    known.join(", ")
                );
                return deny(out, "unknown_audience", &reason);
            }
        },
    };
    let lane = match explain
        .lane
        .map_or(default_lane, |asked| Lane::choose(caller.kind, Some(asked)))
    {
        Ok(lane) => lane,
        Err(_) => {
            return deny(
                out,
                "lane_not_allowed",
                "an app-only caller cannot use the user lane",
            );
        }
    };
    let ask = Ask {
        lane,
        scope: &scope,
        via_alias,
    };
    match policy.authorize(caller, ask) {
        Ok(grant) => allow(out, grant, lane, &scope, policy.revision),
        Err(BrokerError::ScopeNotAllowed) => deny(
            out,
            "scope_not_allowed",
            &format!(
                "grants in the {} lane match this caller, but none allows {scope}",
                lane.as_str()
            ),
        ),
        Err(_) => deny(
            out,
            "caller_not_allowed",
            &format!("no grant in the {} lane matches this caller", lane.as_str()),
        ),
    }
}

fn allow(
    out: &mut impl Write,
    grant: &Grant,
    lane: Lane,
    scope: &TargetScope,
    revision: u64,
) -> std::io::Result<bool> {
    writeln!(
        out,
        "allow: grant {} ({} lane, {scope}, revision {revision})",
        grant.name,
        lane.as_str()
    )?;
    Ok(true)
}

fn deny(out: &mut impl Write, code: &str, reason: &str) -> std::io::Result<bool> {
    writeln!(out, "deny: {code}: {reason}")?;
    Ok(false)
}
