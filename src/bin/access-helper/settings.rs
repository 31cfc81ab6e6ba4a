//! Every setting of the helper, read once at start: the environment names the Python client used before
//! the helper existed (so a container moves the same environment over), each overridden by a flag. A
//! missing or invalid setting is one error naming it; nothing here reads the credential file.

use std::collections::HashMap;
use std::ffi::OsString;
use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;

use url::{Host, Url};

pub const USAGE: &str = "usage: access-helper [--broker-url URL] [--credential-file PATH] \
[--lane user|service] [--configuration-revision N] [--socket PATH] [--socket-mode OCTAL] \
[--broker-address IP:PORT]
Each flag overrides its environment variable: VD_CREDENTIAL_BROKER_URL, VD_CREDENTIAL_FILE, \
VD_CREDENTIAL_LANE, VD_CREDENTIAL_CONFIGURATION_REVISION, VD_RUNTIME_ACCESS_SOCKET (default \
/run/vd-access/program.sock), VD_RUNTIME_ACCESS_SOCKET_MODE (default 0660), \
VD_RUNTIME_ACCESS_BROKER_ADDRESS (optional).";

pub const DEFAULT_SOCKET: &str = "/run/vd-access/program.sock";
const DEFAULT_SOCKET_MODE: u32 = 0o660;

/// One setting: its environment variable and the flag that overrides it.
struct Setting {
    env: &'static str,
    flag: &'static str,
}

impl Setting {
    const fn new(env: &'static str, flag: &'static str) -> Self {
        Setting { env, flag }
    }
}

const BROKER_URL: Setting = Setting::new("VD_CREDENTIAL_BROKER_URL", "broker-url");
const CREDENTIAL_FILE: Setting = Setting::new("VD_CREDENTIAL_FILE", "credential-file");
const LANE: Setting = Setting::new("VD_CREDENTIAL_LANE", "lane");
const REVISION: Setting = Setting::new(
    "VD_CREDENTIAL_CONFIGURATION_REVISION",
    "configuration-revision",
);
const SOCKET: Setting = Setting::new("VD_RUNTIME_ACCESS_SOCKET", "socket");
const SOCKET_MODE: Setting = Setting::new("VD_RUNTIME_ACCESS_SOCKET_MODE", "socket-mode");
const BROKER_ADDRESS: Setting = Setting::new("VD_RUNTIME_ACCESS_BROKER_ADDRESS", "broker-address");
const ALL: [&Setting; 7] = [
    &BROKER_URL,
    &CREDENTIAL_FILE,
    &LANE,
    &REVISION,
    &SOCKET,
    &SOCKET_MODE,
    &BROKER_ADDRESS,
];

/// Each setting's text by environment variable: its flag's, else the variable's.
type Given = HashMap<&'static str, String>;

/// Reads a setting's trimmed, non-empty text, or says why it is invalid (after the setting's name).
type Reader<T> = fn(&str) -> Result<T, &'static str>;

/// The broker lane every mint asks for, fixed by the operator (never by the agent).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lane {
    User,
    Service,
}

impl Lane {
    pub fn as_str(self) -> &'static str {
        match self {
            Lane::User => "user",
            Lane::Service => "service",
        }
    }

    fn read(text: &str) -> Result<Lane, &'static str> {
        match text {
            "user" => Ok(Lane::User),
            "service" => Ok(Lane::Service),
            _ => Err("must be `user` or `service`"),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Settings {
    /// `{broker_url}/token`: the broker's TokenCredential route.
    pub token_url: Url,
    pub credential_file: PathBuf,
    pub lane: Lane,
    pub configuration_revision: u64,
    pub socket: PathBuf,
    /// Permission bits of the socket file (who may connect).
    pub socket_mode: u32,
    /// Where the broker's host name resolves, when the operator pins it (no name lookup at all then).
    pub broker_address: Option<SocketAddr>,
}

pub enum Command {
    Run(Settings),
    Help,
}

/// A setting that is missing or invalid, or a command line that cannot be read.
#[derive(Debug)]
pub struct SettingError(String);

impl fmt::Display for SettingError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for SettingError {}

fn invalid(setting: &Setting, why: &str) -> SettingError {
    SettingError(format!("{} (--{}) {why}", setting.env, setting.flag))
}

impl Settings {
    /// Flags first, then `env` for what no flag gave.
    pub fn parse(
        args: impl IntoIterator<Item = OsString>,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Command, SettingError> {
        let Some(mut given) = parse_flags(args)? else {
            return Ok(Command::Help);
        };
        for setting in ALL {
            if let Some(value) = env(setting.env) {
                given.entry(setting.env).or_insert(value);
            }
        }
        Ok(Command::Run(Settings {
            token_url: required(&given, &BROKER_URL, token_url)?,
            credential_file: required(&given, &CREDENTIAL_FILE, path)?,
            lane: required(&given, &LANE, Lane::read)?,
            configuration_revision: required(&given, &REVISION, revision)?,
            socket: optional(&given, &SOCKET, path)?.unwrap_or_else(|| DEFAULT_SOCKET.into()),
            socket_mode: optional(&given, &SOCKET_MODE, permission_bits)?
                .unwrap_or(DEFAULT_SOCKET_MODE),
            broker_address: optional(&given, &BROKER_ADDRESS, socket_address)?,
        }))
    }
}

/// `setting` read by `read`; none if it is not given or blank.
fn optional<T>(
    given: &Given,
    setting: &Setting,
    read: Reader<T>,
) -> Result<Option<T>, SettingError> {
    match given.get(setting.env).map(|text| text.trim()) {
        None | Some("") => Ok(None),
        Some(text) => read(text).map(Some).map_err(|why| invalid(setting, why)),
    }
}

fn required<T>(given: &Given, setting: &Setting, read: Reader<T>) -> Result<T, SettingError> {
    optional(given, setting, read)?.ok_or_else(|| invalid(setting, "is not set"))
}

/// The flags given, keyed by the environment variable each overrides; `None` for `--help`.
fn parse_flags(args: impl IntoIterator<Item = OsString>) -> Result<Option<Given>, SettingError> {
    use lexopt::prelude::*;
    let mut flags = HashMap::new();
    let mut parser = lexopt::Parser::from_args(args);
    let unreadable = |err: lexopt::Error| SettingError(format!("{err}; {USAGE}"));
    while let Some(arg) = parser.next().map_err(unreadable)? {
        match arg {
            Long("help") | Short('h') => return Ok(None),
            Long(name) => {
                let Some(setting) = ALL.iter().find(|s| s.flag == name) else {
                    return Err(unreadable(arg.unexpected()));
                };
                let value = parser.value().map_err(unreadable)?;
                let value = value
                    .into_string()
                    .map_err(|_| invalid(setting, "is not valid UTF-8"))?;
                flags.insert(setting.env, value);
            }
            _ => return Err(unreadable(arg.unexpected())),
        }
    }
    Ok(Some(flags))
}

fn path(text: &str) -> Result<PathBuf, &'static str> {
    Ok(PathBuf::from(text))
}

fn revision(text: &str) -> Result<u64, &'static str> {
    text.parse().map_err(|_| "must be a non-negative integer")
}

fn permission_bits(text: &str) -> Result<u32, &'static str> {
    u32::from_str_radix(text, 8)
        .ok()
        .filter(|mode| *mode <= 0o777)
        .ok_or("must be octal permission bits, such as 0660")
}

fn socket_address(text: &str) -> Result<SocketAddr, &'static str> {
    text.parse()
        .map_err(|_| "must be an IP address and port, such as 10.0.0.4:443")
}

/// `{broker_url}/token`. HTTPS, or plain HTTP to a loopback address only: the bearer travels in it.
fn token_url(broker_url: &str) -> Result<Url, &'static str> {
    let url = Url::parse(broker_url).map_err(|_| "is not a URL")?;
    let loopback = match url.host() {
        Some(Host::Ipv4(ip)) => ip.is_loopback(),
        Some(Host::Ipv6(ip)) => ip.is_loopback(),
        Some(Host::Domain(name)) => name == "localhost",
        None => false,
    };
    match url.scheme() {
        "https" => {}
        "http" if loopback => {}
        _ => return Err("must be https (plain http only to a loopback address)"),
    }
    if !url.username().is_empty()
        || url.password().is_some()
        || url.query().is_some()
        || url.fragment().is_some()
    {
        return Err("must have no user, query or fragment");
    }
    let base = url.as_str().trim_end_matches('/');
    Url::parse(&format!("{base}/token")).map_err(|_| "is not a URL")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str], env: &[(&str, &str)]) -> Result<Settings, String> {
        let env: HashMap<String, String> = env
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        match Settings::parse(args.iter().map(OsString::from), |name| {
            env.get(name).cloned()
        }) {
            Ok(Command::Run(settings)) => Ok(settings),
            Ok(Command::Help) => Err("help".into()),
            Err(err) => Err(err.to_string()),
        }
    }

    const FULL: [(&str, &str); 4] = [
        ("VD_CREDENTIAL_BROKER_URL", "https://broker.example/api/"),
        ("VD_CREDENTIAL_FILE", "/run/secrets/bearer"),
        ("VD_CREDENTIAL_LANE", "user"),
        ("VD_CREDENTIAL_CONFIGURATION_REVISION", "7"),
    ];

    #[test]
    fn environment_gives_every_setting_and_the_socket_defaults() {
        let settings = parse(&[], &FULL).unwrap();
        assert_eq!(
            settings.token_url.as_str(),
            "https://broker.example/api/token"
        );
        assert_eq!(settings.lane, Lane::User);
        assert_eq!(settings.configuration_revision, 7);
        assert_eq!(settings.socket, PathBuf::from(DEFAULT_SOCKET));
        assert_eq!(settings.socket_mode, 0o660);
        assert_eq!(settings.broker_address, None);
    }

    #[test]
    fn flags_override_the_environment() {
        let settings = parse(
            &[
                "--lane",
                "service",
                "--socket=/tmp/x.sock",
                "--socket-mode",
                "600",
            ],
            &FULL,
        )
        .unwrap();
        assert_eq!(settings.lane, Lane::Service);
        assert_eq!(settings.socket, PathBuf::from("/tmp/x.sock"));
        assert_eq!(settings.socket_mode, 0o600);
    }

    #[test]
    fn each_missing_required_setting_is_named() {
        for (name, _) in FULL {
            let env: Vec<_> = FULL.iter().copied().filter(|(n, _)| *n != name).collect();
            let err = parse(&[], &env).unwrap_err();
            assert!(err.starts_with(name), "`{name}` missing gave `{err}`");
        }
    }

    #[test]
    fn invalid_values_are_refused_naming_the_setting() {
        let cases = [
            ("VD_CREDENTIAL_BROKER_URL", "http://broker.example/api"),
            (
                "VD_CREDENTIAL_BROKER_URL",
                "https://user:pw@broker.example/api",
            ),
            ("VD_CREDENTIAL_BROKER_URL", "not a url"),
            ("VD_CREDENTIAL_LANE", "admin"),
            ("VD_CREDENTIAL_CONFIGURATION_REVISION", "-1"),
            ("VD_RUNTIME_ACCESS_SOCKET_MODE", "0999"),
            ("VD_RUNTIME_ACCESS_SOCKET_MODE", "1777"),
            ("VD_RUNTIME_ACCESS_BROKER_ADDRESS", "broker:443"),
        ];
        for (name, value) in cases {
            let mut env = FULL.to_vec();
            env.push((name, value));
            env.retain(|(n, v)| *n != name || *v == value);
            let err = parse(&[], &env).unwrap_err();
            assert!(err.starts_with(name), "`{name}={value}` gave `{err}`");
        }
    }

    #[test]
    fn plain_http_is_accepted_to_loopback_only() {
        let mut env = FULL.to_vec();
        env[0] = ("VD_CREDENTIAL_BROKER_URL", "http://127.0.0.1:7071/api");
        assert_eq!(
            parse(&[], &env).unwrap().token_url.as_str(),
            "http://127.0.0.1:7071/api/token"
        );
    }

    #[test]
    fn an_unknown_flag_is_refused() {
        assert!(parse(&["--bearer", "x"], &FULL).is_err());
    }
}
