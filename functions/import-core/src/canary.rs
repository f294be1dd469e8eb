//! Canaries: accounts whose plaintext password the operator knows. Split finds each one in the
//! drop and verifies its hash the way Auth0 will, before any chunk can be submitted.
//!
//! The plaintext never leaves `Canary::password` (a `Password`, shown as `*****`): results name a
//! canary by its identity and say why, with the doctor's suggestion when one verifies.

use aho_corasick::AhoCorasick;
use auth0_password_hash::{check, diagnose, Password};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::violation::Violation;

/// How a canary is found in the drop.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CanaryIdentity {
    /// Case-insensitive, as Auth0 stores emails lower-cased.
    Email(String),
    /// Case-insensitive, as Auth0 stores usernames lower-cased.
    Username(String),
    /// Exact; an `auth0|` prefix is ignored on either side (split strips it from exports).
    UserId(String),
}

impl CanaryIdentity {
    fn field(&self) -> &'static str {
        match self {
            CanaryIdentity::Email(_) => "email",
            CanaryIdentity::Username(_) => "username",
            CanaryIdentity::UserId(_) => "user_id",
        }
    }

    fn value(&self) -> &str {
        match self {
            CanaryIdentity::Email(v) | CanaryIdentity::Username(v) | CanaryIdentity::UserId(v) => v,
        }
    }

    fn matches(&self, record: &Value) -> bool {
        let Some(found) = record.get(self.field()).and_then(Value::as_str) else {
            return false;
        };
        match self {
            CanaryIdentity::Email(v) | CanaryIdentity::Username(v) => {
                found.to_lowercase() == v.to_lowercase()
            }
            CanaryIdentity::UserId(v) => strip_auth0(found) == strip_auth0(v),
        }
    }
}

fn strip_auth0(id: &str) -> &str {
    id.strip_prefix("auth0|").unwrap_or(id)
}

impl std::fmt::Display for CanaryIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.field(), self.value())
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Canary {
    pub identity: CanaryIdentity,
    pub password: Password,
}

/// The canaries a split checks, and whether a failure only warns.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Canaries {
    pub list: Vec<Canary>,
    /// A failed or missing canary is reported but does not stop the run (`--canary-warn`; the
    /// drop option `canary=warn/` has the same effect).
    pub warn_only: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CanaryError {
    #[error("the canary list is not JSON (a JSON array, or one JSON object per line): line {line}, column {column}")]
    NotJson { line: usize, column: usize },
    #[error("canary {position}: expected an object with one of \"email\", \"username\", \"user_id\" and a \"password\" (strings)")]
    BadEntry { position: usize },
    #[error("canary {position}: it names more than one of email, username, user_id; name one")]
    TwoIdentities { position: usize },
    #[error("the secret's \"canaries\" must be a JSON array of {{\"email\"|\"username\"|\"user_id\", \"password\"}}")]
    SecretField,
    #[error("the canary secret is not valid JSON (line {line}, column {column})")]
    SecretNotJson { line: usize, column: usize },
}

/// Reads a canary file: a JSON array, or NDJSON, of `{"email"|"username"|"user_id": …, "password": …}`.
/// Errors name the entry by position, never its password.
pub fn parse_canaries(text: &str) -> Result<Vec<Canary>, CanaryError> {
    let trimmed = text.trim_start();
    let values: Vec<Value> = if trimmed.starts_with('[') {
        let value: Value = serde_json::from_str(text).map_err(|e| CanaryError::NotJson {
            line: e.line(),
            column: e.column(),
        })?;
        match value {
            Value::Array(items) => items,
            _ => return Err(CanaryError::BadEntry { position: 1 }),
        }
    } else {
        let mut items = Vec::new();
        for (i, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            items.push(
                serde_json::from_str(line).map_err(|e| CanaryError::NotJson {
                    line: i + 1,
                    column: e.column(),
                })?,
            );
        }
        items
    };
    values
        .iter()
        .enumerate()
        .map(|(i, v)| canary_of(v, i + 1))
        .collect()
}

/// The canaries in a secret's `canaries` field (none when it has none): in Lambda the
/// plaintexts are secrets, so they live in Secrets Manager beside the credentials.
pub fn canaries_from_secret(secret: &str) -> Result<Vec<Canary>, CanaryError> {
    let value: Value = serde_json::from_str(secret).map_err(|e| CanaryError::SecretNotJson {
        line: e.line(),
        column: e.column(),
    })?;
    match value.get("canaries") {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(items)) => items
            .iter()
            .enumerate()
            .map(|(i, v)| canary_of(v, i + 1))
            .collect(),
        Some(_) => Err(CanaryError::SecretField),
    }
}

fn canary_of(value: &Value, position: usize) -> Result<Canary, CanaryError> {
    let object = value
        .as_object()
        .ok_or(CanaryError::BadEntry { position })?;
    let text = |key: &str| -> Result<Option<String>, CanaryError> {
        match object.get(key) {
            None => Ok(None),
            Some(Value::String(s)) if !s.is_empty() => Ok(Some(s.clone())),
            Some(_) => Err(CanaryError::BadEntry { position }),
        }
    };
    let mut identities = [
        text("email")?.map(CanaryIdentity::Email),
        text("username")?.map(CanaryIdentity::Username),
        text("user_id")?.map(CanaryIdentity::UserId),
    ]
    .into_iter()
    .flatten();
    let identity = identities
        .next()
        .ok_or(CanaryError::BadEntry { position })?;
    if identities.next().is_some() {
        return Err(CanaryError::TwoIdentities { position });
    }
    let password = text("password")?.ok_or(CanaryError::BadEntry { position })?;
    Ok(Canary {
        identity,
        password: Password::new(password),
    })
}

/// What happened to one canary.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CanaryOutcome {
    Passed,
    Failed,
    Missing,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CanaryResult {
    /// `email alice@example.com`: the identity it was looked up by.
    pub canary: String,
    pub outcome: CanaryOutcome,
    /// Why it failed or is missing (never the password or hash).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The doctor's suggestion: "verifies with salt.position = suffix; your records declare prefix".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub doctor: Option<String>,
    /// What the doctor tried, parameter by parameter.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub doctor_tried: Option<String>,
    /// 0-based position of its record in the input.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_index: Option<u64>,
}

/// The canary check of a run, in its manifest and report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CanaryReport {
    pub checked: u32,
    pub passed: u32,
    pub failed: u32,
    pub missing: u32,
    /// Failures only warned (`--canary-warn` or `canary=warn/`).
    pub warn_only: bool,
    /// The run was stopped before any chunk could be submitted.
    pub blocked: bool,
    pub results: Vec<CanaryResult>,
}

impl CanaryReport {
    /// Whether the canaries stopped the run before any chunk was submitted.
    pub fn stops_the_run(&self) -> bool {
        self.blocked
    }

    /// One line per failed or missing canary, for the CLI and the manifest's failure reason.
    pub fn problems(&self) -> Vec<String> {
        self.results
            .iter()
            .filter(|r| r.outcome != CanaryOutcome::Passed)
            .map(|r| {
                let mut line = format!(
                    "canary {} {}: {}",
                    r.canary,
                    match r.outcome {
                        CanaryOutcome::Missing => "missing",
                        _ => "failed",
                    },
                    r.reason.as_deref().unwrap_or("")
                );
                if let Some(doctor) = &r.doctor {
                    line.push_str(&format!("; {doctor}"));
                }
                line
            })
            .collect()
    }
}

/// Where a canary's record was seen.
enum Seen {
    Accepted { index: u64, record: Value },
    Rejected { index: u64, codes: Vec<String> },
}

/// Looks for the canaries in the records split sees, cheaply: one multi-pattern scan of each
/// record's bytes for a piece of each identity, and a parse only on a hit.
pub(crate) struct CanaryFinder {
    canaries: Vec<Canary>,
    scan: Option<AhoCorasick>,
    seen: Vec<Option<Seen>>,
}

/// The longest run of `value` that JSON text holds as written (escapes aside), lower-cased:
/// what must appear in a record naming it, however the record escapes the rest.
fn literal_piece(value: &str) -> String {
    value
        .split(|c: char| !(c.is_ascii_graphic() || c == ' ') || matches!(c, '"' | '\\' | '/'))
        .max_by_key(|piece| piece.len())
        .unwrap_or("")
        .to_ascii_lowercase()
}

impl CanaryFinder {
    pub(crate) fn new(canaries: &[Canary]) -> Self {
        let pieces: Vec<String> = canaries
            .iter()
            .map(|c| literal_piece(strip_auth0(c.identity.value())))
            .collect();
        // Too short a piece would hit most records: then every record is parsed (still correct).
        let scan = if pieces.iter().all(|p| p.len() >= 3) {
            AhoCorasick::builder()
                .ascii_case_insensitive(true)
                .build(&pieces)
                .ok()
        } else {
            None
        };
        CanaryFinder {
            canaries: canaries.to_vec(),
            scan,
            seen: canaries.iter().map(|_| None).collect(),
        }
    }

    fn candidates(&self, bytes: &[u8]) -> Option<Value> {
        if self
            .seen
            .iter()
            .all(|s| matches!(s, Some(Seen::Accepted { .. })))
        {
            return None;
        }
        if let Some(scan) = &self.scan {
            if !scan.is_match(bytes) {
                return None;
            }
        }
        serde_json::from_slice(bytes).ok()
    }

    /// An accepted record, as it goes into a chunk. The first accepted occurrence is the one
    /// Auth0 keeps (later ones are in-drop duplicates); it overrides an earlier rejected copy.
    pub(crate) fn offer_accepted(&mut self, index: u64, bytes: &[u8]) {
        let Some(record) = self.candidates(bytes) else {
            return;
        };
        for (canary, seen) in self.canaries.iter().zip(self.seen.iter_mut()) {
            let taken = matches!(seen, Some(Seen::Accepted { .. }));
            if !taken && canary.identity.matches(&record) {
                *seen = Some(Seen::Accepted {
                    index,
                    record: record.clone(),
                });
            }
        }
    }

    /// A rejected record: a canary found only here will not be imported.
    pub(crate) fn offer_rejected(&mut self, index: u64, bytes: &[u8], reasons: &[Violation]) {
        let Some(record) = self.candidates(bytes) else {
            return;
        };
        for (canary, seen) in self.canaries.iter().zip(self.seen.iter_mut()) {
            if seen.is_none() && canary.identity.matches(&record) {
                let mut codes: Vec<String> = reasons.iter().map(|r| r.code.clone()).collect();
                codes.sort();
                codes.dedup();
                *seen = Some(Seen::Rejected { index, codes });
            }
        }
    }

    /// Verifies every canary found, and runs the doctor on those that fail.
    pub(crate) fn check(self, warn_only: bool) -> CanaryReport {
        let mut report = CanaryReport {
            checked: 0,
            passed: 0,
            failed: 0,
            missing: 0,
            warn_only,
            blocked: false,
            results: Vec::new(),
        };
        for (canary, seen) in self.canaries.iter().zip(self.seen) {
            report.checked += 1;
            let mut result = CanaryResult {
                canary: canary.identity.to_string(),
                outcome: CanaryOutcome::Failed,
                reason: None,
                doctor: None,
                doctor_tried: None,
                input_index: None,
            };
            match seen {
                None => {
                    result.outcome = CanaryOutcome::Missing;
                    result.reason = Some(format!(
                        "no record of the drop has this {}: check the canary list against the export",
                        canary.identity.field()
                    ));
                }
                Some(Seen::Rejected { index, codes }) => {
                    result.input_index = Some(index);
                    result.reason = Some(format!(
                        "its record was rejected before submission ({}; see rejects.ndjson), so it would not be imported",
                        codes.join(", ")
                    ));
                }
                Some(Seen::Accepted { index, record }) => {
                    result.input_index = Some(index);
                    match check(&record, canary.password.expose()) {
                        Ok(true) => result.outcome = CanaryOutcome::Passed,
                        Ok(false) => {
                            result.reason = Some(
                                "the password does not verify against the record's hash as declared: Auth0 would answer \"wrong email or password\"".into(),
                            );
                            let diagnosis = diagnose(&record, canary.password.expose());
                            result.doctor = Some(match &diagnosis.finding {
                                Some(finding) => finding.sentence(),
                                None => "no single-parameter variant verifies either: check the password and the hash's source".into(),
                            });
                            result.doctor_tried = Some(diagnosis.tried_summary());
                        }
                        Err(e) => {
                            result.reason = Some(format!("its hash cannot be checked: {e}"));
                        }
                    }
                }
            }
            match result.outcome {
                CanaryOutcome::Passed => report.passed += 1,
                CanaryOutcome::Failed => report.failed += 1,
                CanaryOutcome::Missing => report.missing += 1,
            }
            report.results.push(result);
        }
        report.blocked = !warn_only && report.passed < report.checked;
        report
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canary_files_are_arrays_or_ndjson_and_errors_never_show_the_password() {
        let array = r#"[{"email":"a@example.com","password":"s3cret-one"},{"user_id":"auth0|42","password":"two"}]"#;
        let ndjson = "{\"username\":\"bob\",\"password\":\"three\"}\n\n{\"email\":\"c@example.com\",\"password\":\"four\"}\n";
        assert_eq!(parse_canaries(array).unwrap().len(), 2);
        assert_eq!(parse_canaries(ndjson).unwrap().len(), 2);
        for bad in [
            r#"[{"email":"a@example.com"}]"#,
            r#"[{"password":"s3cret-one"}]"#,
            r#"[{"email":"a@example.com","username":"a","password":"s3cret-one"}]"#,
            r#"[{"email":"a@example.com","password":"s3cret-one""#,
        ] {
            let e = parse_canaries(bad).unwrap_err().to_string();
            assert!(!e.contains("s3cret"), "{e}");
        }
        let shown = format!("{:?}", parse_canaries(array).unwrap());
        assert!(!shown.contains("s3cret"), "{shown}");
    }

    #[test]
    fn the_secret_may_carry_canaries() {
        let secret = r#"{"domain":"t.auth0.com","token":"x","canaries":[{"email":"a@example.com","password":"p"}]}"#;
        assert_eq!(canaries_from_secret(secret).unwrap().len(), 1);
        assert!(
            canaries_from_secret(r#"{"domain":"t.auth0.com","token":"x"}"#)
                .unwrap()
                .is_empty()
        );
        assert_eq!(
            canaries_from_secret(r#"{"canaries":{"email":"a"}}"#),
            Err(CanaryError::SecretField)
        );
    }

    #[test]
    fn an_accepted_copy_wins_over_an_earlier_rejected_one_and_a_later_duplicate() {
        let canary = Canary {
            identity: CanaryIdentity::Email("alice@example.com".into()),
            password: Password::new("pw"),
        };
        let mut finder = CanaryFinder::new(std::slice::from_ref(&canary));
        let record = br#"{"email":"ALICE@example.com"}"#;
        let reasons = [Violation::new("INVALID_TYPE", "email_verified", "x")];
        finder.offer_rejected(1, record, &reasons);
        finder.offer_accepted(5, record);
        finder.offer_accepted(9, record);
        finder.offer_accepted(12, br#"{"email":"bob@example.com"}"#);
        let report = finder.check(false);
        assert_eq!(report.results[0].input_index, Some(5));
        // No hash: Auth0 gives this user a random password, so the canary fails, and blocks.
        assert_eq!(report.failed, 1);
        assert!(report.blocked);
        assert!(report.results[0]
            .reason
            .as_deref()
            .unwrap_or("")
            .contains("cannot be checked"));
    }

    #[test]
    fn identities_match_the_way_auth0_stores_them() {
        let record =
            serde_json::json!({"email":"Alice@Example.com","username":"Alice","user_id":"42"});
        assert!(CanaryIdentity::Email("alice@example.COM".into()).matches(&record));
        assert!(CanaryIdentity::Username("alice".into()).matches(&record));
        assert!(CanaryIdentity::UserId("auth0|42".into()).matches(&record));
        assert!(!CanaryIdentity::UserId("43".into()).matches(&record));
        assert_eq!(literal_piece("j\u{fc}rgen@example.com"), "rgen@example.com");
    }
}
