//! The offline policy commands, `token-broker policy check FILE` and `token-broker policy explain ...`:
//! validate a document, or say whether it allows one request and why. No network and no settings.
//! Without arguments the binary is the handler, as the Functions host starts it. Whatever comes from
//! outside (file names, arguments, the document's values) is printed through `excerpt`, escaped.

mod args;
mod explain;
mod input;

use std::ffi::OsString;
use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

pub use args::{Invocation, parse};

use crate::broker::excerpt;
use crate::broker::policy::compile;
use crate::broker::policy::document::{self, DocumentError};
use crate::broker::policy::{AppMatch, Callers, Policy, UserMatch};
use crate::broker::scope::TargetScope;

pub const USAGE: &str = "usage:
  token-broker                      run as the Functions custom handler
  token-broker policy check FILE    validate a policy document
  token-broker policy explain FILE (--token FILE | --app OID | --user OID [--role R]... [--group G]...)
                                   (--scope S | --audience A) [--lane user|service]
exit status: 0 valid or allowed; 1 invalid, denied or a usage error";

/// Runs the offline command the arguments ask for, report on stdout, and gives its exit code; None
/// when there are no arguments and the binary should serve.
pub fn run_if_asked(args: impl IntoIterator<Item = OsString>) -> Option<ExitCode> {
    let invocation = match parse(args) {
        Ok(Invocation::Serve) => return None,
        Ok(invocation) => invocation,
        Err(err) => {
            let err = excerpt::escaped(&err.to_string(), MESSAGE_CHARS);
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
            let caller = match explain::caller_of(&explain.caller) {
                Ok(caller) => caller,
                Err(problem) => {
                    writeln!(out, "error: {problem}")?;
                    return Ok(false);
                }
            };
            explain::decide(explain, &policy, &caller, out)
        }
    }
}

/// Most characters of an outside message or file name printed.
const MESSAGE_CHARS: usize = 240;

/// A file name as the commands print it: escaped and cut short.
fn shown(file: &Path) -> String {
    excerpt::escaped(&file.to_string_lossy(), MESSAGE_CHARS)
}

/// The compiled document, or every problem written to `out`.
fn load(file: &Path, out: &mut impl Write) -> std::io::Result<Option<Policy>> {
    let bytes = match input::read_regular(file, document::MAX_DOCUMENT_BYTES) {
        Ok(bytes) => bytes,
        Err(err) => {
            writeln!(out, "{}: cannot be read: {err}", shown(file))?;
            return Ok(None);
        }
    };
    match compile::from_bytes(&bytes) {
        Ok((_, policy)) => Ok(Some(policy)),
        Err(errors) => {
            writeln!(out, "{}: invalid, {} error(s)", shown(file), errors.len())?;
            for error in &errors {
                writeln!(out, "  {}", with_value(error))?;
            }
            Ok(None)
        }
    }
}

/// `grants[1].audiences[0]: "no_such_alias" is not an alias ...`, with the parser's message when there
/// is one. Value and message are already escaped and cut short.
fn with_value(error: &DocumentError) -> String {
    let DocumentError {
        path,
        problem,
        value,
        detail,
    } = error;
    let value = value
        .as_ref()
        .map(|value| format!("{value} "))
        .unwrap_or_default();
    let detail = detail
        .as_ref()
        .map(|detail| format!(" ({detail})"))
        .unwrap_or_default();
    format!("{path}: {value}{problem}{detail}")
}

fn summarize(file: &Path, policy: &Policy, out: &mut impl Write) -> std::io::Result<()> {
    writeln!(
        out,
        "{}: valid, revision {}, {} grant(s), {} audience alias(es)",
        shown(file),
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
