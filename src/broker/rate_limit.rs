//! Request budgets: one per caller identity and one overall, so a runaway notebook can neither starve
//! other callers nor burn the tenant's Entra quota. Generic cell rate limiting from `governor`.

use std::num::NonZeroU32;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultDirectRateLimiter, DefaultKeyedRateLimiter, Quota};

use crate::broker::error::BrokerError;
use crate::broker::ids::ObjectId;

/// Per-caller and overall request budgets (token-bucket, refilled per minute).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimits {
    pub per_caller_per_minute: u32,
    pub total_per_minute: u32,
}

pub struct RateLimiter {
    per_caller: DefaultKeyedRateLimiter<ObjectId>,
    total: DefaultDirectRateLimiter,
    clock: DefaultClock,
}

impl RateLimiter {
    pub fn new(limits: RateLimits) -> Self {
        let quota = |per_minute: u32| {
            Quota::per_minute(NonZeroU32::new(per_minute).unwrap_or(NonZeroU32::MIN))
        };
        Self {
            per_caller: DefaultKeyedRateLimiter::keyed(quota(limits.per_caller_per_minute)),
            total: DefaultDirectRateLimiter::direct(quota(limits.total_per_minute)),
            clock: DefaultClock::default(),
        }
    }

    /// Takes one request from the caller's budget and the overall one.
    pub fn check(&self, caller: &ObjectId) -> Result<(), BrokerError> {
        let retry_after = |not_until: governor::NotUntil<_>| BrokerError::RateLimited {
            retry_after: not_until
                .wait_time_from(self.clock.now())
                .max(Duration::from_secs(1)),
        };
        self.per_caller.check_key(caller).map_err(retry_after)?;
        self.total.check().map_err(retry_after)
    }

    /// Forgets callers whose budget is full again, bounding memory.
    pub fn forget_idle(&self) {
        self.per_caller.retain_recent();
        self.per_caller.shrink_to_fit();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_caller_exhausting_its_budget_does_not_block_another() {
        let limiter = RateLimiter::new(RateLimits {
            per_caller_per_minute: 2,
            total_per_minute: 100,
        });
        let noisy: ObjectId = "1a2b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d".parse().unwrap();
        let quiet: ObjectId = "2b3c4d5e-6f7a-4b8c-9d0e-1f2a3b4c5d6e".parse().unwrap();
        assert!(limiter.check(&noisy).is_ok());
        assert!(limiter.check(&noisy).is_ok());
        match limiter.check(&noisy) {
            Err(BrokerError::RateLimited { retry_after }) => {
                assert!(retry_after >= Duration::from_secs(1))
            }
            other => panic!("expected a rate limit, got {other:?}"),
        }
        assert!(limiter.check(&quiet).is_ok());
    }

    #[test]
    fn the_overall_budget_caps_everyone() {
        let limiter = RateLimiter::new(RateLimits {
            per_caller_per_minute: 100,
            total_per_minute: 1,
        });
        let a: ObjectId = "1a2b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d".parse().unwrap();
        let b: ObjectId = "2b3c4d5e-6f7a-4b8c-9d0e-1f2a3b4c5d6e".parse().unwrap();
        assert!(limiter.check(&a).is_ok());
        assert!(matches!(
            limiter.check(&b),
            Err(BrokerError::RateLimited { .. })
        ));
    }
}
