//! The run folder: every object key the pipeline reads or writes is named here, once.
//! A run id is derived from the dropped object's key and ETag, so a duplicate event finds its run.

use sha2::{Digest, Sha256};

/// Where operators drop exports (overridable by the functions' configuration).
pub const DEFAULT_INBOX_PREFIX: &str = "inbox/";
pub const RUNS_PREFIX: &str = "runs/";

pub const MANIFEST: &str = "manifest.json";
pub const REJECTS: &str = "rejects.ndjson";
pub const CHUNKS_DIR: &str = "chunks/";

/// Runs that still have chunks to submit or jobs to follow: `active-runs/<run-id>.json`.
/// Submit adds a run when its manifest appears; poll removes it when the run report is final.
pub const ACTIVE_RUNS_PREFIX: &str = "active-runs/";
/// The tenant's import-job slots, shared by every run: `slots/<k>.json`.
pub const SLOTS_PREFIX: &str = "slots/";
pub const JOBS_DIR: &str = "jobs/";
/// Written when Auth0 refuses a run's request for good (e.g. unknown connection).
pub const SUBMIT_FAILED: &str = "submit-failed.json";

/// Poll's per-chunk reports, relative to the run folder: `reports/000001.report.json`. The
/// suffix gives S3 notifications a rule (prefix `runs/`, suffix `.report.json`) that cannot
/// overlap the manifest's rule (suffix `manifest.json`), as S3 requires.
pub const REPORTS_DIR: &str = "reports/";
/// Progress while the run is in flight.
pub const STATUS: &str = "status.json";
/// The run's final account (written last of the reports: its presence means "final").
pub const REPORT_JSON: &str = "report.json";
pub const REPORT_CSV: &str = "report.csv";
pub const REPORT_HTML: &str = "report.html";
/// Original records of users a re-drop can fix. Holds password hashes, like the chunks.
pub const FAILED_USERS: &str = "failed-users.json";
/// Users whose fate Auth0 did not tell (in doubt, failed as a whole, given up): their original
/// records, for a re-drop that is safe (users Auth0 has come back as DUPLICATED_USER).
pub const UNKNOWN_USERS: &str = "unknown-users.json";

pub const REPORT_SUFFIX: &str = ".report.json";

pub fn report_key(seq: u32) -> String {
    format!("{REPORTS_DIR}{seq:06}{REPORT_SUFFIX}")
}

pub fn seq_of_report_key(key: &str) -> Option<u32> {
    key.strip_prefix(REPORTS_DIR)?
        .strip_suffix(REPORT_SUFFIX)?
        .parse()
        .ok()
}

/// Objects holding password hashes (chunks, failed-users.json) get this tag once their run is
/// final; the bucket's lifecycle rule deletes tagged objects some days later.
pub const PURGE_TAG: (&str, &str) = ("holds-password-hashes", "run-final");

/// The tag such objects carry from the moment they are written, until `PURGE_TAG` replaces it:
/// a second lifecycle rule deletes them by age, so a run that never ends (abandoned, its
/// chunks refused for good, a bug) does not keep password hashes forever.
pub const IN_FLIGHT_TAG: (&str, &str) = ("holds-password-hashes", "in-flight");

/// Object names (under a run) that hold password hashes: chunks (in any attempt's folder) and
/// the original records of users a re-drop may fix.
const HOLDS_PASSWORD_HASHES: &[&str] = &[FAILED_USERS, UNKNOWN_USERS];

/// Whether an object of a run, named relative to the run folder or in full, holds password
/// hashes and must therefore be written with `IN_FLIGHT_TAG`.
pub fn holds_password_hashes(key: &str) -> bool {
    let name = key.rsplit('/').next().unwrap_or(key);
    let dir = &key[..key.len() - name.len()];
    let in_chunks_dir = dir
        .strip_suffix(CHUNKS_DIR)
        .is_some_and(|parent| parent.is_empty() || parent.ends_with('/'));
    in_chunks_dir || HOLDS_PASSWORD_HASHES.contains(&name)
}

/// A tag as the `x-amz-tagging` header of a PUT writes it (URL query form; our tags are plain
/// ASCII words, so no escaping is needed).
pub fn tagging_header((key, value): (&str, &str)) -> String {
    format!("{key}={value}")
}

/// Runs that are final and still to be read back from the tenant: `reconcile-runs/<run-id>.json`.
/// Poll adds a run when it writes the run's report (if reconciliation is on) and removes it
/// once `reconciliation.json` is written.
pub const RECONCILE_RUNS_PREFIX: &str = "reconcile-runs/";

pub fn reconcile_run_key(run_id: &str) -> String {
    format!("{RECONCILE_RUNS_PREFIX}{run_id}.json")
}

/// The run id named by a `reconcile-runs/` key.
pub fn run_id_of_reconcile_key(key: &str) -> Option<&str> {
    key.strip_prefix(RECONCILE_RUNS_PREFIX)?
        .strip_suffix(".json")
}

pub fn active_run_key(run_id: &str) -> String {
    format!("{ACTIVE_RUNS_PREFIX}{run_id}.json")
}

/// The run id named by an `active-runs/` key.
pub fn run_id_of_active_key(key: &str) -> Option<&str> {
    key.strip_prefix(ACTIVE_RUNS_PREFIX)?.strip_suffix(".json")
}

pub fn slot_key(slot: u32) -> String {
    format!("{SLOTS_PREFIX}{slot}.json")
}

/// Job record of a chunk, relative to the run folder: `jobs/000001.json`.
pub fn job_key(seq: u32) -> String {
    format!("{JOBS_DIR}{seq:06}.json")
}

/// The chunk sequence named by a job key (relative to the run folder).
pub fn seq_of_job_key(key: &str) -> Option<u32> {
    key.strip_prefix(JOBS_DIR)?
        .strip_suffix(".json")?
        .parse()
        .ok()
}

/// The run id of any key under `runs/`.
pub fn run_id_of_key(key: &str) -> Option<&str> {
    let rest = key.strip_prefix(RUNS_PREFIX)?;
    let (id, _) = rest.split_once('/')?;
    (!id.is_empty()).then_some(id)
}

/// `external_id` of a chunk's job: run id and sequence, so an Auth0 job names its chunk.
pub fn external_id(run_id: &str, seq: u32) -> String {
    let id = format!("{run_id}:{seq:06}");
    // The multipart size budget assumes at most MAX_EXTERNAL_ID_LEN bytes; run ids are ASCII.
    let max = crate::multipart::MAX_EXTERNAL_ID_LEN;
    if id.len() > max {
        id[id.len() - max..].to_string()
    } else {
        id
    }
}

/// Split's claim on a run while it reads the drop, relative to the run folder: at most one
/// invocation splits a run at a time (`ledger::SplitClaim`).
pub const SPLIT_CLAIM: &str = "split-claim.json";

/// Where one split attempt writes its chunks and rejects, relative to the run folder:
/// `attempts/<attempt>/`. Only the attempt whose manifest commits is ever read, so a duplicate
/// or a dead invocation can never change what a committed manifest lists.
pub const ATTEMPTS_DIR: &str = "attempts/";

/// The folder of one split attempt inside the run folder (`""` for the CLI's single writer).
pub fn attempt_dir(attempt: Option<&str>) -> String {
    match attempt {
        Some(a) => format!("{ATTEMPTS_DIR}{a}/"),
        None => String::new(),
    }
}

/// Every key of one run's folder, relative to the bucket (or folder) root: the one place that
/// joins a run id to the names above.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunPath {
    id: String,
    prefix: String,
}

impl RunPath {
    pub fn new(run_id: &str) -> Self {
        RunPath {
            id: run_id.to_string(),
            prefix: run_prefix(run_id),
        }
    }

    /// The run named by any key under `runs/`.
    pub fn of_key(key: &str) -> Option<Self> {
        run_id_of_key(key).map(Self::new)
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    /// `runs/<run-id>/`
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// An object named relative to the run folder (chunk and rejects keys in the manifest).
    pub fn object(&self, relative: &str) -> String {
        format!("{}{relative}", self.prefix)
    }

    /// The key relative to the run folder, when `key` is in it.
    pub fn relative<'k>(&self, key: &'k str) -> Option<&'k str> {
        key.strip_prefix(&self.prefix)
    }

    pub fn manifest(&self) -> String {
        self.object(MANIFEST)
    }

    pub fn split_claim(&self) -> String {
        self.object(SPLIT_CLAIM)
    }

    pub fn attempts(&self) -> String {
        self.object(ATTEMPTS_DIR)
    }

    pub fn jobs(&self) -> String {
        self.object(JOBS_DIR)
    }

    pub fn job(&self, seq: u32) -> String {
        self.object(&job_key(seq))
    }

    pub fn reports(&self) -> String {
        self.object(REPORTS_DIR)
    }

    pub fn report(&self, seq: u32) -> String {
        self.object(&report_key(seq))
    }

    pub fn submit_failed(&self) -> String {
        self.object(SUBMIT_FAILED)
    }

    pub fn status(&self) -> String {
        self.object(STATUS)
    }

    pub fn report_json(&self) -> String {
        self.object(REPORT_JSON)
    }

    pub fn report_csv(&self) -> String {
        self.object(REPORT_CSV)
    }

    pub fn report_html(&self) -> String {
        self.object(REPORT_HTML)
    }

    pub fn failed_users(&self) -> String {
        self.object(FAILED_USERS)
    }

    /// `active-runs/<run-id>.json`: the run still has chunks to submit or jobs to follow.
    pub fn active_marker(&self) -> String {
        active_run_key(&self.id)
    }

    /// The chunk sequences named by keys listed under `jobs()` (or `reports()` with
    /// `seq_of_report_key`).
    pub fn seqs<'k>(
        &'k self,
        keys: impl IntoIterator<Item = &'k String> + 'k,
        seq_of: fn(&str) -> Option<u32>,
    ) -> impl Iterator<Item = u32> + 'k {
        keys.into_iter()
            .filter_map(move |k| seq_of(self.relative(k)?))
    }
}

/// `runs/<run-id>/`
pub fn run_prefix(run_id: &str) -> String {
    format!("{RUNS_PREFIX}{run_id}/")
}

/// Chunk object, relative to the run folder: `<attempt dir>chunks/000001.json`.
pub fn chunk_key(attempt_dir: &str, seq: u32) -> String {
    format!("{attempt_dir}{CHUNKS_DIR}{seq:06}.json")
}

/// Split's rejects, relative to the run folder: `<attempt dir>rejects.ndjson`.
pub fn rejects_key(attempt_dir: &str) -> String {
    format!("{attempt_dir}{REJECTS}")
}

/// A readable, deterministic run id: a slug of the file name and 16 hex digits of
/// SHA-256(key, version). `version` is the dropped object's version: its S3 `versionId` when the
/// bucket is versioned (two uploads to one key are two versions, so two runs), else its ETag.
/// Every delivery of the same object version maps to the same run.
pub fn run_id(object_key: &str, version: &str) -> String {
    let mut hasher = Sha256::new();
    hasher.update(object_key.as_bytes());
    hasher.update([0u8]);
    hasher.update(version.trim_matches('"').as_bytes());
    let digest = hasher.finalize();
    let hex: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
    let name = object_key.rsplit('/').next().unwrap_or(object_key);
    let slug = slug(name);
    if slug.is_empty() {
        hex
    } else {
        format!("{slug}-{hex}")
    }
}

/// What names the version of a dropped object, in the order `run_id` prefers: the S3
/// `versionId` (a versioned bucket), else the ETag. `None` when the event carries neither.
pub fn object_version<'a>(version_id: Option<&'a str>, etag: Option<&'a str>) -> Option<&'a str> {
    let given = |v: Option<&'a str>| {
        v.map(|v| v.trim_matches('"'))
            .filter(|v| !v.is_empty() && *v != "null")
    };
    given(version_id).or_else(|| given(etag))
}

fn slug(name: &str) -> String {
    let mut out = String::new();
    let mut dash = false;
    for c in name.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
            dash = false;
        } else if !dash && !out.is_empty() {
            out.push('-');
            dash = true;
        }
        if out.len() >= 40 {
            break;
        }
    }
    out.trim_end_matches('-').to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn objects_holding_hashes_are_chunks_and_the_redrop_files() {
        let run = RunPath::new("r-1");
        for key in [
            chunk_key("", 1),
            chunk_key("attempts/a1/", 42),
            run.object(&chunk_key("attempts/a1/", 42)),
            run.failed_users(),
            FAILED_USERS.to_string(),
            run.object(UNKNOWN_USERS),
        ] {
            assert!(holds_password_hashes(&key), "{key}");
        }
        for key in [
            run.manifest(),
            run.report_json(),
            run.report_csv(),
            run.report_html(),
            run.status(),
            run.object(&rejects_key("attempts/a1/")),
            run.object(&job_key(1)),
            run.object(&report_key(1)),
            // a file merely named like a chunk folder, not inside one
            "runs/r-1/chunks".to_string(),
            "runs/r-1/mychunks/000001.json".to_string(),
        ] {
            assert!(!holds_password_hashes(&key), "{key}");
        }
    }

    #[test]
    fn an_object_version_is_its_version_id_else_its_etag() {
        assert_eq!(object_version(Some("v1"), Some("\"e\"")), Some("v1"));
        assert_eq!(object_version(None, Some("\"e\"")), Some("e"));
        assert_eq!(object_version(Some(""), Some("e")), Some("e"));
        assert_eq!(object_version(Some("null"), Some("e")), Some("e"));
        assert_eq!(object_version(None, Some("")), None);
        assert_eq!(object_version(None, None), None);
    }

    #[test]
    fn run_paths_name_every_object_under_the_run_folder() {
        let run = RunPath::new("r-1");
        assert_eq!(run.manifest(), "runs/r-1/manifest.json");
        assert_eq!(run.job(7), "runs/r-1/jobs/000007.json");
        assert_eq!(run.report(7), "runs/r-1/reports/000007.report.json");
        assert_eq!(run.active_marker(), "active-runs/r-1.json");
        assert_eq!(RunPath::of_key(&run.status()), Some(run.clone()));
        let listed = vec![
            run.job(3),
            run.job(12),
            "runs/r-2/jobs/000001.json".to_string(),
        ];
        assert_eq!(
            run.seqs(&listed, seq_of_job_key).collect::<Vec<_>>(),
            vec![3, 12]
        );
    }

    #[test]
    fn run_id_is_deterministic_and_etag_sensitive() {
        let a = run_id("inbox/con_x/My Users 2024.json.gz", "\"abc\"");
        assert_eq!(a, run_id("inbox/con_x/My Users 2024.json.gz", "abc"));
        assert_ne!(a, run_id("inbox/con_x/My Users 2024.json.gz", "abd"));
        assert_ne!(a, run_id("inbox/con_y/My Users 2024.json.gz", "abc"));
        assert!(a.starts_with("my-users-2024-json-gz-"), "{a}");
        assert!(a.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'));
    }

    #[test]
    fn ledger_keys_round_trip() {
        assert_eq!(seq_of_job_key(&job_key(42)), Some(42));
        assert_eq!(seq_of_report_key(&report_key(42)), Some(42));
        assert_eq!(seq_of_report_key("reports/000042.json"), None);
        assert_eq!(run_id_of_active_key(&active_run_key("r-1")), Some("r-1"));
        assert_eq!(run_id_of_key("runs/r-1/manifest.json"), Some("r-1"));
        assert_eq!(run_id_of_key("inbox/r-1/manifest.json"), None);
        let long = "x".repeat(200);
        let ext = external_id(&long, 7);
        assert_eq!(ext.len(), crate::multipart::MAX_EXTERNAL_ID_LEN);
        assert!(ext.ends_with(":000007"));
    }

    #[test]
    fn keys_sort_in_sequence_order() {
        assert!(chunk_key("", 9) < chunk_key("", 10));
        assert_eq!(
            chunk_key(&attempt_dir(Some("a1")), 3),
            "attempts/a1/chunks/000003.json"
        );
        assert_eq!(run_prefix("r1"), "runs/r1/");
    }
}
