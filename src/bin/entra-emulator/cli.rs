//! Command-line options (spec.md §2): ports, state directory, a fixed broker secret and the env file.

use std::path::PathBuf;

pub const USAGE: &str = "usage: entra-emulator [--https-port N] [--http-port N] [--state-dir DIR] \
[--broker-client-secret S] [--env-file PATH]";

/// Parsed options; ports 0 mean ephemeral.
#[derive(Default)]
pub struct Options {
    pub https_port: u16,
    pub http_port: u16,
    pub state_dir: Option<PathBuf>,
    pub broker_client_secret: Option<String>,
    pub env_file: Option<PathBuf>,
}

/// What the command line asked for.
pub enum Command {
    Run(Options),
    Help,
}

impl Options {
    /// Parses `--flag value` and `--flag=value` forms.
    pub fn parse(args: impl IntoIterator<Item = String>) -> Result<Command, String> {
        let mut options = Options::default();
        let mut args = args.into_iter();
        while let Some(arg) = args.next() {
            let (flag, inline) = match arg.split_once('=') {
                Some((flag, value)) if flag.starts_with("--") => {
                    (flag.to_owned(), Some(value.to_owned()))
                }
                _ => (arg.clone(), None),
            };
            if flag == "--help" || flag == "-h" {
                return Ok(Command::Help);
            }
            let mut value = || {
                inline
                    .clone()
                    .or_else(|| args.next())
                    .ok_or_else(|| format!("{flag} needs a value"))
            };
            match flag.as_str() {
                "--https-port" => options.https_port = port(&flag, &value()?)?,
                "--http-port" => options.http_port = port(&flag, &value()?)?,
                "--state-dir" => options.state_dir = Some(PathBuf::from(value()?)),
                "--env-file" => options.env_file = Some(PathBuf::from(value()?)),
                "--broker-client-secret" => {
                    let secret = value()?;
                    if secret.is_empty() || secret.chars().any(char::is_control) {
                        return Err(
                            "--broker-client-secret must be non-empty printable text".into()
                        );
                    }
                    options.broker_client_secret = Some(secret);
                }
                _ => return Err(format!("unknown argument {flag}")),
            }
        }
        Ok(Command::Run(options))
    }
}

fn port(flag: &str, value: &str) -> Result<u16, String> {
    value
        .parse()
        .map_err(|_| format!("{flag} expects a port number (0-65535)"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|a| (*a).to_owned()).collect()
    }

    #[test]
    fn both_flag_forms_are_read() {
        let Ok(Command::Run(options)) =
            Options::parse(args(&["--https-port=8443", "--http-port", "8080"]))
        else {
            panic!("expected options");
        };
        assert_eq!((options.https_port, options.http_port), (8443, 8080));
    }

    #[test]
    fn unknown_and_incomplete_flags_are_refused() {
        assert!(Options::parse(args(&["--verbose"])).is_err());
        assert!(Options::parse(args(&["--state-dir"])).is_err());
        assert!(Options::parse(args(&["--https-port", "x"])).is_err());
    }
}
