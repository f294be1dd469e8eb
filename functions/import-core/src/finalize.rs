//! Finalisation's pure parts: the state a run's finalisation keeps between invocations
//! (`Checkpoint`), the rows of `report.csv` (split's rejects, users not imported by Auth0) and
//! the records that go to `failed-users.json` / `unknown-users.json`. The poll stage moves the
//! bytes and saves the checkpoints; what is written is decided here, fed a line or a chunk at a
//! time, so it is tested without a store.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::jobs::ChunkReport;
use crate::manifest::RejectEntry;
use crate::report::{codes, CsvRow, RunReport, CSV_HEADER};
use crate::storage::UploadedPart;

/// The size at which an output's buffered bytes are stored as a part (S3 takes 5 MiB at least,
/// but for the last): the memory each of the three outputs holds at most, plus one chunk.
pub const PART_BYTES: usize = 8 * 1024 * 1024;
const _: () = assert!(PART_BYTES >= crate::storage::MIN_PART_BYTES);

/// Rows of report.csv repeated in report.html.
pub const SAMPLE_ROWS: usize = 50;

/// Where a run's finalisation stands, saved in the run folder (`finalize/checkpoint.json`)
/// whenever a step ends, an invocation nears its deadline, or a while has passed: the next
/// invocation goes on from here rather than from the start.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Checkpoint {
    pub step: Step,
    /// The totals so far (complete from `Step::Rejects` on).
    pub report: RunReport,
    /// The first rows of report.csv, for report.html.
    pub sample: Vec<CsvRow>,
    /// report.csv, failed-users.json and unknown-users.json as written so far.
    pub csv: Output,
    pub failed: Output,
    pub unknown: Output,
    /// The carry objects holding the outputs' bytes produced after their last part
    /// (`finalize/carry-<token>/<name>`): a new token at each save, so an invocation that loses
    /// a race for the checkpoint never overwrites what the saved one names.
    #[serde(default)]
    pub carry: Option<String>,
    /// Objects of split's rejected input indexes (`finalize/rejected-<token>.bin`), each the
    /// little-endian u64s of a stretch of the rejects.
    #[serde(default)]
    pub rejected: Vec<String>,
}

/// A step of finalisation, with how far into it the run is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "step", rename_all = "snake_case")]
pub enum Step {
    /// Counting chunk reports; `next` is the index in the manifest's chunks.
    Totals { next: usize },
    /// Reading split's rejects from byte `offset` (always a line's start).
    Rejects { offset: u64 },
    /// Reading the chunks whose users were not all imported, from manifest index `next`.
    Users { next: usize },
    /// Tagging the chunks purgeable, from manifest index `next`.
    Tags { next: usize },
    /// Writing the reports and telling the operator.
    Publish,
    /// Told: what is left (slots, the reconcile listing, taking the run off the active list,
    /// removing this folder) is safe to repeat.
    Told,
}

/// One output file being written in parts: its upload, the parts stored, and how many records
/// it holds. Bytes produced after the last part wait in memory, and over a pause in a carry
/// object, since a part under `MIN_PART_BYTES` may only be the last. A part is stored as soon
/// as the bytes waiting reach `PART_BYTES` after a whole line or chunk, so part `n` holds the
/// same bytes whichever invocation stores it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Output {
    pub upload_id: Option<String>,
    pub parts: Vec<UploadedPart>,
    /// Rows (report.csv) or user records (the users files) written so far, carry included.
    pub records: u64,
    /// Whether the object is complete.
    pub finished: bool,
}

impl Output {
    /// The number of the next part to store.
    pub fn next_part(&self) -> u32 {
        u32::try_from(self.parts.len()).map_or(u32::MAX, |n| n + 1)
    }
}

/// A name for this save's objects that no other invocation's save shares.
pub fn save_token() -> String {
    static SAVES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let n = SAVES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let seed = format!("{nanos}/{}/{n}", std::process::id());
    format!("{:016x}", xxhash_rust::xxh3::xxh3_64(seed.as_bytes()))
}

impl Checkpoint {
    /// Where a run's finalisation starts.
    pub fn start(report: RunReport) -> Checkpoint {
        Checkpoint {
            step: Step::Totals { next: 0 },
            report,
            sample: Vec::new(),
            csv: Output::default(),
            failed: Output::default(),
            unknown: Output::default(),
            carry: None,
            rejected: Vec::new(),
        }
    }

    /// Adds a row of report.csv to `buffer`, keeping the first ones for report.html.
    pub fn push_row(&mut self, row: CsvRow, buffer: &mut Vec<u8>) {
        if self.csv.records == 0 && buffer.is_empty() && self.csv.parts.is_empty() {
            buffer.extend_from_slice(CSV_HEADER.as_bytes());
        }
        buffer.extend_from_slice(row.to_line().as_bytes());
        if self.sample.len() < SAMPLE_ROWS {
            self.sample.push(row);
        }
        self.csv.records += 1;
    }
}

/// Adds a user record to a users file's `buffer`: the JSON array is opened by the first and
/// closed by `close_users`.
pub fn push_user(output: &mut Output, user: &Value, buffer: &mut Vec<u8>) {
    buffer.push(if output.records == 0 { b'[' } else { b',' });
    // A `Value` always serialises.
    let _ = serde_json::to_writer(&mut *buffer, user);
    output.records += 1;
}

/// The last bytes of a users file.
pub fn close_users(buffer: &mut Vec<u8>) {
    buffer.push(b']');
}

/// The rejected input indexes of a stretch of split's rejects, as stored.
pub fn rejected_bytes(indexes: &[u64]) -> Vec<u8> {
    indexes.iter().flat_map(|i| i.to_le_bytes()).collect()
}

/// `rejected_bytes` read back (a trailing partial index is ignored).
pub fn rejected_from_bytes(bytes: &[u8]) -> impl Iterator<Item = u64> + '_ {
    bytes
        .chunks_exact(8)
        .map(|b| u64::from_le_bytes(b.try_into().unwrap_or([0; 8])))
}

/// A chunk user not imported: its position in the chunk, its report.csv row, and whether its
/// fate is unknown (else it failed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotImported {
    pub position: usize,
    pub row: CsvRow,
    pub unknown: bool,
}

/// The users of a chunk that were not imported, as far as its report can name them: each user
/// of Auth0's error list, or every user of a chunk that ended without one (refused, in doubt,
/// failed as a whole, given up). Users a partial summary leaves unnamed stay counted only.
/// `indexes` maps a position in the chunk to the user's index in the input.
pub fn not_imported(r: &ChunkReport, users: &[Value], indexes: &[u64]) -> Vec<NotImported> {
    let row = |position: usize, code: String, message: String| CsvRow {
        stage: "auth0",
        index: indexes.get(position).copied(),
        email: users[position]
            .get("email")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string(),
        code,
        message,
    };
    if !r.errors.is_empty() {
        let find = Positions::of(users);
        return r
            .errors
            .iter()
            .filter_map(|e| {
                let position = find.position(&e.user)?;
                let code = e.errors.first().map(|v| v.code.clone()).unwrap_or_default();
                let message = e
                    .errors
                    .iter()
                    .map(|v| v.message.as_str())
                    .collect::<Vec<_>>()
                    .join("; ");
                Some(NotImported {
                    position,
                    row: row(position, code, message),
                    unknown: false,
                })
            })
            .collect();
    }
    let whole = if r.failed >= r.users {
        Some(false)
    } else if r.unknown >= r.users {
        Some(true)
    } else {
        None
    };
    let Some(unknown) = whole else {
        return Vec::new();
    };
    let code = if r.in_doubt() {
        codes::OUTCOME_IN_DOUBT.to_string()
    } else if unknown {
        codes::OUTCOME_UNKNOWN.to_string()
    } else {
        r.failed_by_code
            .keys()
            .next()
            .cloned()
            .unwrap_or_else(|| codes::OUTCOME_UNKNOWN.to_string())
    };
    let message = r
        .end
        .details
        .clone()
        .unwrap_or_else(|| format!("job ended {}", r.end.status));
    (0..users.len())
        .map(|position| NotImported {
            position,
            row: row(position, code.clone(), message.clone()),
            unknown,
        })
        .collect()
}

/// The fields Auth0's error list names a user by, in the order they are tried.
const NAMED_BY: [&str; 3] = ["email", "user_id", "username"];

/// A chunk's users by each naming field, lowercased: a user Auth0 reported is found in constant
/// time (a chunk of 1,167 users all failed would take 1.4 M comparisons one by one).
struct Positions(HashMap<(usize, String), usize>);

impl Positions {
    fn of(users: &[Value]) -> Positions {
        let mut by = HashMap::new();
        for (position, user) in users.iter().enumerate() {
            for (field, name) in NAMED_BY.iter().enumerate() {
                if let Some(v) = user.get(name).and_then(Value::as_str) {
                    by.entry((field, v.to_lowercase())).or_insert(position);
                }
            }
        }
        Positions(by)
    }

    /// The chunk record Auth0 reported (by email case-insensitively, else user_id, else
    /// username): Auth0 echoes the user as submitted, less its secrets.
    fn position(&self, reported: &Value) -> Option<usize> {
        NAMED_BY.iter().enumerate().find_map(|(field, name)| {
            let want = reported.get(name).and_then(Value::as_str)?;
            self.0.get(&(field, want.to_lowercase())).copied()
        })
    }
}

/// The `report.csv` row of one line of split's rejects, `None` for a line that is not a reject
/// entry. Read through `RejectView`, which skips the record; a line it cannot read takes the
/// full `RejectEntry` parse, so the rows are those `reject_row_fully` gives.
pub fn reject_row(line: &[u8]) -> Option<CsvRow> {
    match serde_json::from_slice::<RejectView>(line) {
        Ok(view) => Some(split_row(
            view.index,
            view.user.and_then(|u| u.0).as_deref().unwrap_or(""),
            view.reasons.iter().map(|v| (&*v.code, &*v.message)),
        )),
        Err(_) => reject_row_fully(line),
    }
}

/// `reject_row` from the whole entry, the record parsed into a `Value`: four times the work
/// (1.2 GB of rejects of ~1 KB records, one core here: 10.4 s against 2.6 s).
pub fn reject_row_fully(line: &[u8]) -> Option<CsvRow> {
    let r = serde_json::from_slice::<RejectEntry>(line).ok()?;
    let email = r
        .user
        .as_ref()
        .and_then(|u| u.get("email"))
        .and_then(Value::as_str)
        .unwrap_or("");
    Some(split_row(
        r.index,
        email,
        r.reasons
            .iter()
            .map(|v| (v.code.as_str(), v.message.as_str())),
    ))
}

fn split_row<'a>(
    index: u64,
    email: &str,
    reasons: impl Iterator<Item = (&'a str, &'a str)> + Clone,
) -> CsvRow {
    CsvRow {
        stage: "split",
        index: Some(index),
        email: email.to_string(),
        code: reasons
            .clone()
            .map(|(code, _)| code)
            .collect::<Vec<_>>()
            .join("|"),
        message: reasons
            .map(|(_, message)| message)
            .collect::<Vec<_>>()
            .join("; "),
    }
}

/// What a report row reads of a `RejectEntry` line, borrowing its strings where it can: every
/// field `RejectEntry` requires, and of the record only its email.
#[derive(serde::Deserialize)]
struct RejectView<'a> {
    index: u64,
    #[allow(dead_code)]
    line: u64,
    #[allow(dead_code)]
    byte_offset: u64,
    #[serde(borrow)]
    reasons: Vec<ReasonView<'a>>,
    #[serde(default)]
    user: Option<UserEmail>,
}

#[derive(serde::Deserialize)]
struct ReasonView<'a> {
    #[serde(borrow)]
    code: std::borrow::Cow<'a, str>,
    #[allow(dead_code)]
    #[serde(borrow)]
    path: std::borrow::Cow<'a, str>,
    #[serde(borrow)]
    message: std::borrow::Cow<'a, str>,
}

/// A record's `email` when the record is an object: the last `email` member, which must be a
/// string (a record of any other shape, or an email of any other type, fails the view, and
/// the line takes the full parse).
struct UserEmail(Option<String>);

impl<'de> serde::Deserialize<'de> for UserEmail {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Members;
        impl<'de> serde::de::Visitor<'de> for Members {
            type Value = UserEmail;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a user object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<UserEmail, A::Error> {
                let mut email = None;
                while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
                    if key == "email" {
                        email = Some(map.next_value::<String>()?);
                    } else {
                        map.next_value::<serde::de::IgnoredAny>()?;
                    }
                }
                Ok(UserEmail(email))
            }
        }
        deserializer.deserialize_map(Members)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::violation::Violation;
    use proptest::prelude::*;
    use serde_json::json;

    /// Records of every shape a reject can carry: objects with and without an `email`, of
    /// any type, with escapes and non-ASCII, and records that are not objects at all.
    fn record() -> impl Strategy<Value = Value> {
        let scalar = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i32>().prop_map(Value::from),
            "[a-z@.\\\\\"é\u{1F600}\n]{0,12}".prop_map(Value::from),
        ];
        let value = scalar.prop_recursive(2, 12, 4, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..3).prop_map(Value::from),
                proptest::collection::btree_map("(email|name|e\\u0061|x)", inner, 0..4)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        });
        // Mostly strings at the top level, where a rule could mistake another member for the email.
        let member = prop_oneof![2 => "[a-z@.]{0,8}".prop_map(Value::from), 1 => value.clone()];
        prop_oneof![
            3 => proptest::collection::btree_map("(email|Email|ex|name|app_metadata|x)", member, 0..5)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
            1 => value,
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(1000))]
        /// The report reads each reject line as the full parse does, whatever record it holds.
        #[test]
        fn the_view_of_a_reject_gives_the_full_parse_s_row(
            user in proptest::option::of(record()),
            reasons in proptest::collection::vec(("[A-Z_]{1,8}", "[a-z.]{0,6}", "[a-z \"\\\\é]{0,10}"), 0..3),
            index in 0u64..1_000_000,
        ) {
            let entry = RejectEntry {
                index,
                line: index + 1,
                byte_offset: 0,
                reasons: reasons
                    .iter()
                    .map(|(code, path, message)| Violation::new(code, path.as_str(), message.as_str()))
                    .collect(),
                user,
            };
            let line = serde_json::to_vec(&entry).unwrap();
            let row = reject_row(&line);
            prop_assert!(row.is_some());
            prop_assert_eq!(row, reject_row_fully(&line));
        }
    }

    #[test]
    fn lines_that_are_not_whole_entries_read_alike() {
        for line in [
            r#"{"index":1,"line":2,"byte_offset":0,"reasons":[{"code":"A","message":"m"}]}"#,
            r#"{"index":1,"byte_offset":0,"reasons":[]}"#,
            r#"{"index":1,"line":2,"byte_offset":0,"reasons":[],"user":{"email":"a@b.c","email":5}}"#,
            r#"{"index":1,"line":2,"byte_offset":0,"reasons":[],"user":{"email":5,"email":"a@b.c"}}"#,
            r#"{"index":1,"line":2,"byte_offset":0,"reasons":[],"user":["a@b.c"],"extra":true}"#,
            r#"{"index":1,"line":2,"byte_offset":0,"reasons":[],"user":{"email":"x@y.z"}}"#,
            "not json",
            "",
        ] {
            assert_eq!(
                reject_row(line.as_bytes()),
                reject_row_fully(line.as_bytes()),
                "{line}"
            );
        }
        assert_eq!(
            reject_row(br#"{"index":7,"line":8,"byte_offset":0,"reasons":[{"code":"A","path":"","message":"m"},{"code":"B","path":"p","message":"n"}],"user":{"email":"x@y.z","name":"N"}}"#),
            Some(CsvRow {
                stage: "split",
                index: Some(7),
                email: "x@y.z".into(),
                code: "A|B".into(),
                message: "m; n".into(),
            })
        );
    }
    fn chunk_report(
        users: u64,
        end: crate::jobs::JobEnd,
        errors: Vec<crate::jobs::UserError>,
    ) -> ChunkReport {
        ChunkReport::new(1, "job".into(), "x".into(), users, end, errors, 1, 2)
    }

    #[test]
    fn the_users_not_imported_are_those_the_report_names_or_the_whole_chunk() {
        let users: Vec<Value> = (0..4)
            .map(|i| json!({"email": format!("u{i}@x.io")}))
            .collect();
        let indexes = [10, 11, 13, 14];
        // Named by Auth0's error list: those users only, with their codes and input indexes.
        let named = chunk_report(
            4,
            crate::jobs::JobEnd {
                status: "completed".into(),
                summary: None,
                details: None,
            },
            vec![crate::jobs::UserError {
                user: json!({"email": "U2@X.IO"}),
                errors: vec![
                    Violation::new("DUPLICATED_USER", "", "exists"),
                    Violation::new("OTHER", "", "and more"),
                ],
            }],
        );
        let picked = not_imported(&named, &users, &indexes);
        assert_eq!(picked.len(), 1);
        assert_eq!((picked[0].position, picked[0].unknown), (2, false));
        assert_eq!(
            picked[0].row.to_line(),
            "auth0,13,u2@x.io,DUPLICATED_USER,exists; and more\n"
        );
        // A job that failed as a whole, without a list: every user, unknown.
        let whole = chunk_report(
            4,
            crate::jobs::JobEnd {
                status: "failed".into(),
                summary: None,
                details: Some("boom".into()),
            },
            vec![],
        );
        let picked = not_imported(&whole, &users, &indexes);
        assert_eq!(
            picked.iter().map(|p| p.position).collect::<Vec<_>>(),
            [0, 1, 2, 3]
        );
        assert!(picked.iter().all(|p| p.unknown && p.row.message == "boom"));
        assert_eq!(picked[3].row.index, Some(14));
        // A summary that counts failures the list does not name: nobody can be named.
        let partial = chunk_report(
            4,
            crate::jobs::JobEnd {
                status: "completed".into(),
                summary: Some(crate::jobs::Summary {
                    inserted: 3,
                    updated: 0,
                    failed: 1,
                    total: 4,
                }),
                details: None,
            },
            vec![],
        );
        assert!(not_imported(&partial, &users, &indexes).is_empty());
    }

    #[test]
    fn a_users_file_built_in_pieces_is_one_json_array() {
        let mut output = Output::default();
        let (mut first, mut second) = (Vec::new(), Vec::new());
        push_user(&mut output, &json!({"email": "a@x.io"}), &mut first);
        push_user(
            &mut output,
            &json!({"email": "b@x.io", "n": [1, 2]}),
            &mut second,
        );
        push_user(&mut output, &json!({"email": "c@x.io"}), &mut second);
        close_users(&mut second);
        let whole: Vec<Value> = serde_json::from_slice(&[first, second].concat()).unwrap();
        assert_eq!(whole.len(), 3);
        assert_eq!(output.records, 3);
        assert_eq!(whole[1]["n"], json!([1, 2]));
    }

    proptest! {
        #[test]
        fn rejected_indexes_survive_their_bytes(indexes in proptest::collection::vec(any::<u64>(), 0..50)) {
            let bytes = rejected_bytes(&indexes);
            prop_assert_eq!(rejected_from_bytes(&bytes).collect::<Vec<_>>(), indexes);
        }
    }

    #[test]
    fn a_checkpoint_reads_back_as_written_and_refuses_an_unknown_stage() {
        let report: RunReport = serde_json::from_value(json!({
            "run_id": "r", "source": {"kind": "local", "path": "x"}, "users_in": 1,
            "rejected_before_submission": 1, "rejected_by_code": {}, "submitted": 0, "inserted": 0,
            "updated": 0, "failed_at_auth0": 0, "failed_by_code": {}, "unknown": 0,
            "identity": "i", "conservation_holds": true, "jobs": [], "chunks": 0,
            "failed_users_key": null
        }))
        .unwrap();
        let mut cp = Checkpoint::start(report);
        let mut buffer = Vec::new();
        cp.push_row(reject_row(br#"{"index":0,"line":1,"byte_offset":0,"reasons":[{"code":"A","path":"","message":"m"}]}"#).unwrap(), &mut buffer);
        cp.step = Step::Rejects { offset: 90 };
        cp.csv.parts.push(UploadedPart {
            number: 1,
            etag: "\"e\"".into(),
        });
        let text = serde_json::to_string(&cp).unwrap();
        assert_eq!(serde_json::from_str::<Checkpoint>(&text).unwrap(), cp);
        // The header comes with the first row, once.
        assert_eq!(
            String::from_utf8(buffer).unwrap(),
            format!("{CSV_HEADER}split,0,,A,m\n")
        );
        assert!(
            serde_json::from_str::<Checkpoint>(&text.replace("\"split\"", "\"elsewhere\""))
                .is_err()
        );
    }

    #[test]
    fn reported_users_are_found_in_their_chunk() {
        let users = vec![
            json!({"email":"a@x.io"}),
            json!({"email":"B@x.io","user_id":"7"}),
            json!({"email":"b@x.io","user_id":"8"}),
        ];
        let find = Positions::of(&users);
        // The first user of that email, case aside.
        assert_eq!(find.position(&json!({"email":"b@X.io"})), Some(1));
        assert_eq!(find.position(&json!({"user_id":"8"})), Some(2));
        // An email no user has: the user_id still names one.
        assert_eq!(
            find.position(&json!({"email":"c@x.io","user_id":"7"})),
            Some(1)
        );
        assert_eq!(find.position(&json!({"email":"c@x.io"})), None);
    }
}
