//! The lookup every concern reads through, and the value shapes settings share (lists, https URLs,
//! claim values).

use std::collections::BTreeSet;
use std::str::FromStr;
use std::time::Duration;

use url::Url;

use super::SettingsError;
use crate::broker::ids::Guid;

/// The lookup, with the conversions every setting shares.
pub(super) struct Vars<F>(pub(super) F);

impl<F: Fn(&str) -> Option<String>> Vars<F> {
    /// The trimmed value; unset and blank are the same (App Service cannot unset a slot setting).
    pub(super) fn get(&self, name: &str) -> Option<String> {
        (self.0)(name)
            .map(|value| value.trim().to_owned())
            .filter(|value| !value.is_empty())
    }

    pub(super) fn required_guid(&self, name: &'static str) -> Result<Guid, SettingsError> {
        let text = self.get(name).ok_or(SettingsError::Missing { name })?;
        text.parse()
            .map_err(|_| SettingsError::invalid_value(name, &text, "expected a GUID"))
    }

    pub(super) fn guid_list(&self, name: &'static str) -> Result<BTreeSet<Guid>, SettingsError> {
        let Some(text) = self.get(name) else {
            return Ok(BTreeSet::new());
        };
        split_list(&text)
            .map(|item| {
                item.parse().map_err(|_| {
                    SettingsError::invalid_value(
                        name,
                        item,
                        "expected GUIDs separated by commas or whitespace",
                    )
                })
            })
            .collect()
    }

    pub(super) fn secret_name(&self, name: &'static str) -> Result<Option<String>, SettingsError> {
        match self.get(name) {
            Some(text)
                if (1..=127).contains(&text.len())
                    && text.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') =>
            {
                Ok(Some(text))
            }
            // The name of a secret, not its value.
            Some(text) => Err(SettingsError::invalid_value(
                name,
                &text,
                "expected a Key Vault secret name (1-127 letters, digits and dashes)",
            )),
            None => Ok(None),
        }
    }

    /// A number or other plain value: never a secret, so an error quotes it.
    pub(super) fn parsed<T: FromStr>(
        &self,
        name: &'static str,
        default: T,
        reason: &'static str,
    ) -> Result<T, SettingsError> {
        match self.get(name) {
            Some(text) => text
                .parse()
                .map_err(|_| SettingsError::invalid_value(name, &text, reason)),
            None => Ok(default),
        }
    }

    pub(super) fn seconds(
        &self,
        name: &'static str,
        default: u64,
        min: u64,
    ) -> Result<Duration, SettingsError> {
        let reason = if min == 0 {
            "expected a whole number of seconds"
        } else {
            "expected a whole number of seconds, at least 1"
        };
        let seconds: u64 = self.parsed(name, default, reason)?;
        if seconds < min || seconds > 86_400 * 7 {
            return Err(SettingsError::invalid_value(
                name,
                &seconds.to_string(),
                reason,
            ));
        }
        Ok(Duration::from_secs(seconds))
    }

    pub(super) fn positive(&self, name: &'static str, default: u32) -> Result<u32, SettingsError> {
        const REASON: &str = "expected a positive whole number of requests per minute";
        match self.parsed(name, default, REASON)? {
            0 => Err(SettingsError::invalid_value(name, "0", REASON)),
            value => Ok(value),
        }
    }
}

/// A role or scope name: printable ASCII without spaces, as Entra allows in `roles` and `scp`.
pub(super) fn is_claim_value(text: &str) -> bool {
    (1..=120).contains(&text.len()) && text.bytes().all(|b| b.is_ascii_graphic())
}

pub(super) fn https_url(name: &'static str, text: &str) -> Result<Url, SettingsError> {
    let invalid = SettingsError::Invalid {
        name,
        reason: "expected an https:// URL",
    };
    let url = Url::parse(text).map_err(|_| invalid.clone())?;
    if url.scheme() != "https"
        || url.host_str().is_none()
        || !url.username().is_empty()
        || url.password().is_some()
        || url.query().is_some()
        || url.fragment().is_some()
    {
        return Err(invalid);
    }
    Ok(url)
}

pub(super) fn split_list(text: &str) -> impl Iterator<Item = &str> {
    text.split(|c: char| c == ',' || c.is_whitespace())
        .filter(|item| !item.is_empty())
}
