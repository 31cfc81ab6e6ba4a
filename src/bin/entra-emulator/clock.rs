//! The tenant's time as Unix seconds (the wall clock, moved forward by the control API's `clock` call so
//! tests can let tokens expire without sleeping), and the text forms Entra and Key Vault print it in.

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// Seconds the tenant's clock runs ahead of the wall clock.
static OFFSET_SECONDS: AtomicI64 = AtomicI64::new(0);

/// Seconds since the Unix epoch, in the tenant's time.
pub fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| i64::try_from(elapsed.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
        .saturating_add(OFFSET_SECONDS.load(Ordering::Relaxed))
}

/// Moves the tenant's clock forward; returns how far ahead of the wall clock it now runs.
pub fn advance(seconds: i64) -> i64 {
    OFFSET_SECONDS.fetch_add(seconds, Ordering::Relaxed) + seconds
}

/// A UTC calendar date and time of day.
pub struct Civil {
    pub year: i64,
    pub month: u32,
    pub day: u32,
    pub hour: i64,
    pub minute: i64,
    pub second: i64,
}

/// Splits Unix seconds into a UTC calendar date (Howard Hinnant's `civil_from_days`).
pub fn civil(secs: i64) -> Civil {
    let days = secs.div_euclid(86_400);
    let rest = secs.rem_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    Civil {
        year: yoe + era * 400 + i64::from(month <= 2),
        month: u32::try_from(month).unwrap_or(1),
        day: u32::try_from(day).unwrap_or(1),
        hour: rest / 3_600,
        minute: rest % 3_600 / 60,
        second: rest % 60,
    }
}

/// The UTC calendar date of `secs`, in the integer types certificate builders take.
pub fn ymd(secs: i64) -> (i32, u8, u8) {
    let c = civil(secs);
    (
        i32::try_from(c.year).unwrap_or(2000),
        u8::try_from(c.month).unwrap_or(1),
        u8::try_from(c.day).unwrap_or(1),
    )
}

/// Entra's `timestamp` form: `2026-11-23 10:00:00Z`.
pub fn entra_timestamp(secs: i64) -> String {
    let c = civil(secs);
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02}Z",
        c.year, c.month, c.day, c.hour, c.minute, c.second
    )
}

/// The .NET round-trip form Entra and Key Vault use inside messages: `2026-11-23T10:00:00.0000000Z`.
pub fn iso8601(secs: i64) -> String {
    let c = civil(secs);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.0000000Z",
        c.year, c.month, c.day, c.hour, c.minute, c.second
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_known_instants() {
        assert_eq!(entra_timestamp(0), "1970-01-01 00:00:00Z");
        assert_eq!(entra_timestamp(1_798_020_000), "2026-12-23 10:00:00Z");
        assert_eq!(iso8601(951_782_400), "2000-02-29T00:00:00.0000000Z");
    }
}
