//! The offline policy commands, `token-broker policy check FILE` and `token-broker policy explain ...`:
//! validate a document, or say whether it allows one request and why. No network and no settings.
//! Without arguments the binary is the handler, as the Functions host starts it.

use std::ffi::OsString;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use lexopt::prelude::*;

use crate::broker::Lane;
use crate::broker::caller::{Caller, CallerKind};
use crate::broker::error::BrokerError;
use crate::broker::ids::Guid;
use crate::broker::policy::compile;
use crate::broker::policy::document::{self, DocumentError};
use crate::broker::policy::{AppMatch, Ask, Callers, Grant, Policy, UserMatch};
use crate::broker::scope::TargetScope;
use crate::broker::validation::unverified_caller;

pub const USAGE: &str = "usage:
  token-broker                      run as the Functions custom handler
  token-broker policy check FILE    validate a policy document
  token-broker policy explain FILE (--token FILE | --app OID | --user OID [--role R]... [--group G]...)
                                   (--scope S | --audience A) [--lane user|service]
exit status: 0 valid or allowed; 1 invalid, denied or a usage error";

/// What the command line asks for.
#[derive(Debug, PartialEq, Eq)]
pub enum Invocation {
    Serve,
    Help,
    Check { file: PathBuf },
    Explain(Explain),
}

#[derive(Debug, PartialEq, Eq)]
pub struct Explain {
    file: PathBuf,
    caller: CallerSpec,
    target: Target,
    lane: Option<Lane>,
}

#[derive(Debug, PartialEq, Eq)]
enum CallerSpec {
    Token(PathBuf),
    Made {
        kind: CallerKind,
        oid: String,
        roles: Vec<String>,
        groups: Vec<String>,
    },
}

#[derive(Debug, PartialEq, Eq)]
enum Target {
    Scope(String),
    Audience(String),
}

/// Runs the offline command the arguments ask for, report on stdout, and gives its exit code; None
/// when there are no arguments and the binary should serve.
pub fn run_if_asked(args: impl IntoIterator<Item = OsString>) -> Option<ExitCode> {
    let invocation = match parse(args) {
        Ok(Invocation::Serve) => return None,
        Ok(invocation) => invocation,
        Err(err) => {
            eprintln!("token-broker: {err}\n{USAGE}");
            return Some(ExitCode::FAILURE);
        }
    };
    let mut stdout = std::io::stdout().lock();
    let outcome = run(&invocation, &mut stdout).and_then(|ok| stdout.flush().map(|()| ok));
    Some(match outcome {
        Ok(true) => ExitCode::SUCCESS,
        _ => ExitCode::FAILURE,
    })
}

/// Reads the arguments after the program name.
pub fn parse(args: impl IntoIterator<Item = OsString>) -> Result<Invocation, lexopt::Error> {
    let mut parser = lexopt::Parser::from_args(args);
    let Some(arg) = parser.next()? else {
        return Ok(Invocation::Serve);
    };
    match arg {
        Value(word) if word == "policy" => {}
        Short('h') | Long("help") => return Ok(Invocation::Help),
        other => return Err(other.unexpected()),
    }
    match parser.next()? {
        Some(Value(word)) if word == "check" => {
            let file = parser.value()?.into();
            match parser.next()? {
                None => Ok(Invocation::Check { file }),
                Some(other) => Err(other.unexpected()),
            }
        }
        Some(Value(word)) if word == "explain" => parse_explain(&mut parser),
        Some(Short('h') | Long("help")) => Ok(Invocation::Help),
        Some(other) => Err(other.unexpected()),
        None => Err("policy needs check or explain".into()),
    }
}

fn parse_explain(parser: &mut lexopt::Parser) -> Result<Invocation, lexopt::Error> {
    let file: PathBuf = parser.value()?.into();
    let (mut token, mut who, mut target, mut lane) = (None, None, None, None);
    let (mut roles, mut groups) = (Vec::new(), Vec::new());
    while let Some(arg) = parser.next()? {
        let once = |slot: bool, name: &str| {
            if slot {
                Err(lexopt::Error::from(format!("{name} given twice")))
            } else {
                Ok(())
            }
        };
        match arg {
            Long("token") => {
                once(token.is_some() || who.is_some(), "the caller")?;
                token = Some(PathBuf::from(parser.value()?));
            }
            Long("app") | Long("user") => {
                let kind = if arg == Long("app") {
                    CallerKind::Msi
                } else {
                    CallerKind::User
                };
                once(token.is_some() || who.is_some(), "the caller")?;
                who = Some((kind, parser.value()?.string()?));
            }
            Long("role") => roles.push(parser.value()?.string()?),
            Long("group") => groups.push(parser.value()?.string()?),
            Long("scope") => {
                once(target.is_some(), "the target")?;
                target = Some(Target::Scope(parser.value()?.string()?));
            }
            Long("audience") => {
                once(target.is_some(), "the target")?;
                target = Some(Target::Audience(parser.value()?.string()?));
            }
            Long("lane") => {
                once(lane.is_some(), "--lane")?;
                lane = Some(match parser.value()?.string()?.as_str() {
                    "user" => Lane::User,
                    "service" => Lane::Service,
                    _ => return Err("--lane is user or service".into()),
                });
            }
            other => return Err(other.unexpected()),
        }
    }
    let caller = match (token, who) {
        (Some(path), None) if roles.is_empty() && groups.is_empty() => CallerSpec::Token(path),
        (Some(_), None) => {
            return Err("--role and --group describe --app or --user, not --token".into());
        }
        (None, Some((kind, oid))) => {
            if kind == CallerKind::Msi && !groups.is_empty() {
                return Err("--group is for --user: app-only tokens carry no groups".into());
            }
            CallerSpec::Made {
                kind,
                oid,
                roles,
                groups,
            }
        }
        _ => return Err("explain needs one of --token, --app, --user".into()),
    };
    let target = target.ok_or("explain needs one of --scope, --audience")?;
    Ok(Invocation::Explain(Explain {
        file,
        caller,
        target,
        lane,
    }))
}

/// Runs an offline command, writing its report to `out`; true means exit 0.
pub fn run(invocation: &Invocation, out: &mut impl Write) -> std::io::Result<bool> {
    match invocation {
        Invocation::Serve => Ok(true),
        Invocation::Help => writeln!(out, "{USAGE}").map(|()| true),
        Invocation::Check { file } => {
            let Some(policy) = load(file, out)? else {
                return Ok(false);
            };
            summarize(file, &policy, out)?;
            Ok(true)
        }
        Invocation::Explain(explain) => {
            let Some(policy) = load(&explain.file, out)? else {
                return Ok(false);
            };
            let caller = match caller_of(&explain.caller) {
                Ok(caller) => caller,
                Err(problem) => {
                    writeln!(out, "error: {problem}")?;
                    return Ok(false);
                }
            };
            decide(explain, &policy, &caller, out)
        }
    }
}

/// The compiled document, or every problem written to `out`.
fn load(file: &Path, out: &mut impl Write) -> std::io::Result<Option<Policy>> {
    let bytes = match document::read_file(file) {
        Ok(bytes) => bytes,
        Err(err) => {
            writeln!(out, "{}: cannot be read: {err}", file.display())?;
            return Ok(None);
        }
    };
    match compile::from_bytes(&bytes) {
        Ok((_, policy)) => Ok(Some(policy)),
        Err(errors) => {
            writeln!(
                out,
                "{}: invalid, {} error(s)",
                file.display(),
                errors.len()
            )?;
            for DocumentError {
                path,
                problem,
                detail,
            } in &errors
            {
                match detail {
                    Some(detail) => writeln!(out, "  {path}: {problem} ({detail})")?,
                    None => writeln!(out, "  {path}: {problem}")?,
                }
            }
            Ok(None)
        }
    }
}

fn summarize(file: &Path, policy: &Policy, out: &mut impl Write) -> std::io::Result<()> {
    writeln!(
        out,
        "{}: valid, revision {}, {} grant(s), {} audience alias(es)",
        file.display(),
        policy.revision,
        policy.grants.len(),
        policy.audiences.aliases().count()
    )?;
    for grant in &policy.grants {
        writeln!(
            out,
            "  {}: {} lane, {}; scopes [{}]; audiences [{}]",
            grant.name,
            grant.lane.as_str(),
            describe(&grant.callers),
            grant
                .scopes
                .iter()
                .map(TargetScope::as_str)
                .collect::<Vec<_>>()
                .join(", "),
            grant.aliases.join(", ")
        )?;
    }
    Ok(())
}

fn describe(callers: &Callers) -> String {
    match callers {
        Callers::Apps(AppMatch::Oids(oids)) => format!("apps: {} object id(s)", oids.len()),
        Callers::Apps(AppMatch::AppRole(role)) => format!("apps with app role {role}"),
        Callers::Apps(AppMatch::Allowlist(_)) => "apps on the allowlist".into(),
        Callers::Users(UserMatch::Tenant) => "every user of the tenant".into(),
        Callers::Users(UserMatch::Oids(oids)) => format!("users: {} object id(s)", oids.len()),
        Callers::Users(UserMatch::AppRole(role)) => format!("users with app role {role}"),
        Callers::Users(UserMatch::Groups(groups)) => {
            format!("members of {} group(s)", groups.len())
        }
    }
}

fn caller_of(spec: &CallerSpec) -> Result<Caller, String> {
    let (kind, oid, roles, groups) = match spec {
        CallerSpec::Token(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|err| format!("{}: cannot be read: {err}", path.display()))?;
            return unverified_caller(&text)
                .map_err(|err| format!("{}: not an Entra access token ({err})", path.display()));
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
            .map_err(|_| format!("{text} is not an object id (a GUID)"))
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

fn decide(
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
            Err(err) => return deny(out, "invalid_scope", &format!("{text} is malformed: {err}")),
        },
        Target::Audience(alias) => match policy.resolve_audience(alias) {
            Ok(scope) => (scope, true, Lane::choose(caller.kind, None)),
            Err(_) => {
                let known: Vec<&str> = policy.audiences.aliases().collect();
                let reason = format!(
                    "{alias} is not an alias of this document (known: {})",
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

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(args: &[&str]) -> Result<Invocation, String> {
        parse(args.iter().map(OsString::from)).map_err(|err| err.to_string())
    }

    #[test]
    fn no_arguments_means_serve() {
        assert_eq!(parsed(&[]), Ok(Invocation::Serve));
    }

    #[test]
    fn explain_reads_the_caller_and_the_target() {
        let Ok(Invocation::Explain(explain)) = parsed(&[
            "policy",
            "explain",
            "p.json",
            "--user",
            "u",
            "--group",
            "g",
            "--role",
            "r",
            "--audience",
            "sql",
            "--lane",
            "user",
        ]) else {
            panic!("not an explain");
        };
        assert_eq!(
            explain.caller,
            CallerSpec::Made {
                kind: CallerKind::User,
                oid: "u".into(),
                roles: vec!["r".into()],
                groups: vec!["g".into()],
            }
        );
        assert_eq!(explain.target, Target::Audience("sql".into()));
        assert_eq!(explain.lane, Some(Lane::User));
    }

    #[test]
    fn explain_needs_exactly_one_caller_and_one_target() {
        for args in [
            &["policy", "explain", "p.json", "--scope", "s"][..],
            &["policy", "explain", "p.json", "--app", "a"],
            &[
                "policy", "explain", "p.json", "--app", "a", "--user", "u", "--scope", "s",
            ],
            &[
                "policy",
                "explain",
                "p.json",
                "--app",
                "a",
                "--scope",
                "s",
                "--audience",
                "x",
            ],
            &[
                "policy", "explain", "p.json", "--token", "t", "--role", "r", "--scope", "s",
            ],
            &[
                "policy", "explain", "p.json", "--app", "a", "--group", "g", "--scope", "s",
            ],
            &["policy", "check"],
            &["serve"],
        ] {
            assert!(parsed(args).is_err(), "{args:?}");
        }
    }
}
