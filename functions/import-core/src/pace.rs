//! How long a migration takes: Auth0's import-job pace (an assumption, stated here once) and
//! the arithmetic from chunks and job slots to wall time, for `plan` and for a run's ETA.
//!
//! ASSUMPTION. Auth0 publishes no per-job duration. The figures below are the pace Auth0's
//! guidance and field reports give for a full (~500 KB) chunk: about 4 minutes for an insert
//! job and about 14 minutes for an upsert job (upserts are slower, facts §7.2), with 2 jobs
//! per tenant at once (facts §1.6). Tenants on a higher import tier run faster (facts §1.6:
//! ~400k users/hour on the enterprise tier). Once a run has finished jobs, its own measured
//! job time replaces the assumption.

use std::time::Duration;

/// Minutes an insert-only job of a full chunk takes (assumption, see the module's note).
pub const INSERT_CHUNK_MINUTES: u64 = 4;
/// Minutes an upsert job of a full chunk takes (assumption, see the module's note).
pub const UPSERT_CHUNK_MINUTES: u64 = 14;
/// Import jobs a tenant runs at once (facts §1.6).
pub const TENANT_SLOTS: u32 = 2;

/// The assumed time of one job.
pub fn assumed_job_time(upsert: bool) -> Duration {
    let minutes = if upsert {
        UPSERT_CHUNK_MINUTES
    } else {
        INSERT_CHUNK_MINUTES
    };
    Duration::from_secs(minutes * 60)
}

/// The assumption in words, for a table or a report footnote.
pub fn assumption(upsert: bool) -> String {
    format!(
        "Auth0's published pace: ~{} min per {} job of a full chunk, {} jobs at once per tenant",
        if upsert {
            UPSERT_CHUNK_MINUTES
        } else {
            INSERT_CHUNK_MINUTES
        },
        if upsert { "upsert" } else { "insert" },
        TENANT_SLOTS
    )
}

/// Wall time of `chunks` jobs of `job_time` each on `slots` slots kept full: the jobs run in
/// waves of `slots`, so ⌈chunks ÷ slots⌉ × job time.
pub fn wall_time(chunks: u64, slots: u32, job_time: Duration) -> Duration {
    let waves = chunks.div_ceil(u64::from(slots.max(1)));
    job_time.saturating_mul(u32::try_from(waves).unwrap_or(u32::MAX))
}

/// "3 h 20 min", "12 min", "45 s": a duration as a person reads it in a table.
pub fn human(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..=59 => format!("{s} s"),
        60..=3599 => format!("{} min {:02} s", s / 60, s % 60),
        3600..=86_399 => format!("{} h {:02} min", s / 3600, (s % 3600) / 60),
        _ => format!("{} d {} h", s / 86_400, (s % 86_400) / 3600),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn waves_of_slots() {
        let four = Duration::from_secs(240);
        assert_eq!(wall_time(0, 2, four), Duration::ZERO);
        assert_eq!(wall_time(1, 2, four), four);
        assert_eq!(wall_time(2, 2, four), four);
        assert_eq!(wall_time(3, 2, four), four * 2);
        assert_eq!(wall_time(3, 0, four), four * 3, "no slot counts as one");
        assert_eq!(assumed_job_time(true), Duration::from_secs(14 * 60));
        assert!(assumption(false).contains("~4 min per insert job"));
    }

    proptest! {
        /// More slots never make it slower, and one slot is the sum of the jobs.
        #[test]
        fn wall_time_is_bounded_by_the_serial_time(chunks in 0u64..10_000, slots in 1u32..16, secs in 1u64..3600) {
            let job = Duration::from_secs(secs);
            let t = wall_time(chunks, slots, job);
            prop_assert_eq!(wall_time(chunks, 1, job), job * chunks as u32);
            prop_assert!(t <= wall_time(chunks, 1, job));
            prop_assert!(wall_time(chunks, slots + 1, job) <= t);
            // Never faster than the work divided evenly.
            prop_assert!(t.as_secs_f64() * f64::from(slots) >= (chunks * secs) as f64);
        }
    }

    #[test]
    fn durations_read_plainly() {
        assert_eq!(human(Duration::from_secs(45)), "45 s");
        assert_eq!(human(Duration::from_secs(12 * 60 + 5)), "12 min 05 s");
        assert_eq!(human(Duration::from_secs(3 * 3600 + 20 * 60)), "3 h 20 min");
        assert_eq!(human(Duration::from_secs(2 * 86_400 + 3600)), "2 d 1 h");
    }
}
