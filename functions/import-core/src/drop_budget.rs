//! How big a drop one split invocation can take: a drop that cannot finish before the function's
//! deadline with room to spare is refused before a byte is read, with what to do instead.

/// The largest drops one split invocation takes. Sizes are the object's, as the S3 event gives
/// them: a gzipped drop is counted compressed, so it has its own, smaller limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DropBudget {
    /// A drop stored as it is (JSON array, NDJSON, an Auth0 export).
    pub max_bytes: u64,
    /// A gzipped drop (its key ends in `.gz`).
    pub max_gzip_bytes: u64,
}

/// 16 GiB stored as it is: about 30 M users of the benchmarks' shape (10 M users take 5.4 GB).
/// The split used 80 s of CPU for those 5.4 GB (BENCHMARKS.md, issue 21); Lambda at the
/// template's 1,769 MB gives one vCPU, so 16 GiB needs ~250 s of its 900 s: 3.5× margin
/// (the issue asks for 2×), room for S3's read rate too.
pub const DEFAULT_MAX_BYTES: u64 = 16 << 30;

/// 2 GiB gzipped. The benchmarks' exports compress 4.3× (gzip -6, 100 MB), exports with less
/// random data more; inflating costs about as much CPU again (`gzip -d`: 0.50 s of CPU per
/// 100 MB inflated). At 8× that is 17 GB to split plus inflating, ~340 s of one vCPU: still
/// inside half of the 900 s.
pub const DEFAULT_MAX_GZIP_BYTES: u64 = 2 << 30;

impl Default for DropBudget {
    fn default() -> Self {
        DropBudget {
            max_bytes: DEFAULT_MAX_BYTES,
            max_gzip_bytes: DEFAULT_MAX_GZIP_BYTES,
        }
    }
}

impl DropBudget {
    /// Why a drop of `size` bytes under `key` is refused up front, or `None` when it fits (or
    /// its size is unknown: it is then split and bounded by the deadline alone).
    pub fn refusal(&self, key: &str, size: Option<u64>) -> Option<String> {
        let size = size?;
        let gzipped = key.to_ascii_lowercase().ends_with(".gz");
        let (limit, what) = if gzipped {
            (self.max_gzip_bytes, "a gzipped drop")
        } else {
            (self.max_bytes, "a drop")
        };
        (size > limit).then(|| {
            let parts = size.div_ceil(limit);
            format!(
                "{what} of {} is more than one split invocation can check before its deadline \
                 with room to spare (at most {}); nothing was read. Split the export into {parts} \
                 or more files of at most {} each and drop each one (each becomes a run of its own)",
                human_bytes(size),
                human_bytes(limit),
                human_bytes(limit),
            )
        })
    }
}

/// `17.2 GB`, `512.0 MB`: sizes an operator reads in a report (decimal units, as S3's console).
fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 4] = ["KB", "MB", "GB", "TB"];
    let mut value = n as f64;
    let mut unit = "bytes";
    for u in UNITS {
        if value < 1000.0 {
            break;
        }
        value /= 1000.0;
        unit = u;
    }
    if unit == "bytes" {
        format!("{n} bytes")
    } else {
        format!("{value:.1} {unit}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BUDGET: DropBudget = DropBudget {
        max_bytes: 1_000_000,
        max_gzip_bytes: 100_000,
    };

    #[test]
    fn drops_within_the_budget_and_of_unknown_size_are_split() {
        assert_eq!(BUDGET.refusal("inbox/c/users.json", Some(1_000_000)), None);
        assert_eq!(BUDGET.refusal("inbox/c/users.json.gz", Some(100_000)), None);
        assert_eq!(BUDGET.refusal("inbox/c/users.json", None), None);
        assert_eq!(BUDGET.refusal("inbox/c/users.ndjson.gz", None), None);
    }

    #[test]
    fn a_drop_over_the_budget_is_refused_with_the_sizes_and_what_to_do() {
        let why = BUDGET
            .refusal("inbox/c/users.json", Some(2_500_000))
            .expect("refused");
        assert!(why.starts_with("a drop of 2.5 MB"), "{why}");
        assert!(why.contains("at most 1.0 MB"), "{why}");
        assert!(why.contains("into 3 or more files"), "{why}");
        assert!(why.contains("nothing was read"), "{why}");
    }

    #[test]
    fn gzipped_drops_are_counted_compressed_against_their_own_limit() {
        // Under the plain limit but over the gzip one: refused, and said to be gzipped.
        let why = BUDGET
            .refusal("inbox/c/USERS.JSON.GZ", Some(500_000))
            .expect("refused");
        assert!(why.starts_with("a gzipped drop of 500.0 KB"), "{why}");
        assert!(why.contains("into 5 or more files"), "{why}");
        assert_eq!(BUDGET.refusal("inbox/c/users.json", Some(500_000)), None);
    }

    #[test]
    fn the_defaults_keep_a_ten_million_user_drop_with_margin() {
        // 10 M users of the benchmarks' shape: 5.4 GB (issue 21's measurement).
        let budget = DropBudget::default();
        assert_eq!(
            budget.refusal("inbox/c/users.json", Some(5_400_000_000)),
            None
        );
        assert!(budget.max_bytes >= 2 * 5_400_000_000);
    }

    #[test]
    fn sizes_read_as_people_write_them() {
        assert_eq!(human_bytes(999), "999 bytes");
        assert_eq!(human_bytes(1_000), "1.0 KB");
        assert_eq!(human_bytes(17_179_869_184), "17.2 GB");
        assert_eq!(human_bytes(3_000_000_000_000), "3.0 TB");
    }
}
