//! Times as people read them in reports and listings: milliseconds since the Unix epoch as a
//! UTC date and time, without a date-time dependency.

/// Milliseconds since the Unix epoch as "YYYY-MM-DD HH:MM:SS UTC" (proleptic Gregorian
/// calendar, days to civil date by the era/day-of-era method).
pub fn utc(ms: u64) -> String {
    let secs = ms / 1000;
    let (days, sod) = ((secs / 86_400) as i64, secs % 86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02} UTC",
        sod / 3600,
        (sod % 3600) / 60,
        sod % 60
    )
}

/// The same to the minute: "2026-11-27 10:04 UTC", for listings.
pub fn utc_minutes(ms: u64) -> String {
    let full = utc(ms);
    // "YYYY-MM-DD HH:MM" is the first 16 characters of the ASCII `utc` text.
    format!("{} UTC", full.get(..16).unwrap_or(&full))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_match_an_independent_clock() {
        // Independent vectors: `date -u -d @SECONDS` (GNU coreutils).
        assert_eq!(utc(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(utc(951_782_400_000), "2000-02-29 00:00:00 UTC");
        assert_eq!(utc(1_700_000_000_000), "2023-11-14 22:13:20 UTC");
        assert_eq!(utc(4_102_444_799_000), "2099-12-31 23:59:59 UTC");
        assert_eq!(utc_minutes(1_700_000_000_000), "2023-11-14 22:13 UTC");
    }
}
