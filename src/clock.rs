//! The one wall clock the layers share, in whole Unix seconds. Tests that need time to stand still hold
//! it for their own thread with `hold`.

use std::time::{SystemTime, UNIX_EPOCH};

/// Seconds since the Unix epoch (0 if the system clock is before it).
pub fn now() -> u64 {
    #[cfg(test)]
    if let Some(held) = held::HELD.get() {
        return held;
    }
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Holds `now()` at `at` on the calling thread until the returned guard is dropped.
#[cfg(test)]
pub fn hold(at: u64) -> held::Held {
    held::HELD.set(Some(at));
    held::Held
}

#[cfg(test)]
mod held {
    use std::cell::Cell;

    thread_local! {
        pub static HELD: Cell<Option<u64>> = const { Cell::new(None) };
    }

    /// Releases the held clock when dropped.
    pub struct Held;

    impl Drop for Held {
        fn drop(&mut self) {
            HELD.set(None);
        }
    }

    #[test]
    fn a_held_clock_stands_still_until_released() {
        let guard = super::hold(42);
        assert_eq!(super::now(), 42);
        drop(guard);
        assert_ne!(super::now(), 42);
    }
}
