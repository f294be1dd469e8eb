//! Reconciliation: the run's accepted users indexed by identity key (digests only), then an export
//! of the connection streamed past them: present and matching, present with differences, missing.
//!
//! Memory is bounded by the run, not the connection: each accepted user costs one `Expected`
//! (`BYTES_PER_USER` bytes: a 64-bit key digest, its chunk, which fields the run set and a 32-bit
//! digest of each), whatever the size of the export; export lines are read one at a time. A 32-bit
//! field digest misses a changed field with probability 2^-32, which is acceptable for a report.
//!
//! The identity key is what Auth0 matches a database-connection user on: the email lowercased,
//! else the username lowercased, else the phone number (facts §7.2).

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use serde_json::Value;
use xxhash_rust::xxh3::Xxh3;

use crate::report::ReconciliationReport;

/// Fields compared when the run set them (besides the identity key). Upsertable fields first
/// (facts §7.2), then ones an upsert keeps, which still differ if the run set something else.
pub const COMPARED_FIELDS: [&str; 11] = [
    "user_metadata",
    "app_metadata",
    "email_verified",
    "given_name",
    "family_name",
    "name",
    "nickname",
    "picture",
    "username",
    "phone_number",
    "blocked",
];

/// The fields an export for reconciliation (and rollback) asks for.
pub fn export_fields() -> Vec<&'static str> {
    let mut fields = vec!["user_id", "email", "created_at"];
    for field in COMPARED_FIELDS {
        if !fields.contains(&field) {
            fields.push(field);
        }
    }
    fields
}

/// Bytes the index holds per accepted user.
pub const BYTES_PER_USER: usize = std::mem::size_of::<Expected>();

/// `reconciliation.json` in the run folder.
pub const RECONCILIATION_JSON: &str = "reconciliation.json";

/// How many users the report names in each sample.
const SAMPLE: usize = 20;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReconcileError {
    #[error("chunk {seq} is not a JSON array of user objects: {reason}")]
    BadChunk { seq: u32, reason: String },
    #[error("export line {line} is not a JSON object: {reason}")]
    BadExportLine { line: u64, reason: String },
}

/// One accepted user, as digests.
#[derive(Debug, Clone, Copy)]
struct Expected {
    key: u64,
    seq: u32,
    /// Bit i: the run set `COMPARED_FIELDS[i]`.
    set: u16,
    /// Bit i: `COMPARED_FIELDS[i]` differed in a matching export line.
    differed: u16,
    /// Times the export held this key (more than once is a duplicate in the tenant).
    seen: u8,
    /// Auth0's `/errors` named this user as failed.
    failed: bool,
    digests: [u32; COMPARED_FIELDS.len()],
}

/// A matching export line, for a caller that acts on it (rollback).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    pub seq: u32,
    pub user_id: Option<String>,
    pub created_at: Option<String>,
    /// Auth0's `/errors` named this user as failed (so the run did not insert it).
    pub failed_at_auth0: bool,
}

/// The run's accepted users, being added.
#[derive(Debug, Default)]
pub struct IndexBuilder {
    entries: Vec<Expected>,
    in_doubt: BTreeSet<u32>,
    failed_keys: Vec<u64>,
    without_key: u64,
}

impl IndexBuilder {
    /// Adds a chunk's users (a JSON array of import records). `in_doubt`: its request was sent
    /// and no job id came back.
    pub fn add_chunk(
        &mut self,
        seq: u32,
        bytes: &[u8],
        in_doubt: bool,
    ) -> Result<u32, ReconcileError> {
        let users: Vec<Value> =
            serde_json::from_slice(bytes).map_err(|e| ReconcileError::BadChunk {
                seq,
                reason: e.to_string(),
            })?;
        if in_doubt {
            self.in_doubt.insert(seq);
        }
        let mut added = 0;
        for user in &users {
            self.add_user(seq, user);
            added += 1;
        }
        Ok(added)
    }

    pub fn add_user(&mut self, seq: u32, user: &Value) {
        let Some(key) = identity_key(user) else {
            self.without_key += 1;
            return;
        };
        let mut entry = Expected {
            key,
            seq,
            set: 0,
            differed: 0,
            seen: 0,
            failed: false,
            digests: [0; COMPARED_FIELDS.len()],
        };
        for (i, field) in COMPARED_FIELDS.iter().enumerate() {
            if let Some(value) = user.get(*field).filter(|v| !v.is_null()) {
                entry.set |= 1 << i;
                entry.digests[i] = field_digest(field, value);
            }
        }
        self.entries.push(entry);
    }

    /// A user Auth0's `/errors` listed as failed (its record as `/errors` shows it).
    pub fn mark_failed(&mut self, user: &Value) {
        if let Some(key) = identity_key(user) {
            self.failed_keys.push(key);
        }
    }

    /// Sorts the index for lookups; a key accepted twice keeps its first chunk.
    pub fn seal(mut self) -> Index {
        self.entries.sort_by_key(|e| (e.key, e.seq));
        let before = self.entries.len();
        self.entries.dedup_by_key(|e| e.key);
        let repeated = (before - self.entries.len()) as u64;
        for key in &self.failed_keys {
            if let Ok(i) = self.entries.binary_search_by_key(key, |e| e.key) {
                self.entries[i].failed = true;
            }
        }
        Index {
            entries: self.entries,
            in_doubt: self.in_doubt,
            without_key: self.without_key,
            repeated,
            export_users: 0,
            lines: 0,
        }
    }
}

/// The sealed index, consuming an export.
#[derive(Debug)]
pub struct Index {
    entries: Vec<Expected>,
    in_doubt: BTreeSet<u32>,
    without_key: u64,
    repeated: u64,
    export_users: u64,
    lines: u64,
}

impl Index {
    pub fn users(&self) -> usize {
        self.entries.len()
    }

    /// Starts over (a download that broke part-way is read again from its start).
    pub fn reset(&mut self) {
        for e in &mut self.entries {
            e.seen = 0;
            e.differed = 0;
        }
        self.export_users = 0;
        self.lines = 0;
    }

    /// One NDJSON line of the export; `Some` when it is one of the run's users.
    pub fn line(&mut self, line: &[u8]) -> Result<Option<Found>, ReconcileError> {
        self.lines += 1;
        if line.iter().all(u8::is_ascii_whitespace) {
            return Ok(None);
        }
        let user: Value =
            serde_json::from_slice(line).map_err(|e| ReconcileError::BadExportLine {
                line: self.lines,
                reason: e.to_string(),
            })?;
        if !user.is_object() {
            return Err(ReconcileError::BadExportLine {
                line: self.lines,
                reason: "not an object".into(),
            });
        }
        Ok(self.user(&user))
    }

    /// One exported user (a users-by-email answer goes through here too).
    pub fn user(&mut self, user: &Value) -> Option<Found> {
        self.export_users += 1;
        let key = identity_key(user)?;
        let i = self.entries.binary_search_by_key(&key, |e| e.key).ok()?;
        let entry = &mut self.entries[i];
        entry.seen = entry.seen.saturating_add(1);
        for (bit, field) in COMPARED_FIELDS.iter().enumerate() {
            if entry.set & (1 << bit) == 0 {
                continue;
            }
            let now = user
                .get(*field)
                .filter(|v| !v.is_null())
                .map(|v| field_digest(field, v));
            if now != Some(entry.digests[bit]) {
                entry.differed |= 1 << bit;
            }
        }
        Some(Found {
            seq: entry.seq,
            user_id: user
                .get("user_id")
                .and_then(Value::as_str)
                .map(str::to_string),
            created_at: user
                .get("created_at")
                .and_then(Value::as_str)
                .map(str::to_string),
            failed_at_auth0: entry.failed,
        })
    }

    /// How one accepted user came out, by its record (for samples).
    pub fn verdict_of(&self, user: &Value) -> Option<Verdict> {
        let key = identity_key(user)?;
        let entry = self.entries[self.entries.binary_search_by_key(&key, |e| e.key).ok()?];
        Some(verdict(&entry))
    }

    /// The counts, the in-doubt chunks' verdicts and the verified identity. `inserted` and
    /// `updated` are the run report's (Auth0's job summaries).
    pub fn finish(&self, inserted: u64, updated: u64) -> Reconciliation {
        let mut r = ReconciliationReport {
            method: Some("export".into()),
            ..ReconciliationReport::default()
        };
        let mut chunks: BTreeMap<u32, (u64, u64)> = BTreeMap::new();
        let mut verified_present = 0;
        for e in &self.entries {
            r.users_checked += 1;
            let v = verdict(e);
            match v {
                Verdict::Missing => r.missing += 1,
                Verdict::Present => r.present += 1,
                Verdict::Different(_) => r.present_with_differences += 1,
            }
            if e.seen > 1 {
                r.duplicates += 1;
            }
            if let Verdict::Different(fields) = &v {
                for field in fields {
                    *r.differences_by_field
                        .entry((*field).to_string())
                        .or_default() += 1;
                }
            }
            if e.failed {
                r.failed_at_auth0_checked += 1;
                continue;
            }
            if self.in_doubt.contains(&e.seq) {
                let tally = chunks.entry(e.seq).or_default();
                if e.seen > 0 {
                    tally.0 += 1;
                } else {
                    tally.1 += 1;
                }
            } else if e.seen > 0 {
                verified_present += 1;
            }
        }
        let mut in_doubt = Vec::new();
        for seq in &self.in_doubt {
            let (found, missing) = chunks.get(seq).copied().unwrap_or_default();
            let verdict = if missing == 0 {
                r.imported_by_unknown_jobs += found;
                InDoubtVerdict::Imported
            } else {
                InDoubtVerdict::Resubmit
            };
            in_doubt.push(InDoubtChunk {
                seq: *seq,
                found,
                missing,
                verdict,
                resubmitted: false,
            });
        }
        r.verified_present = verified_present;
        r.verified_identity =
            "inserted + updated = present (users of chunks with a job, not failed at Auth0)".into();
        r.verified_identity_holds = inserted + updated == verified_present;
        r.export_users_read = self.export_users;
        r.accepted_without_key = self.without_key;
        r.accepted_more_than_once = self.repeated;
        r.bytes_per_user = BYTES_PER_USER as u64;
        Reconciliation {
            report: r,
            in_doubt_chunks: in_doubt,
            samples: Samples::default(),
        }
    }
}

/// How an accepted user stands in the tenant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Present,
    /// Found; these fields the run set differ.
    Different(Vec<&'static str>),
    Missing,
}

fn verdict(e: &Expected) -> Verdict {
    if e.seen == 0 {
        return Verdict::Missing;
    }
    let fields: Vec<&'static str> = COMPARED_FIELDS
        .iter()
        .enumerate()
        .filter(|(bit, _)| e.differed & (1 << bit) != 0)
        .map(|(_, f)| *f)
        .collect();
    if fields.is_empty() {
        Verdict::Present
    } else {
        Verdict::Different(fields)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InDoubtVerdict {
    /// Every user found: a job we never heard of imported them.
    Imported,
    /// Users missing: no job imported the chunk; safe to submit once more.
    Resubmit,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InDoubtChunk {
    pub seq: u32,
    pub found: u64,
    pub missing: u64,
    pub verdict: InDoubtVerdict,
    /// The run submitted this chunk once more after an earlier reconcile found users missing.
    #[serde(default)]
    pub resubmitted: bool,
}

/// Users named as examples (identifier and the fields that differ), never whole records.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Samples {
    pub missing: Vec<String>,
    pub different: Vec<SampleDifference>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SampleDifference {
    pub user: String,
    pub fields: Vec<String>,
}

impl Samples {
    /// Adds `user` (an accepted record) when its verdict belongs in a sample that is not full.
    pub fn offer(&mut self, index: &Index, user: &Value) {
        let (Some(name), Some(v)) = (display_name(user), index.verdict_of(user)) else {
            return;
        };
        match v {
            Verdict::Missing if self.missing.len() < SAMPLE => self.missing.push(name),
            Verdict::Different(fields) if self.different.len() < SAMPLE => {
                self.different.push(SampleDifference {
                    user: name,
                    fields: fields.iter().map(|f| (*f).to_string()).collect(),
                })
            }
            _ => {}
        }
    }

    pub fn full(&self) -> bool {
        self.missing.len() >= SAMPLE && self.different.len() >= SAMPLE
    }
}

/// `reconciliation.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reconciliation {
    #[serde(flatten)]
    pub report: ReconciliationReport,
    pub in_doubt_chunks: Vec<InDoubtChunk>,
    pub samples: Samples,
}

/// The identifier a report shows for a user: email, else username, else phone.
fn display_name(user: &Value) -> Option<String> {
    ["email", "username", "phone_number"]
        .iter()
        .find_map(|k| user.get(*k).and_then(Value::as_str))
        .map(str::to_string)
}

/// The 64-bit digest of a user's identity key; None for a record with none of them.
pub fn identity_key(user: &Value) -> Option<u64> {
    let text = |k: &str| {
        user.get(k)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
    };
    let (tag, value) = if let Some(email) = text("email") {
        (b'e', email.to_lowercase())
    } else if let Some(username) = text("username") {
        (b'u', username.to_lowercase())
    } else {
        (b'p', text("phone_number")?.to_string())
    };
    let mut h = Xxh3::new();
    h.update(&[tag]);
    h.update(value.as_bytes());
    Some(h.digest())
}

/// A field's value as Auth0 would compare it: object keys in any order, usernames lowercased.
fn field_digest(field: &str, value: &Value) -> u32 {
    let mut h = Xxh3::new();
    match (field, value) {
        ("username", Value::String(s)) => h.update(s.to_lowercase().as_bytes()),
        _ => canonical(&mut h, value),
    }
    // The low half of a 64-bit digest: 4 bytes per field in the index.
    (h.digest() & 0xffff_ffff) as u32
}

fn canonical(h: &mut Xxh3, value: &Value) {
    match value {
        Value::Null => h.update(b"n"),
        Value::Bool(b) => h.update(if *b { b"t" } else { b"f" }),
        Value::Number(n) => {
            h.update(b"#");
            // 1 and 1.0 are one number to a JSON reader.
            match n.as_f64() {
                Some(f) if f.fract() == 0.0 && f.abs() < 9e15 => {
                    h.update(&(f as i64).to_le_bytes())
                }
                _ => h.update(n.to_string().as_bytes()),
            }
        }
        Value::String(s) => {
            h.update(b"s");
            h.update(&(s.len() as u64).to_le_bytes());
            h.update(s.as_bytes());
        }
        Value::Array(items) => {
            h.update(b"[");
            h.update(&(items.len() as u64).to_le_bytes());
            for item in items {
                canonical(h, item);
            }
        }
        Value::Object(map) => {
            h.update(b"{");
            h.update(&(map.len() as u64).to_le_bytes());
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            for key in keys {
                h.update(&(key.len() as u64).to_le_bytes());
                h.update(key.as_bytes());
                canonical(h, &map[key]);
            }
        }
    }
}

/// Whether an exported user was created by the run: its `created_at` (ISO 8601, UTC) is at or
/// after `run_started_ms`. A user created before the run existed already (updated or untouched).
pub fn created_by_run(created_at: Option<&str>, run_started_ms: u64) -> Option<bool> {
    Some(iso8601_ms(created_at?)? >= run_started_ms)
}

/// Milliseconds since the epoch of `YYYY-MM-DDTHH:MM:SS[.fff]Z`.
pub fn iso8601_ms(text: &str) -> Option<u64> {
    let b = text.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || b[10] != b'T' || !text.ends_with('Z') {
        return None;
    }
    let num = |r: std::ops::Range<usize>| text.get(r)?.parse::<u64>().ok();
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, s) = (num(11..13)?, num(14..16)?, num(17..19)?);
    let millis = match text.get(19..text.len() - 1) {
        Some("") => 0,
        Some(frac) => {
            let digits = frac.strip_prefix('.')?;
            let padded = format!("{digits:0<3}");
            padded.get(0..3)?.parse::<u64>().ok()?
        }
        None => return None,
    };
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || s > 60 {
        return None;
    }
    // Days from civil (Howard Hinnant's algorithm).
    let y = if mo <= 2 { y - 1 } else { y } as i64;
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mo = mo as i64;
    let doy = (153 * (if mo > 2 { mo - 3 } else { mo + 9 }) + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = days * 86_400 + (h * 3600 + mi * 60 + s) as i64;
    u64::try_from(secs).ok().map(|s| s * 1000 + millis)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn index(users: &Value, in_doubt: bool) -> Index {
        let mut b = IndexBuilder::default();
        b.add_chunk(1, users.to_string().as_bytes(), in_doubt)
            .unwrap();
        b.seal()
    }

    fn export(index: &mut Index, lines: &[Value]) {
        for line in lines {
            index.line(line.to_string().as_bytes()).unwrap();
        }
    }

    #[test]
    fn users_come_out_present_different_or_missing() {
        let mut ix = index(
            &json!([
                {"email": "Ann@Example.com", "user_metadata": {"a": 1, "b": [1, 2]}, "given_name": "Ann"},
                {"email": "bob@example.com", "user_metadata": {"plan": "gold"}},
                {"email": "cy@example.com"},
            ]),
            false,
        );
        export(
            &mut ix,
            &[
                // Keys reordered, email lowercased by Auth0, 1.0 for 1: still matching.
                json!({"user_id": "auth0|1", "email": "ann@example.com", "given_name": "Ann", "user_metadata": {"b": [1, 2], "a": 1.0}}),
                json!({"user_id": "auth0|2", "email": "bob@example.com", "user_metadata": {"plan": "silver"}}),
                json!({"user_id": "auth0|9", "email": "stranger@example.com"}),
            ],
        );
        let r = ix.finish(2, 0);
        assert_eq!(
            (
                r.report.present,
                r.report.present_with_differences,
                r.report.missing
            ),
            (1, 1, 1)
        );
        assert_eq!(
            r.report.differences_by_field,
            BTreeMap::from([("user_metadata".to_string(), 1)])
        );
        assert_eq!(r.report.export_users_read, 3);
        assert!(r.report.verified_identity_holds);
        assert_eq!(
            ix.verdict_of(&json!({"email": "cy@example.com"})),
            Some(Verdict::Missing)
        );
    }

    #[test]
    fn a_field_the_run_did_not_set_is_not_compared_and_a_lost_field_differs() {
        let mut ix = index(&json!([{"username": "Zed", "nickname": "z"}]), false);
        export(
            &mut ix,
            &[json!({"username": "zed", "nickname": "z", "given_name": "anything"})],
        );
        assert_eq!(ix.finish(1, 0).report.present, 1);
        ix.reset();
        export(&mut ix, &[json!({"username": "zed"})]);
        assert_eq!(
            ix.verdict_of(&json!({"username": "ZED"})),
            Some(Verdict::Different(vec!["nickname"]))
        );
    }

    #[test]
    fn in_doubt_chunks_are_imported_when_all_found_else_resubmitted() {
        let mut b = IndexBuilder::default();
        b.add_chunk(1, br#"[{"email":"a@x.io"},{"email":"b@x.io"}]"#, true)
            .unwrap();
        b.add_chunk(2, br#"[{"email":"c@x.io"},{"email":"d@x.io"}]"#, true)
            .unwrap();
        b.add_chunk(3, br#"[{"email":"e@x.io"}]"#, false).unwrap();
        let mut ix = b.seal();
        for email in ["a@x.io", "b@x.io", "c@x.io", "e@x.io", "e@x.io"] {
            ix.line(json!({ "email": email }).to_string().as_bytes())
                .unwrap();
        }
        let r = ix.finish(1, 0);
        assert_eq!(
            r.in_doubt_chunks,
            vec![
                InDoubtChunk {
                    seq: 1,
                    found: 2,
                    missing: 0,
                    verdict: InDoubtVerdict::Imported,
                    resubmitted: false,
                },
                InDoubtChunk {
                    seq: 2,
                    found: 1,
                    missing: 1,
                    verdict: InDoubtVerdict::Resubmit,
                    resubmitted: false,
                },
            ]
        );
        assert_eq!(r.report.imported_by_unknown_jobs, 2);
        assert_eq!(r.report.duplicates, 1);
        assert!(r.report.verified_identity_holds);
    }

    #[test]
    fn users_auth0_failed_are_set_apart_from_the_identity() {
        let mut b = IndexBuilder::default();
        b.add_chunk(
            1,
            br#"[{"email":"a@x.io"},{"email":"dup@x.io","given_name":"New"}]"#,
            false,
        )
        .unwrap();
        b.mark_failed(&json!({"email": "DUP@x.io", "given_name": "New"}));
        let mut ix = b.seal();
        export(
            &mut ix,
            &[
                json!({"email": "a@x.io"}),
                json!({"email": "dup@x.io", "given_name": "Old"}),
            ],
        );
        let r = ix.finish(1, 0);
        assert_eq!(r.report.failed_at_auth0_checked, 1);
        assert_eq!(r.report.verified_present, 1);
        assert!(r.report.verified_identity_holds);
        assert!(!ix.finish(2, 0).report.verified_identity_holds);
    }

    #[test]
    fn iso_dates_match_python_datetime() {
        // python3 -c "import datetime as d; print(int(d.datetime(2026,12,7,14,24,29,123000,tzinfo=d.timezone.utc).timestamp()*1000))"
        assert_eq!(
            iso8601_ms("2026-12-07T14:24:29.123Z"),
            Some(1_796_653_469_123)
        );
        assert_eq!(iso8601_ms("1970-01-01T00:00:00Z"), Some(0));
        // python3 -c "... d.datetime(2024,2,29,23,59,59,tzinfo=utc) ..."
        assert_eq!(
            iso8601_ms("2024-02-29T23:59:59.5Z"),
            Some(1_709_251_199_500)
        );
        assert_eq!(iso8601_ms("2024-02-29 23:59:59Z"), None);
        assert_eq!(
            created_by_run(Some("1970-01-01T00:00:01Z"), 1000),
            Some(true)
        );
        assert_eq!(
            created_by_run(Some("1970-01-01T00:00:00.999Z"), 1000),
            Some(false)
        );
    }

    proptest! {
        /// Whatever subset of the run's users the export holds (in any order, among strangers),
        /// present + missing counts every user once and exactly the exported ones are present.
        #[test]
        fn every_accepted_user_is_counted_once(
            n in 1usize..60,
            kept in proptest::collection::vec(any::<bool>(), 60),
            strangers in 0usize..20,
            seed in any::<u64>(),
        ) {
            let users: Vec<Value> = (0..n).map(|i| json!({"email": format!("u{i}@x.io"), "user_metadata": {"i": i}})).collect();
            let mut ix = index(&Value::Array(users.clone()), false);
            let mut lines: Vec<Value> = users.iter().enumerate().filter(|(i, _)| kept[*i]).map(|(_, u)| u.clone()).collect();
            lines.extend((0..strangers).map(|i| json!({"email": format!("s{i}@y.io")})));
            // A deterministic shuffle.
            let mut state = seed | 1;
            for i in (1..lines.len()).rev() {
                state ^= state << 13; state ^= state >> 7; state ^= state << 17;
                lines.swap(i, (state % (i as u64 + 1)) as usize);
            }
            export(&mut ix, &lines);
            let exported = kept.iter().take(n).filter(|k| **k).count() as u64;
            let r = ix.finish(exported, 0).report;
            prop_assert_eq!(r.users_checked, n as u64);
            prop_assert_eq!(r.present, exported);
            prop_assert_eq!(r.missing, n as u64 - exported);
            prop_assert_eq!(r.present_with_differences, 0);
            prop_assert!(r.verified_identity_holds);
        }
    }
}
