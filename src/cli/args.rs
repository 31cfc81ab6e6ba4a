//! The command line: no arguments (serve), or one of the offline policy commands.

use std::ffi::OsString;
use std::path::PathBuf;

use lexopt::prelude::*;

use crate::broker::Lane;
use crate::broker::caller::CallerKind;

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
    pub(super) file: PathBuf,
    pub(super) caller: CallerSpec,
    pub(super) target: Target,
    pub(super) lane: Option<Lane>,
}

#[derive(Debug, PartialEq, Eq)]
pub(super) enum CallerSpec {
    Token(PathBuf),
    Made {
        kind: CallerKind,
        oid: String,
        roles: Vec<String>,
        groups: Vec<String>,
    },
}

#[derive(Debug, PartialEq, Eq)]
pub(super) enum Target {
    Scope(String),
    Audience(String),
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
