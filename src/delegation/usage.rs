//! Each instance's count of the tokens it answered per delegation, cache hits included, not yet added
//! to the stored record. Writing the record on every redemption would put a store write in the hot
//! path; instead the counts are added to the record on a schedule (`Delegations::flush_usage`), and a
//! read on this instance shows them at once.

use std::collections::HashMap;
use std::sync::Mutex;

use super::id::DelegationId;
use super::record::DelegationRecord;

/// Most delegations with counts waiting: beyond it, redemptions of further delegations go uncounted
/// until the next flush (they are still served).
const CAPACITY: usize = 10_000;

/// What this instance has not yet added to one record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Pending {
    pub(crate) redemptions: u64,
    /// Unix seconds of the newest redemption.
    pub(crate) last_used: u64,
}

impl Pending {
    /// Adds these counts to `record`.
    pub(crate) fn apply_to(self, record: &mut DelegationRecord) {
        record.redemptions = record.redemptions.saturating_add(self.redemptions);
        record.last_used = record.last_used.max(Some(self.last_used));
    }

    fn merge(&mut self, other: Self) {
        self.redemptions = self.redemptions.saturating_add(other.redemptions);
        self.last_used = self.last_used.max(other.last_used);
    }
}

#[derive(Default)]
pub(crate) struct Usage {
    pending: Mutex<HashMap<DelegationId, Pending>>,
}

impl Usage {
    /// Counts one token answered for `id` at `now`.
    pub(crate) fn note(&self, id: &DelegationId, now: u64) {
        self.add(
            id,
            Pending {
                redemptions: 1,
                last_used: now,
            },
        );
    }

    /// Gives counts back, after a write that did not happen.
    pub(crate) fn add(&self, id: &DelegationId, counts: Pending) {
        let mut pending = self.lock();
        if let Some(waiting) = pending.get_mut(id) {
            waiting.merge(counts);
        } else if pending.len() < CAPACITY {
            pending.insert(id.clone(), counts);
        }
    }

    /// The counts waiting for `id`.
    pub(crate) fn of(&self, id: &DelegationId) -> Option<Pending> {
        self.lock().get(id).copied()
    }

    /// Every count waiting, leaving none.
    pub(crate) fn take(&self) -> Vec<(DelegationId, Pending)> {
        self.lock().drain().collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<DelegationId, Pending>> {
        // A panic while holding the lock leaves only counts behind: keep using them.
        self.pending
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::delegation::record::tests::user_record;

    #[test]
    fn counts_add_up_per_delegation_and_keep_the_newest_time() {
        let usage = Usage::default();
        let (record, _) = user_record();
        usage.note(&record.id, 2_000);
        usage.note(&record.id, 1_500);
        usage.add(
            &record.id,
            Pending {
                redemptions: 3,
                last_used: 1_900,
            },
        );

        let mut stored = record.clone();
        stored.last_used = Some(2_100);
        usage.of(&record.id).unwrap().apply_to(&mut stored);

        assert_eq!((stored.redemptions, stored.last_used), (5, Some(2_100)));
        assert_eq!(usage.take().len(), 1);
        assert_eq!(usage.of(&record.id), None);
    }

    #[test]
    fn beyond_the_capacity_new_delegations_go_uncounted_and_known_ones_still_count() {
        let usage = Usage::default();
        let (first, _) = user_record();
        usage.note(&first.id, 1);
        for _ in 1..CAPACITY {
            usage.note(&DelegationId::generate().unwrap(), 1);
        }
        let (late, _) = user_record();

        usage.note(&late.id, 2);
        usage.note(&first.id, 3);

        assert_eq!(usage.of(&late.id), None);
        assert_eq!(usage.of(&first.id).map(|p| p.redemptions), Some(2));
    }
}
