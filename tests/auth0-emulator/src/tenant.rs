//! The tenant's user store and what a completed import does to it, user by user (facts §7): Auth0's
//! per-user rules, duplicates inside the file, existing users with and without upsert.
//!
//! Choices for unconfirmed points:
//! - Existing users match on email (case-insensitive), user_id, username (case-insensitive) or
//!   phone_number, within the same connection, in that order; with upsert the first match is
//!   updated (facts §9.5 lists email / user_id / username; phone is in S1's upsert=false list).
//! - In-file duplicates: the first occurrence is processed, later ones fail (facts §7.1 INFER);
//!   every record counts as "provided", even one that failed validation.
//! - Upserting `custom_password_hash` onto a user whose stored hash is not an imported custom
//!   hash fails with code `CONFLICT` (facts §7.2 quotes the message; the code is not recorded).

use import_core::redact::redact_user;
use import_core::rules::check_serde_user;
use serde::Serialize;
use serde_json::{json, Map, Value};

use crate::config::ConnectionConfig;
use crate::randomness::IdMint;

/// Attributes an upsert may change (facts §7.2); everything else of an existing user stays.
const UPSERTABLE: &[&str] = &[
    "app_metadata",
    "user_metadata",
    "email_verified",
    "given_name",
    "family_name",
    "name",
    "nickname",
    "picture",
    "custom_password_hash",
];

const ALREADY_EXISTS: &str = "The user already exist and upsert parameter is false";
const HASH_ALREADY_DEFINED: &str =
    "A custom_password_hash was provided, but the user already has password hash defined";

/// `summary` of a finished import job, in the key order of Auth0's recorded body.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Summary {
    pub failed: usize,
    pub updated: usize,
    pub inserted: usize,
    pub total: usize,
}

/// What one import did: the summary and the `/errors` entries (users already redacted).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ImportOutcome {
    pub summary: Summary,
    pub errors: Vec<Value>,
}

#[derive(Debug, Clone)]
struct StoredUser {
    connection_id: String,
    record: Value,
}

#[derive(Debug, Default)]
pub struct Tenant {
    users: Vec<StoredUser>,
}

/// The identifiers of a submitted record, normalised the way Auth0 compares them.
#[derive(Debug, Default)]
struct Identifiers {
    email: Option<String>,
    username: Option<String>,
    user_id: Option<String>,
    phone_number: Option<String>,
}

impl Identifiers {
    fn of(user: &Value) -> Self {
        let text = |key: &str| user.get(key).and_then(Value::as_str);
        Self {
            email: text("email").map(str::to_lowercase),
            username: text("username").map(str::to_lowercase),
            user_id: text("user_id").map(str::to_string),
            phone_number: text("phone_number").map(str::to_string),
        }
    }
}

impl Tenant {
    /// Every stored user, secrets masked.
    pub fn users(&self) -> Vec<Value> {
        self.users
            .iter()
            .map(|stored| {
                let mut record = stored.record.clone();
                redact_user(&mut record);
                record
            })
            .collect()
    }

    /// The stored records of one connection, in creation order, secrets included (exports
    /// project fields out of them; hashes are never among the exportable fields we write).
    pub fn records_of<'t>(
        &'t self,
        connection_id: &'t str,
    ) -> impl Iterator<Item = &'t Value> + 't {
        self.users
            .iter()
            .filter(move |stored| stored.connection_id == connection_id)
            .map(|stored| &stored.record)
    }

    pub fn count_of(&self, connection_id: &str) -> usize {
        self.records_of(connection_id).count()
    }

    /// `GET /api/v2/users-by-email`: every user (any connection) whose email is `email`,
    /// compared as stored (Auth0 documents the parameter as case-sensitive; we store emails
    /// lowercased, as Auth0 does), as profiles: no password hash or MFA secret.
    pub fn by_email(&self, email: &str) -> Vec<Value> {
        self.users
            .iter()
            .filter(|stored| stored.record.get("email").and_then(Value::as_str) == Some(email))
            .map(|stored| profile(&stored.record))
            .collect()
    }

    /// `DELETE /api/v2/users/{id}`: whether a user was removed.
    pub fn delete(&mut self, user_id: &str) -> bool {
        let before = self.users.len();
        self.users
            .retain(|stored| stored.record.get("user_id").and_then(Value::as_str) != Some(user_id));
        self.users.len() != before
    }

    /// Adds users to a connection without the import rules (no duplicate search): seeding a
    /// large tenant for benchmarks in O(n). Records get the fields an import would give them.
    pub fn seed(
        &mut self,
        users: Vec<Value>,
        connection: &ConnectionConfig,
        ids: &mut IdMint,
        now: &str,
    ) {
        self.users.reserve(users.len());
        for user in users {
            self.insert(&user, connection, ids, now);
        }
    }

    /// Applies a parsed users file (a JSON array of objects) to the tenant.
    pub fn import(
        &mut self,
        users: &[Value],
        connection: &ConnectionConfig,
        upsert: bool,
        ids: &mut IdMint,
        now: &str,
        keep_metadata: bool,
    ) -> ImportOutcome {
        let mut outcome = ImportOutcome::default();
        let mut provided: Vec<Identifiers> = Vec::new();
        for user in users {
            outcome.summary.total += 1;
            let identifiers = Identifiers::of(user);
            let duplicate_of = already_provided(&provided, &identifiers);
            let result = if let Some(failures) = violations(user) {
                Err(failures)
            } else if let Some(kind) = duplicate_of {
                Err(vec![duplicated(&format!(
                    "A user with this {kind} was already provided."
                ))])
            } else {
                match self.find_existing(&connection.id, &identifiers) {
                    Some(_) if !upsert => Err(vec![duplicated(ALREADY_EXISTS)]),
                    Some(index) => self
                        .update(index, user, now, keep_metadata)
                        .map(|()| Applied::Updated),
                    None => {
                        self.insert(user, connection, ids, now);
                        Ok(Applied::Inserted)
                    }
                }
            };
            provided.push(identifiers);
            match result {
                Ok(Applied::Inserted) => outcome.summary.inserted += 1,
                Ok(Applied::Updated) => outcome.summary.updated += 1,
                Err(errors) => {
                    outcome.summary.failed += 1;
                    let mut shown = user.clone();
                    redact_user(&mut shown);
                    outcome
                        .errors
                        .push(json!({ "user": shown, "errors": errors }));
                }
            }
        }
        outcome
    }

    fn find_existing(&self, connection_id: &str, wanted: &Identifiers) -> Option<usize> {
        let candidates = || {
            self.users
                .iter()
                .enumerate()
                .filter(move |(_, stored)| stored.connection_id == connection_id)
        };
        let find = |key: &str, value: &Option<String>| {
            let value = value.as_ref()?;
            candidates()
                .find(|(_, stored)| stored_key(&stored.record, key).as_ref() == Some(value))
                .map(|(index, _)| index)
        };
        find("email", &wanted.email)
            .or_else(|| find("user_id", &wanted.user_id))
            .or_else(|| find("username", &wanted.username))
            .or_else(|| find("phone_number", &wanted.phone_number))
    }

    fn insert(&mut self, user: &Value, connection: &ConnectionConfig, ids: &mut IdMint, now: &str) {
        let mut record = user.as_object().cloned().unwrap_or_default();
        let bare_id = match record.get("user_id").and_then(Value::as_str) {
            Some(id) => id.to_string(),
            None => ids.user_id(),
        };
        record.insert("user_id".into(), json!(format!("auth0|{bare_id}")));
        for key in ["email", "username"] {
            if let Some(text) = record.get(key).and_then(Value::as_str) {
                let lowered = text.to_lowercase();
                record.insert(key.into(), json!(lowered));
            }
        }
        record.entry("email_verified").or_insert(json!(false));
        record.insert(
            "identities".into(),
            json!([{
                "connection": connection.name,
                "user_id": bare_id,
                "provider": "auth0",
                "isSocial": false,
            }]),
        );
        record.insert("created_at".into(), json!(now));
        record.insert("updated_at".into(), json!(now));
        self.users.push(StoredUser {
            connection_id: connection.id.clone(),
            record: Value::Object(record),
        });
    }

    /// Upsert: only upsertable attributes change; metadata objects are replaced whole, and
    /// `email_verified` falls back to false when not given (facts §7.2).
    /// `keep_metadata` (a fault switch) leaves both metadata objects as they were: the "upsert
    /// succeeded but the field did not change" case reconciliation must catch.
    fn update(
        &mut self,
        index: usize,
        user: &Value,
        now: &str,
        keep_metadata: bool,
    ) -> Result<(), Vec<Value>> {
        let Some(record) = self.users[index].record.as_object_mut() else {
            return Ok(());
        };
        if user.get("custom_password_hash").is_some()
            && !record.contains_key("custom_password_hash")
        {
            return Err(vec![
                json!({ "code": "CONFLICT", "message": HASH_ALREADY_DEFINED }),
            ]);
        }
        for key in UPSERTABLE {
            if keep_metadata && key.ends_with("_metadata") {
                continue;
            }
            match user.get(*key) {
                Some(value) => {
                    record.insert((*key).to_string(), value.clone());
                }
                None if *key == "email_verified" => {
                    record.insert((*key).to_string(), json!(false));
                }
                None => {}
            }
        }
        record.insert("updated_at".into(), json!(now));
        Ok(())
    }
}

enum Applied {
    Inserted,
    Updated,
}

/// A stored record as the Management API shows a user: no password hash, no MFA secrets.
fn profile(record: &Value) -> Value {
    let mut shown = record.clone();
    if let Some(fields) = shown.as_object_mut() {
        for secret in ["password_hash", "custom_password_hash", "mfa_factors"] {
            fields.remove(secret);
        }
    }
    shown
}

/// The value Auth0 would compare for `key` on a stored user.
fn stored_key(record: &Value, key: &str) -> Option<String> {
    let text = record.get(key).and_then(Value::as_str)?;
    Some(match key {
        "user_id" => text.strip_prefix("auth0|").unwrap_or(text).to_string(),
        _ => text.to_string(),
    })
}

/// Which identifier of `wanted` an earlier record of the same file already used.
fn already_provided(provided: &[Identifiers], wanted: &Identifiers) -> Option<&'static str> {
    let seen = |pick: fn(&Identifiers) -> &Option<String>| {
        pick(wanted)
            .as_ref()
            .is_some_and(|value| provided.iter().any(|p| pick(p).as_ref() == Some(value)))
    };
    if seen(|i| &i.email) {
        Some("email")
    } else if seen(|i| &i.username) {
        Some("username")
    } else if seen(|i| &i.user_id) {
        Some("user_id")
    } else {
        None
    }
}

/// Auth0's per-user rule violations as job errors, or None when the record passes.
fn violations(user: &Value) -> Option<Vec<Value>> {
    let found = check_serde_user(user);
    if found.is_empty() {
        return None;
    }
    Some(
        found
            .into_iter()
            .map(|violation| {
                let mut error = Map::new();
                error.insert("code".into(), json!(violation.code));
                error.insert("message".into(), json!(violation.message));
                if !violation.path.is_empty() {
                    error.insert("path".into(), json!(violation.path));
                }
                Value::Object(error)
            })
            .collect(),
    )
}

/// A DUPLICATED_USER error; recorded ones carry no `path` (facts §3).
fn duplicated(message: &str) -> Value {
    json!({ "code": "DUPLICATED_USER", "message": message })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ConnectionKind;

    fn connection() -> ConnectionConfig {
        ConnectionConfig {
            id: "con_TestConnection01".into(),
            name: "Username-Password-Authentication".into(),
            kind: ConnectionKind::Database,
            enabled: true,
        }
    }

    fn import(tenant: &mut Tenant, users: Value, upsert: bool) -> ImportOutcome {
        let users = users.as_array().cloned().unwrap();
        tenant.import(
            &users,
            &connection(),
            upsert,
            &mut IdMint::new(1),
            "now",
            false,
        )
    }

    #[test]
    fn inserts_with_prefixed_ids_and_lowercased_email() {
        let mut tenant = Tenant::default();
        let outcome = import(
            &mut tenant,
            json!([{"email": "Jane@Example.com", "user_id": "u1"}, {"email": "bob@example.com"}]),
            false,
        );
        assert_eq!(
            outcome.summary,
            Summary {
                failed: 0,
                updated: 0,
                inserted: 2,
                total: 2
            }
        );
        let users = tenant.users();
        assert_eq!(users[0]["user_id"], "auth0|u1");
        assert_eq!(users[0]["email"], "jane@example.com");
        assert_eq!(users[0]["email_verified"], false);
        assert!(users[1]["user_id"].as_str().unwrap().starts_with("auth0|"));
    }

    #[test]
    fn existing_user_matches_on_user_id_and_username_too() {
        let mut tenant = Tenant::default();
        import(
            &mut tenant,
            json!([{"email": "a@example.com", "user_id": "u1", "username": "alice"}]),
            false,
        );
        let outcome = import(
            &mut tenant,
            json!([
                {"email": "other@example.com", "user_id": "u1"},
                {"email": "third@example.com", "username": "ALICE"}
            ]),
            false,
        );
        assert_eq!(outcome.summary.failed, 2);
        assert_eq!(outcome.errors[1]["errors"][0]["message"], ALREADY_EXISTS);
    }

    #[test]
    fn custom_hash_cannot_be_upserted_onto_a_user_with_another_hash() {
        let mut tenant = Tenant::default();
        import(&mut tenant, json!([{"email": "a@example.com"}]), false);
        let hash = json!({"algorithm": "md5", "hash": {"value": "5f4dcc3b5aa765d61d8327deb882cf99", "encoding": "hex"}});
        let outcome = import(
            &mut tenant,
            json!([{"email": "a@example.com", "custom_password_hash": hash}]),
            true,
        );
        assert_eq!(outcome.summary.failed, 1);
        assert_eq!(outcome.errors[0]["errors"][0]["code"], "CONFLICT");
        assert_eq!(
            outcome.errors[0]["user"]["custom_password_hash"]["hash"]["value"],
            "*****"
        );
    }
}
