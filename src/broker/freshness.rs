//! How current a value re-read from Key Vault is: when it last loaded, how many reads in a row have
//! failed since, and why the last one failed. Health reads it to say `degraded`; the allowlist reads
//! its age to fail closed once the list can no longer be confirmed.

use std::time::{Duration, Instant};

use crate::broker::error::LoadFailure;

/// Consecutive failed reads after which health says `degraded`: one failure is a blip, three in a row
/// (six minutes at the default 120 s interval) is an outage an operator should hear about.
pub const DEGRADED_AFTER_FAILED_READS: u32 = 3;

/// Why the last read of a value failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadProblem {
    /// Key Vault or the identity endpoint could not be reached, or answered 5xx or garbage.
    Unreachable,
    /// Key Vault answered and said no: access denied, a token it refused twice, the secret missing.
    Refused,
    /// The value cannot be parsed.
    Unparseable,
    /// The value is empty or only whitespace.
    Empty,
    /// A local file (the client certificate's) could not be read: missing, not a regular file, no access.
    FileUnreadable,
}

impl ReadProblem {
    /// The code health shows as `last_failure`.
    pub fn code(self) -> &'static str {
        match self {
            Self::Unreachable => "key_vault_unreachable",
            Self::Refused => "key_vault_refused",
            Self::Unparseable => "unparseable",
            Self::Empty => "empty",
            Self::FileUnreadable => "file_unreadable",
        }
    }

    /// A value that is there but wrong: an operator must fix it, so health says so at once.
    pub fn is_misconfiguration(self) -> bool {
        matches!(self, Self::Unparseable | Self::Empty)
    }

    pub fn load_failure(self) -> LoadFailure {
        match self {
            Self::Unreachable => LoadFailure::Unreachable,
            Self::Refused | Self::Unparseable | Self::Empty | Self::FileUnreadable => {
                LoadFailure::Misconfigured
            }
        }
    }
}

impl From<LoadFailure> for ReadProblem {
    fn from(failure: LoadFailure) -> Self {
        match failure {
            LoadFailure::Unreachable => Self::Unreachable,
            LoadFailure::Misconfigured => Self::Refused,
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Freshness {
    loaded_at: Option<Instant>,
    failed_reads: u32,
    last_problem: Option<ReadProblem>,
}

impl Freshness {
    pub fn succeeded(self) -> Self {
        Self {
            loaded_at: Some(Instant::now()),
            failed_reads: 0,
            last_problem: None,
        }
    }

    pub fn failed(self, problem: ReadProblem) -> Self {
        Self {
            loaded_at: self.loaded_at,
            failed_reads: self.failed_reads.saturating_add(1),
            last_problem: Some(problem),
        }
    }

    /// Time since the last successful read; None if it never succeeded.
    pub fn age(&self) -> Option<Duration> {
        self.loaded_at.map(|at| at.elapsed())
    }

    /// Failed reads since the last successful one.
    pub fn failed_reads(&self) -> u32 {
        self.failed_reads
    }

    pub fn last_problem(&self) -> Option<ReadProblem> {
        self.last_problem
    }

    /// Whether health should report the value as degraded: reads keep failing, or the value is wrong.
    pub fn is_degraded(&self) -> bool {
        self.failed_reads >= DEGRADED_AFTER_FAILED_READS
            || self
                .last_problem
                .is_some_and(ReadProblem::is_misconfiguration)
    }

    /// Whether the last successful read is older than `max_age` (never, if it never succeeded).
    pub fn is_older_than(&self, max_age: Duration) -> bool {
        self.age().is_some_and(|age| age > max_age)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn degraded_after_three_failed_reads_in_a_row_and_healthy_again_after_a_success() {
        let mut freshness = Freshness::default().succeeded();
        for _ in 1..DEGRADED_AFTER_FAILED_READS {
            freshness = freshness.failed(ReadProblem::Unreachable);
            assert!(!freshness.is_degraded());
        }
        freshness = freshness.failed(ReadProblem::Refused);
        assert!(freshness.is_degraded());
        assert_eq!(freshness.last_problem(), Some(ReadProblem::Refused));
        assert!(freshness.age().is_some());
        assert!(!freshness.succeeded().is_degraded());
    }

    #[test]
    fn a_wrong_value_is_degraded_at_once() {
        let freshness = Freshness::default().succeeded().failed(ReadProblem::Empty);
        assert!(freshness.is_degraded());
        assert_eq!(freshness.failed_reads(), 1);
    }

    #[test]
    fn a_value_that_never_loaded_is_never_too_old() {
        let never = Freshness::default().failed(ReadProblem::Unreachable);
        assert!(!never.is_older_than(Duration::ZERO));
        let fresh = Freshness::default().succeeded();
        assert!(!fresh.is_older_than(Duration::from_secs(3600)));
    }
}
