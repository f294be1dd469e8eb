//! Auth0's per-user import rules: the published schema plus the prose-only rules Auth0 enforces.
//! `check_user` runs all of them on one record and returns every violation, before any job is spent.
//!
//! Where each rule lives (one concept, one home):
//! - `schema`: the published JSON schema (`definitions.user`) as data, and the walker that applies it;
//! - `email`: the `format: email` check (validator.js `isEmail` semantics, as used by z-schema);
//! - `hash`: `password_hash`, the hash XOR, and the per-algorithm `custom_password_hash` table;
//! - `metadata`: reserved `app_metadata` keys and metadata field-name rules;
//! - `mfa`: MFA rules beyond the schema (an empty factor);
//! - `profile`: identity fields (`user_id`) and the profile limits we deliberately do not enforce.
//!
//! Conventions for every violation:
//! - `path` is the dotted path of the offending value (`mfa_factors[0].totp.secret`); for a missing
//!   property it is the path the property should have had (`custom_password_hash.hash.digest`), and it
//!   is empty for the record itself;
//! - `message` starts with the path and says what to change; it never contains a secret value
//!   (hash, salt, key or TOTP secret) and, to be safe, never echoes any string value of the record.

mod email;
mod hash;
mod metadata;
mod mfa;
pub(crate) mod node;
mod profile;
mod schema;
pub(crate) mod text;

use std::fmt::{self, Write as _};

use sonic_rs::{JsonContainerTrait, Object, Value};

use crate::violation::Violation;

/// Every rule Auth0 applies to one user object of an import file, before any job is spent.
/// Returns all violations (empty = importable). `user` is any JSON value (non-objects get one INVALID_TYPE violation).
pub fn check_user(user: &Value) -> Vec<Violation> {
    match user.as_object() {
        Some(record) => check_record(user, &Members::of(record)),
        None => {
            // The prose rules only make sense on an object: the schema walker reports the rest.
            let mut out = Vec::new();
            schema::check_value(&schema::USER_KIND, user, &Path::Root, &mut out);
            out
        }
    }
}

/// `check_user` for a record that is an object whose members the caller already gathered
/// (split reuses them for the record's identities).
pub(crate) fn check_record(user: &Value, members: &Members<'_>) -> Vec<Violation> {
    let mut out = Vec::new();
    schema::check_value(&schema::USER_KIND, user, &Path::Root, &mut out);
    check_record_rules(members, &mut out);
    out
}

/// A record's top-level members, gathered once: the rules look fields up a dozen times per
/// record, and comparing plain strings is much cheaper than walking the parsed value each time.
/// Like `Object::get`, a lookup finds the first copy of a repeated key (a record with one takes
/// split's full path anyway, see `code::REPEATED_KEY`).
pub(crate) struct Members<'v, N = &'v Value> {
    pairs: Vec<(&'v str, N)>,
}

impl<'v> Members<'v> {
    pub(crate) fn of(object: &'v Object) -> Self {
        Members {
            pairs: object.iter().collect(),
        }
    }
}

impl<'v, N: node::Node<'v>> Members<'v, N> {
    /// A record holding only these members (the text pass hands the rules one structure).
    pub(crate) fn from_pairs(pairs: Vec<(&'v str, N)>) -> Self {
        Members { pairs }
    }

    pub(crate) fn get(&self, key: &str) -> Option<N> {
        self.pairs
            .iter()
            .find(|(name, _)| *name == key)
            .map(|(_, value)| *value)
    }

    /// The member `key` when it is a string.
    pub(crate) fn str(&self, key: &str) -> Option<&'v str> {
        self.get(key).and_then(node::Node::as_str)
    }

    pub(crate) fn contains_key(&self, key: &str) -> bool {
        self.get(key).is_some()
    }
}

/// `check_user` for a record held as a `serde_json::Value` (the emulator, and tests): the same
/// rules, on the same value read back from its JSON text.
pub fn check_serde_user(user: &serde_json::Value) -> Vec<Violation> {
    match to_sonic(user) {
        Ok(user) => check_user(&user),
        // Converting a parsed JSON value cannot fail (its keys are strings); if it ever did, the
        // record must not pass unchecked.
        Err(e) => vec![Violation::new(
            code::INVALID_TYPE,
            "",
            format!("record: could not be checked: {e}"),
        )],
    }
}

/// `user` as the rules read it, through its JSON text (member order kept).
pub fn to_sonic(user: &serde_json::Value) -> Result<Value, sonic_rs::Error> {
    let text = serde_json::to_vec(user).map_err(<sonic_rs::Error as serde::de::Error>::custom)?;
    sonic_rs::from_slice(&text)
}

/// How many rules `check_record_rules` applies: its list's length, so adding one changes it.
pub(crate) const RECORD_RULE_COUNT: usize = 7;

/// A rule that is not expressible in the published schema, on the members of a record read by
/// any reader (`node::Node`).
type RecordRule<'v, N> = fn(&Members<'v, N>, &mut Vec<Violation>);

/// The rules that are not expressible in the published schema, in the order their violations
/// are reported. Each one tolerates any JSON shape: the schema walker reports wrong types, so
/// these rules skip values of the wrong type instead of reporting them twice.
pub(crate) fn check_record_rules<'v, N: node::Node<'v>>(
    record: &Members<'v, N>,
    out: &mut Vec<Violation>,
) {
    let rules: [RecordRule<'v, N>; RECORD_RULE_COUNT] = [
        hash::check_password_hash_pattern,
        hash::check_hash_fields_exclusive,
        hash::check_custom_password_hash,
        metadata::check_reserved_app_metadata_keys,
        metadata::check_metadata_field_names,
        mfa::check_factor_not_empty,
        profile::check_user_id,
    ];
    for rule in rules {
        rule(record, out);
    }
}

/// Error codes. Auth0's own codes (z-schema's, see facts §3.1) wherever one fits, so our pre-submit
/// rejects read like Auth0's job errors; the list is kept deliberately small.
/// The top-level fields of Auth0's user import (what a mapping may write).
pub(crate) fn user_fields() -> impl Iterator<Item = &'static str> {
    schema::USER.properties.iter().map(|p| p.name)
}

pub(crate) mod code {
    pub const INVALID_TYPE: &str = "INVALID_TYPE";
    pub const ENUM_MISMATCH: &str = "ENUM_MISMATCH";
    pub const OBJECT_REQUIRED: &str = "OBJECT_REQUIRED";
    pub const OBJECT_ADDITIONAL_PROPERTIES: &str = "OBJECT_ADDITIONAL_PROPERTIES";
    /// z-schema's code for `maxProperties` (an MFA factor item with two factors in it).
    pub const OBJECT_PROPERTIES_MAXIMUM: &str = "OBJECT_PROPERTIES_MAXIMUM";
    pub const ARRAY_LENGTH_SHORT: &str = "ARRAY_LENGTH_SHORT";
    pub const ARRAY_LENGTH_LONG: &str = "ARRAY_LENGTH_LONG";
    pub const PATTERN: &str = "PATTERN";
    /// Auth0 documents `FORMAT`, but the server was observed emitting `INVALID_FORMAT` (facts §9.6);
    /// we follow what the server actually says so reports can be matched against real job errors.
    pub const INVALID_FORMAT: &str = "INVALID_FORMAT";
    pub const NOT_PASSED: &str = "NOT_PASSED";
    pub const MINIMUM: &str = "MINIMUM";
    pub const MAXIMUM: &str = "MAXIMUM";
    /// Ours: a key repeated inside one object of the record as written. Only split's fast path
    /// (the record's own text) can see it, and it then re-reads the record keeping the last copy,
    /// as Auth0 does; so it never reaches a report.
    pub const REPEATED_KEY: &str = "REPEATED_KEY";
}

/// Where a value sits inside the record, built on the stack while walking and rendered to a
/// `String` only when a violation is reported: clean records (the vast majority) allocate nothing.
#[derive(Clone, Copy)]
pub(crate) enum Path<'a> {
    Root,
    Key(&'a Path<'a>, &'a str),
    Index(&'a Path<'a>, usize),
}

impl<'a> Path<'a> {
    pub(crate) fn key(&'a self, key: &'a str) -> Path<'a> {
        Path::Key(self, key)
    }

    pub(crate) fn index(&'a self, index: usize) -> Path<'a> {
        Path::Index(self, index)
    }

    pub(crate) fn render(&self) -> String {
        let mut out = String::new();
        self.write_to(&mut out);
        out
    }

    fn write_to(&self, out: &mut String) {
        match self {
            Path::Root => {}
            Path::Key(parent, key) => {
                parent.write_to(out);
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(key);
            }
            Path::Index(parent, index) => {
                parent.write_to(out);
                // Writing into a String cannot fail.
                let _ = write!(out, "[{index}]");
            }
        }
    }
}

/// `s.split(sep)` for an ASCII `sep`, by bytes: `str`'s char searcher costs more to set up than
/// the short fields split here (domain labels, PHC fields and parameters) take to scan. Every cut
/// is at an ASCII byte, so at a character boundary.
pub(crate) fn split_ascii(s: &str, sep: u8) -> impl Iterator<Item = &str> {
    let mut rest = Some(s);
    std::iter::from_fn(move || {
        let r = rest?;
        match split_once_ascii(r, sep) {
            Some((field, after)) => {
                rest = Some(after);
                Some(field)
            }
            None => {
                rest = None;
                Some(r)
            }
        }
    })
}

/// `s.split_once(sep)` for an ASCII `sep`, by bytes (see `split_ascii`).
pub(crate) fn split_once_ascii(s: &str, sep: u8) -> Option<(&str, &str)> {
    let at = s.bytes().position(|b| b == sep)?;
    Some((&s[..at], &s[at + 1..]))
}

/// Builds a violation whose message starts with the path, so a message read on its own (a CSV
/// cell, a log line) still says where the problem is.
pub(crate) fn violation(code: &str, path: &Path<'_>, detail: fmt::Arguments<'_>) -> Violation {
    let path = path.render();
    let message = if path.is_empty() {
        format!("record: {detail}")
    } else {
        format!("{path}: {detail}")
    };
    Violation::new(code, path, message)
}

#[cfg(test)]
pub(crate) mod testkit {
    //! Helpers shared by the rule tests: run `check_user` and look at `(code, path)` pairs only,
    //! since message wording is free to change. Tests build records as `serde_json` values (its
    //! `json!` and `Map` are handy in strategies); `check` reads their text the way split does.

    use proptest::prelude::*;
    use serde_json::{json, Value};

    use super::check_user;
    use crate::violation::Violation;

    /// `check_user` on `user` as split sees it: its JSON text parsed by `sonic_rs`.
    pub(crate) fn check(user: &Value) -> Vec<Violation> {
        check_user(&super::to_sonic(user).expect("serde_json's text parses"))
    }

    pub(crate) fn findings(user: &Value) -> Vec<(String, String)> {
        check(user).into_iter().map(|v| (v.code, v.path)).collect()
    }

    #[track_caller]
    pub(crate) fn assert_clean(user: &Value) {
        let violations = check(user);
        assert!(
            violations.is_empty(),
            "expected no violations for {user}, got {violations:#?}"
        );
    }

    #[track_caller]
    pub(crate) fn assert_finding(user: &Value, code: &str, path: &str) {
        let found = findings(user);
        assert!(
            found.iter().any(|(c, p)| c == code && p == path),
            "expected ({code}, {path}) for {user}, got {found:?}"
        );
    }

    /// Auth0's published example records (docs "bulk user import schema" page), one per algorithm.
    /// The digest, HMAC, scrypt, PBKDF2 and LDAP values were computed for the password "Passw0rd!"
    /// (md4 is the RFC 1320 vector for "abc"), so encodings and lengths are genuine; the bcrypt and
    /// argon2 values have the genuine layout and lengths.
    pub(crate) fn published_examples() -> Vec<Value> {
        vec![
            json!({
                "email": "antoine@contoso.com",
                "email_verified": false,
                "app_metadata": { "roles": ["admin"], "plan": "premium" },
                "user_metadata": { "theme": "light" }
            }),
            json!({
                "email": "john.doe@contoso.com",
                "email_verified": true,
                "user_id": "5457edea1b8f22891a000004",
                "username": "johndoe",
                "given_name": "John",
                "family_name": "Doe",
                "name": "John Doe",
                "nickname": "Johnny",
                "picture": "https://contoso.com/johndoe.png",
                "blocked": false,
                "phone_number": "+14155550100",
                "phone_verified": true,
                "password_hash": "$2b$10$N9qo8uLOickgx2ZMRZoMyeIjZAgcfl7p92ldGxad68LJZdL17lhWy",
                "mfa_factors": [
                    { "totp": { "secret": "2PRXZWZAYYDAWCD" } },
                    { "phone": { "value": "+15551112233" } },
                    { "email": { "value": "john.mfa@contoso.com" } }
                ]
            }),
            cph(json!({
                "algorithm": "argon2",
                "hash": {
                    "value": "$argon2id$v=19$m=65536,t=2,p=1$J4moa2MM0/6uf3HbY2Tf5w$9KqHW8Wsh6cSsoPT8kpeXaZ0Vz8NJUP8h8v5mGl2l9U",
                    "encoding": "utf8"
                }
            })),
            cph(json!({
                "algorithm": "bcrypt",
                "hash": {
                    "value": "$2y$12$N9qo8uLOickgx2ZMRZoMyeIjZAgcfl7p92ldGxad68LJZdL17lhWy",
                    "encoding": "utf8"
                }
            })),
            cph(json!({
                "algorithm": "hmac",
                "hash": {
                    "value": "41197e8f110d6e4bed871edf183b59edcfacd03b907f807aa384427402ee790f",
                    "encoding": "hex",
                    "digest": "sha256",
                    "key": { "value": "c2VjcmV0LWtleQ==", "encoding": "base64" }
                }
            })),
            cph(json!({
                "algorithm": "ldap",
                "hash": { "value": "{SSHA}zfJG7XLjnOUgSpnPte7954rIme9Zl/cr", "encoding": "utf8" }
            })),
            cph(json!({
                "algorithm": "md4",
                "hash": { "value": "A448017AAF21D8525FC10AE87AA6729D", "encoding": "hex" }
            })),
            cph(json!({
                "algorithm": "md5",
                "hash": { "value": "1524cb91042cc716c88bacaf99f2e70e", "encoding": "hex" },
                "salt": { "value": "abc123salt", "encoding": "utf8", "position": "prefix" }
            })),
            cph(json!({
                "algorithm": "sha1",
                "hash": { "value": "ejo5u016BQkXR8L39d6l7/hT9to=", "encoding": "base64" },
                "salt": { "value": "abc123salt", "position": "suffix" }
            })),
            cph(json!({
                "algorithm": "sha256",
                "hash": {
                    "value": "e66860546f18cdbbcd86b35e18b525bffc67f772c650cedfe3ff7a0026fa1dee",
                    "encoding": "hex"
                },
                "password": { "encoding": "utf8" }
            })),
            cph(json!({
                "algorithm": "sha512",
                "hash": {
                    "value": "3gYtWm/c5D7RdC5YXD7bZUJ3Oy32mPmChUndpcGR86fx5llxUkb8xcc1CUHcW+l/fD0f89SU3RdreFoup1o0DQ==",
                    "encoding": "base64"
                },
                "salt": { "value": "YWJjMTIzc2FsdA", "encoding": "base64", "position": "prefix" }
            })),
            cph(json!({
                "algorithm": "pbkdf2",
                "hash": {
                    "value": "$pbkdf2-sha256$i=100000,l=32$YWJjMTIzc2FsdA$qnxovqoXgXF4RutydWI7DE8ydVuVZglPyjupkNJaFbM",
                    "encoding": "utf8"
                }
            })),
            cph(json!({
                "algorithm": "scrypt",
                "hash": {
                    "value": "WtR2AYpMKn0I0v1G5T008LaLCM0qVK0r6RP1x0nbJxCAO7kkCjCPIhkf71/xON2RUAj+DoRo6HE+O5176cfiug==",
                    "encoding": "base64"
                },
                "salt": { "value": "abc123salt", "encoding": "utf8" },
                "keylen": 64,
                "cost": 16384,
                "blockSize": 8,
                "parallelization": 1
            })),
        ]
    }

    /// JSON built from the field names and values the rules care about, so the fuzzer reaches
    /// the deep per-algorithm and MFA code paths instead of stopping at "unknown key".
    pub(crate) fn near_miss_json() -> impl Strategy<Value = Value> {
        let names = prop::sample::select(vec![
            "email",
            "user_id",
            "password_hash",
            "custom_password_hash",
            "algorithm",
            "hash",
            "value",
            "encoding",
            "digest",
            "key",
            "salt",
            "position",
            "password",
            "keylen",
            "cost",
            "blockSize",
            "parallelization",
            "app_metadata",
            "user_metadata",
            "mfa_factors",
            "totp",
            "phone",
            "secret",
            "blocked",
            "__tenant",
            "a.b",
        ]);
        let strings = prop::sample::select(vec![
            "argon2",
            "bcrypt",
            "hmac",
            "ldap",
            "md4",
            "md5",
            "sha1",
            "sha256",
            "sha512",
            "pbkdf2",
            "scrypt",
            "hex",
            "base64",
            "utf8",
            "prefix",
            "whirlpool",
            "$2b$10$",
            "$argon2id$v=19$m=1,t=1,p=1$AA$AA",
            "$pbkdf2-sha1$l=1$AA$AA",
            "{SSHA}AAAA",
            "{CRYPT}x",
            "a@b.co",
            "@",
            "",
            "ABC234",
            "+1",
            "$$$$",
            "==",
            "é@ü.de",
        ]);
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            prop_oneof![
                Just(-1i64),
                Just(0),
                Just(1),
                Just(2),
                Just(16384),
                any::<i64>()
            ]
            .prop_map(Value::from),
            prop_oneof![Just(8.0f64), Just(1.5), Just(1e300), any::<f64>()].prop_map(Value::from),
            strings.prop_map(|s| Value::String(s.to_string())),
            ".{0,12}".prop_map(Value::String),
        ];
        leaf.prop_recursive(5, 64, 6, move |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                prop::collection::vec((names.clone(), inner), 0..6).prop_map(|entries| {
                    Value::Object(
                        entries
                            .into_iter()
                            .map(|(k, v)| (k.to_string(), v))
                            .collect(),
                    )
                }),
            ]
        })
    }

    fn cph(custom_password_hash: Value) -> Value {
        json!({
            "email": "jane.doe@contoso.com",
            "email_verified": true,
            "custom_password_hash": custom_password_hash
        })
    }

    /// The smallest importable record, to which each test adds the one field it is about.
    pub(crate) fn with(field: &str, value: Value) -> Value {
        let mut user = serde_json::json!({ "email": "jane.doe@example.com" });
        if let Some(map) = user.as_object_mut() {
            map.insert(field.to_string(), value);
        }
        user
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use serde_json::{json, Value};

    use super::testkit::{
        assert_clean, assert_finding, check, findings, near_miss_json, published_examples,
    };
    use super::*;

    #[test]
    fn path_renders_dotted_with_indices() {
        let root = Path::Root;
        let factors = root.key("mfa_factors");
        let first = factors.index(0);
        let totp = first.key("totp");
        assert_eq!(totp.key("secret").render(), "mfa_factors[0].totp.secret");
        assert_eq!(root.render(), "");
    }

    #[test]
    fn non_object_record_gets_one_invalid_type() {
        for user in [json!([]), json!("x"), json!(1), json!(null), json!(true)] {
            let found = findings(&user);
            assert_eq!(found, vec![(code::INVALID_TYPE.to_string(), String::new())]);
        }
    }

    #[test]
    fn messages_start_with_path() {
        let violations = check(&json!({ "email": "a@example.com", "blocked": "yes" }));
        assert_eq!(violations.len(), 1);
        assert!(violations[0].message.starts_with("blocked: "));
    }

    #[test]
    fn published_examples_pass() {
        for user in published_examples() {
            assert_clean(&user);
        }
    }

    #[test]
    fn all_problems_of_a_record_are_reported_together() {
        let user = json!({ "email_verified": "true", "nickname": 3 });
        let found = findings(&user);
        assert_finding(&user, code::OBJECT_REQUIRED, "email");
        assert_finding(&user, code::INVALID_TYPE, "email_verified");
        assert_finding(&user, code::INVALID_TYPE, "nickname");
        assert_eq!(found.len(), 3);
    }

    fn arbitrary_json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            any::<f64>().prop_map(Value::from),
            ".{0,24}".prop_map(Value::String),
        ];
        leaf.prop_recursive(4, 48, 8, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
                prop::collection::vec((".{0,8}", inner), 0..8)
                    .prop_map(|entries| Value::Object(entries.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #[test]
        fn check_user_never_panics_on_arbitrary_json(user in arbitrary_json()) {
            let _ = check(&user);
        }

        #[test]
        fn check_user_never_panics_on_near_miss_records(user in near_miss_json()) {
            let violations = check(&user);
            for v in violations {
                prop_assert!(!v.code.is_empty());
                let prefix = if v.path.is_empty() { "record" } else { v.path.as_str() };
                prop_assert!(v.message.starts_with(prefix), "{:?}", v);
            }
        }
    }
}
