//! Masks every secret in a user record with `*****`, so records can be written to reports and
//! logs: the whole rule is data here — `USER` (where Auth0's schema puts secrets, and which of its
//! fields are safe to show) and `SECRET_NAME_PARTS`/`SECRET_NAME_WORDS` (what a secret's name
//! looks like everywhere else, metadata included).

use serde_json::Value;

/// What Auth0 shows in place of a redacted value (facts §3).
const MASK: &str = "*****";

/// What a place in a user record holds, for redaction.
enum Field {
    /// A profile value, shown as it is (a scalar; should it be an object or an array, which
    /// Auth0 refuses anyway, its members are judged as `Free`).
    Safe,
    /// A secret: masked, whatever its type (`null` holds nothing and is left alone).
    Secret,
    /// An object with these members, each as the table says; any other member is `Free`.
    Object(&'static [(&'static str, Field)]),
    /// An array whose items are each this.
    Items(&'static Field),
    /// Free-form: a member whose name looks like a secret (`looks_secret`) is masked whole, and
    /// the others are judged the same way, at any depth.
    Free,
}

/// A user record, as Auth0's import schema lays it out (user-import.schema.json): the places
/// that hold a secret, the profile fields that are safe to show though their names may look
/// like secrets (`custom_password_hash`, its `password` and `hash` objects), and the free-form
/// metadata. A member named nowhere here is free-form.
const USER: Field = Field::Object(&[
    ("email", Field::Safe),
    ("email_verified", Field::Safe),
    ("phone_number", Field::Safe),
    ("phone_verified", Field::Safe),
    ("user_id", Field::Safe),
    ("username", Field::Safe),
    ("given_name", Field::Safe),
    ("family_name", Field::Safe),
    ("name", Field::Safe),
    ("nickname", Field::Safe),
    ("picture", Field::Safe),
    ("blocked", Field::Safe),
    ("password_hash", Field::Secret),
    (
        "custom_password_hash",
        Field::Object(&[
            ("algorithm", Field::Safe),
            (
                "hash",
                Field::Object(&[
                    ("value", Field::Secret),
                    ("encoding", Field::Safe),
                    ("digest", Field::Safe),
                    (
                        "key",
                        Field::Object(&[("value", Field::Secret), ("encoding", Field::Safe)]),
                    ),
                ]),
            ),
            (
                "salt",
                Field::Object(&[
                    ("value", Field::Secret),
                    ("encoding", Field::Safe),
                    ("position", Field::Safe),
                ]),
            ),
            ("password", Field::Object(&[("encoding", Field::Safe)])),
            ("keylen", Field::Safe),
            ("cost", Field::Safe),
            ("blockSize", Field::Safe),
            ("parallelization", Field::Safe),
        ]),
    ),
    (
        "mfa_factors",
        Field::Items(&Field::Object(&[
            ("totp", Field::Object(&[("secret", Field::Secret)])),
            ("phone", Field::Object(&[("value", Field::Safe)])),
            ("email", Field::Object(&[("value", Field::Safe)])),
        ])),
    ),
    ("app_metadata", Field::Free),
    ("user_metadata", Field::Free),
]);

/// A member name looks like a secret when, lower-cased with every character but letters and
/// digits taken out (`passwordHash`, `PASSWORD_HASH` and `password-hash` all read
/// `passwordhash`), it contains one of these. Each is long or odd enough not to occur inside an
/// everyday word; masking a harmless member of a rejected record costs little, showing a secret
/// does not.
const SECRET_NAME_PARTS: &[&str] = &[
    "password",
    "passwd",
    "passphrase",
    "pwd",
    "secret",
    "token",
    "salt",
    "hash",
    "credential",
    "apikey",
    "privatekey",
    "accesskey",
    "signingkey",
    "encryptionkey",
    "recoverycode",
];

/// Short names that look like a secret only as a whole word of the name (words split at
/// anything but a letter or digit and where a lower-case letter meets an upper-case one:
/// `api_key`, `apiKey`, `PIN`, `otp-seed`), since inside other words they are everywhere
/// (`keyboard`, `shipping`, `footprint`).
const SECRET_NAME_WORDS: &[&str] = &["key", "pin", "otp", "pass", "cvv", "mfa"];

/// Replaces every secret in a user record with "*****", as Auth0 does in job errors, so the
/// record can be shown in `rejects.ndjson`, reports and logs: the places `USER` marks secret
/// (`password_hash`, `custom_password_hash.hash.value`, `…hash.key.value`, `…salt.value`,
/// `mfa_factors[*].totp.secret`), and every other member, at any depth (metadata included),
/// whose name looks like a secret (`looks_secret`). Profile fields `USER` names are shown as
/// they are, whatever their names look like.
///
/// Any JSON is taken without panicking. A container of the wrong shape where `USER` expects one
/// that holds a secret (the legacy flat `"custom_password_hash": {"hash": "<hash>"}`, or
/// `"totp": "<secret>"`) is masked whole: it sits where a secret lives, so it may well be one.
pub fn redact_user(user: &mut Value) {
    // Only an object is a user record; anything else is searched as free-form.
    if user.is_object() {
        redact(user, &USER);
    } else {
        redact_free(user);
    }
}

fn redact(node: &mut Value, field: &Field) {
    match (field, node) {
        (_, Value::Null) => {}
        (Field::Secret, node) => mask(node),
        (Field::Object(members), Value::Object(map)) => {
            for (name, value) in map.iter_mut() {
                match members.iter().find(|(known, _)| *known == name.as_str()) {
                    Some((_, member)) => redact(value, member),
                    None => redact_free_member(name, value),
                }
            }
        }
        (Field::Items(item), Value::Array(items)) => {
            for value in items {
                redact(value, item);
            }
        }
        (Field::Object(_) | Field::Items(_), node) if holds_secret(field) => mask(node),
        (_, node) => redact_free(node),
    }
}

/// A free-form value: its members whose names look like secrets are masked, at any depth.
fn redact_free(node: &mut Value) {
    match node {
        Value::Object(map) => {
            for (name, value) in map.iter_mut() {
                redact_free_member(name, value);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(redact_free),
        _ => {}
    }
}

fn redact_free_member(name: &str, value: &mut Value) {
    if looks_secret(name) {
        if !value.is_null() {
            mask(value);
        }
    } else {
        redact_free(value);
    }
}

fn mask(node: &mut Value) {
    *node = Value::String(MASK.to_string());
}

/// Whether a secret lies somewhere under `field`.
fn holds_secret(field: &Field) -> bool {
    match field {
        Field::Secret => true,
        Field::Safe | Field::Free => false,
        Field::Object(members) => members.iter().any(|(_, member)| holds_secret(member)),
        Field::Items(item) => holds_secret(item),
    }
}

/// Whether a member's name looks like it holds a secret (`SECRET_NAME_PARTS`,
/// `SECRET_NAME_WORDS`).
pub fn looks_secret(name: &str) -> bool {
    has_secret_word(name.as_bytes()) || has_secret_part(name.as_bytes())
}

/// Whether a word of `name` is one of `SECRET_NAME_WORDS`, in any case. Words end at anything
/// but a letter or digit, where a lower-case letter meets an upper-case one (`apiKey`), and
/// before the last capital of a run followed by a lower-case letter (`PINCode`).
fn has_secret_word(name: &[u8]) -> bool {
    let is_word = |word: &[u8]| {
        SECRET_NAME_WORDS
            .iter()
            .any(|w| w.as_bytes().eq_ignore_ascii_case(word))
    };
    let mut start = 0;
    for (i, &b) in name.iter().enumerate() {
        if !b.is_ascii_alphanumeric() {
            if is_word(&name[start..i]) {
                return true;
            }
            start = i + 1;
            continue;
        }
        let before = if i > start { name[i - 1] } else { b' ' };
        let after = name.get(i + 1).copied().unwrap_or(b' ');
        let boundary = b.is_ascii_uppercase()
            && (before.is_ascii_lowercase()
                || (before.is_ascii_uppercase() && after.is_ascii_lowercase()));
        if boundary {
            if is_word(&name[start..i]) {
                return true;
            }
            start = i;
        }
    }
    is_word(&name[start..])
}

/// Whether `name`, lower-cased with all but letters and digits taken out, contains one of
/// `SECRET_NAME_PARTS`.
fn has_secret_part(name: &[u8]) -> bool {
    // Names are short: squashed on the stack, and only a long one in a buffer of its own.
    const ROOM: usize = 128;
    let squash = |out: &mut dyn FnMut(u8)| {
        for &b in name.iter().filter(|b| b.is_ascii_alphanumeric()) {
            out(b.to_ascii_lowercase());
        }
    };
    // Each position is tried against the parts starting with its letter only: a name is
    // judged with a few byte compares per letter, not a slice compare per part and position.
    let contains = |squashed: &[u8]| {
        (0..squashed.len()).any(|at| {
            let rest = &squashed[at..];
            SECRET_NAME_PARTS
                .iter()
                .any(|part| part.as_bytes()[0] == rest[0] && rest.starts_with(part.as_bytes()))
        })
    };
    if name.len() <= ROOM {
        let mut squashed = [0u8; ROOM];
        let mut len = 0;
        squash(&mut |b| {
            squashed[len] = b;
            len += 1;
        });
        contains(&squashed[..len])
    } else {
        let mut squashed = Vec::with_capacity(name.len());
        squash(&mut |b| squashed.push(b));
        contains(&squashed)
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use serde_json::json;

    use super::*;

    #[test]
    fn masks_every_listed_secret_and_nothing_else() {
        let mut user = json!({
            "email": "jane@example.com",
            "password_hash": "$2b$10$abc",
            "custom_password_hash": {
                "algorithm": "hmac",
                "hash": { "value": "h", "encoding": "hex", "digest": "sha256", "key": { "value": "k", "encoding": "utf8" } },
                "salt": { "value": "s", "position": "prefix" },
                "password": { "encoding": "utf16le" }
            },
            "mfa_factors": [
                { "totp": { "secret": "JBSWY3DP" } },
                { "phone": { "value": "+15551234567" } }
            ]
        });
        redact_user(&mut user);
        let cph = &user["custom_password_hash"];
        assert_eq!(user["password_hash"], MASK);
        assert_eq!(cph["hash"]["value"], MASK);
        assert_eq!(cph["hash"]["key"]["value"], MASK);
        assert_eq!(cph["salt"]["value"], MASK);
        assert_eq!(user["mfa_factors"][0]["totp"]["secret"], MASK);
        // Non-secrets survive, so the report still says what was wrong.
        assert_eq!(user["email"], "jane@example.com");
        assert_eq!(cph["algorithm"], "hmac");
        assert_eq!(cph["hash"]["encoding"], "hex");
        assert_eq!(cph["hash"]["key"]["encoding"], "utf8");
        assert_eq!(cph["salt"]["position"], "prefix");
        assert_eq!(cph["password"]["encoding"], "utf16le");
        assert_eq!(user["mfa_factors"][1]["phone"]["value"], "+15551234567");
    }

    #[test]
    fn members_named_like_secrets_are_masked_anywhere() {
        let mut user = json!({
            "email": "jane@example.com",
            "password": "hunter2",
            "app_metadata": {
                "plan": "gold",
                "legacy": { "passwordHash": "x", "Salt": "y", "api_key": ["z"], "keyboard": "uk" },
                "sessions": [{ "refresh_token": { "v": 1 }, "device": "phone" }],
                "PIN": 1234,
                "shipping": "express",
                "nothing": null,
                "client_secret": null
            },
            "user_metadata": { "apiKey": "k", "otp-seed": "s", "monkey": "m", "hashtags": ["#a"] },
            "identities": [{ "provider": "google-oauth2", "access_token": "ya29" }]
        });
        redact_user(&mut user);
        let app = &user["app_metadata"];
        assert_eq!(user["password"], MASK);
        assert_eq!(app["legacy"]["passwordHash"], MASK);
        assert_eq!(app["legacy"]["Salt"], MASK);
        assert_eq!(app["legacy"]["api_key"], MASK);
        assert_eq!(app["sessions"][0]["refresh_token"], MASK);
        assert_eq!(app["PIN"], MASK);
        assert_eq!(user["user_metadata"]["apiKey"], MASK);
        assert_eq!(user["user_metadata"]["otp-seed"], MASK);
        assert_eq!(user["identities"][0]["access_token"], MASK);
        // The name rule errs on the side of masking (`hashtags`), but words that merely hold
        // a short secret word are shown, and so is what holds nothing.
        assert_eq!(user["user_metadata"]["hashtags"], MASK);
        assert_eq!(app["legacy"]["keyboard"], "uk");
        assert_eq!(app["shipping"], "express");
        assert_eq!(user["user_metadata"]["monkey"], "m");
        assert_eq!(app["sessions"][0]["device"], "phone");
        assert_eq!(app["plan"], "gold");
        assert_eq!(app["nothing"], Value::Null);
        assert_eq!(app["client_secret"], Value::Null);
        assert_eq!(user["identities"][0]["provider"], "google-oauth2");
    }

    #[test]
    fn names_that_look_secret() {
        for name in [
            "password",
            "PASSWORD",
            "passwordHash",
            "password_hash",
            "user-password",
            "salt",
            "SALT_VALUE",
            "secret",
            "clientSecret",
            "token",
            "accessToken",
            "id_token",
            "api_key",
            "apiKey",
            "API-KEY",
            "x-api-key",
            "private_key",
            "pin",
            "pinCode",
            "totp_otp",
            "mfaSeed",
            "Credentials",
            "recovery_code",
            "pwd",
            "pass",
        ] {
            assert!(looks_secret(name), "{name}");
        }
        for name in [
            "email",
            "name",
            "keyboard",
            "monkey",
            "shipping",
            "spinner",
            "footprint",
            "passenger",
            "compass",
            "pinned",
            "plan",
            "",
            "_",
        ] {
            assert!(!looks_secret(name), "{name}");
        }
        // Long names are judged whole, a part split across the stack buffer's end included.
        let long = |at: usize, part: &str| format!("{}{part}{}", "a".repeat(at), "b".repeat(200));
        for at in [0, 100, 120, 125, 126, 127, 128, 129, 200, 400] {
            assert!(looks_secret(&long(at, "password")), "{at}");
            assert!(looks_secret(&long(at, "_key_")), "{at}");
            assert!(!looks_secret(&long(at, "keyboard")), "{at}");
        }
    }

    #[test]
    fn absent_secrets_are_not_invented() {
        let mut user =
            json!({ "email": "jane@example.com", "custom_password_hash": { "algorithm": "md5" } });
        let before = user.clone();
        redact_user(&mut user);
        assert_eq!(user, before);
    }

    #[test]
    fn non_string_secrets_and_misshapen_containers_are_masked() {
        let mut user = json!({
            "password_hash": 12345,
            "custom_password_hash": { "hash": "legacy-flat-hash", "salt": ["s"] },
            "mfa_factors": [{ "totp": "RAWSECRET" }, "junk", null]
        });
        redact_user(&mut user);
        assert_eq!(user["password_hash"], MASK);
        assert_eq!(user["custom_password_hash"]["hash"], MASK);
        assert_eq!(user["custom_password_hash"]["salt"], MASK);
        assert_eq!(user["mfa_factors"][0]["totp"], MASK);
        assert_eq!(user["mfa_factors"][1], MASK);
        assert_eq!(user["mfa_factors"][2], Value::Null);
        // A misshapen container with no secret in its place is judged as free-form.
        let mut user =
            json!({ "email": { "password": "p", "x": 1 }, "mfa_factors": [{ "phone": ["+1"] }] });
        redact_user(&mut user);
        assert_eq!(
            user,
            json!({ "email": { "password": MASK, "x": 1 }, "mfa_factors": [{ "phone": ["+1"] }] })
        );
    }

    #[test]
    fn records_that_are_not_objects_are_searched_too() {
        for mut user in [json!("x"), json!([1, 2]), json!(null), json!(3)] {
            let before = user.clone();
            redact_user(&mut user);
            assert_eq!(user, before);
        }
        let mut user = json!([{ "email": "a@example.com", "password": "p" }]);
        redact_user(&mut user);
        assert_eq!(
            user,
            json!([{ "email": "a@example.com", "password": MASK }])
        );
    }

    /// A secret-ish value: a random string (long enough that it cannot occur by chance in the
    /// rest of the record), or a non-string value that carries a random marker.
    fn secret() -> impl Strategy<Value = (String, Value)> {
        "[A-Za-z0-9+/=$.]{16,40}".prop_flat_map(|marker| {
            let as_string = Value::String(marker.clone());
            let as_array = json!([marker.clone()]);
            let as_object = json!({ "nested": marker.clone() });
            (
                Just(marker),
                prop_oneof![Just(as_string), Just(as_array), Just(as_object)],
            )
        })
    }

    proptest! {
        #[test]
        fn redaction_removes_every_secret(
            password_hash in secret(),
            hash in secret(),
            key in secret(),
            salt in secret(),
            totps in prop::collection::vec(secret(), 0..4),
            include in prop::collection::vec(any::<bool>(), 5),
        ) {
            let mut user = json!({ "email": "jane@example.com", "custom_password_hash": { "algorithm": "hmac", "hash": {} } });
            let mut markers = Vec::new();
            if include[0] {
                user["password_hash"] = password_hash.1;
                markers.push(password_hash.0);
            }
            if include[1] {
                user["custom_password_hash"]["hash"]["value"] = hash.1;
                markers.push(hash.0);
            }
            if include[2] {
                user["custom_password_hash"]["hash"]["key"] = json!({ "value": key.1, "encoding": "utf8" });
                markers.push(key.0);
            }
            if include[3] {
                user["custom_password_hash"]["salt"] = json!({ "value": salt.1 });
                markers.push(salt.0);
            }
            if include[4] {
                let mut factors = vec![json!({ "phone": { "value": "+15551234567" } })];
                for (marker, value) in totps {
                    factors.push(json!({ "totp": { "secret": value } }));
                    markers.push(marker);
                }
                user["mfa_factors"] = Value::Array(factors);
            }
            redact_user(&mut user);
            let serialized = serde_json::to_string(&user).unwrap();
            for marker in &markers {
                prop_assert!(!serialized.contains(marker.as_str()), "{marker} survived in {serialized}");
            }
            prop_assert!(serialized.contains("jane@example.com"));
        }

        /// Wherever a member whose name looks like a secret sits (in metadata, in a member
        /// the schema does not name, in arrays, at any depth), its value does not survive;
        /// and every profile field keeps its value, whatever it holds.
        #[test]
        fn no_value_under_a_secret_name_survives_and_profile_fields_are_kept(
            placed in prop::collection::vec((secret_name(), secret(), any_json(), prop::collection::vec(0usize..8, 0..4)), 1..5),
            profile in prop::collection::vec((prop::sample::select(PROFILE_FIELDS.to_vec()), profile_value()), 0..6),
        ) {
            let mut user = json!({ "app_metadata": {}, "user_metadata": {} });
            for (field, value) in &profile {
                user[*field] = value.clone();
            }
            let mut markers = Vec::new();
            for (i, (name, (marker, value), around, route)) in placed.into_iter().enumerate() {
                // The secret, wrapped in objects and arrays on the way down from where it goes:
                // metadata, or a member the schema does not name.
                let mut placed = json!({ name: value, "around": around });
                for (depth, step) in route.iter().enumerate().skip(1).rev() {
                    let nested = format!("n{depth}{step}");
                    placed = if step % 2 == 0 {
                        json!({ nested: [placed] })
                    } else {
                        json!({ nested: placed })
                    };
                }
                let home = match route.first().copied().unwrap_or(0) % 3 {
                    0 => "app_metadata",
                    1 => "user_metadata",
                    _ => "extra",
                };
                if home == "extra" {
                    user[format!("extra{i}")] = placed;
                } else {
                    user[home][format!("placed{i}")] = placed;
                }
                markers.push(marker);
            }
            let before = user.clone();
            redact_user(&mut user);
            let serialized = serde_json::to_string(&user).unwrap();
            for marker in &markers {
                prop_assert!(!serialized.contains(marker.as_str()), "{marker} survived in {serialized}");
            }
            for (field, _) in &profile {
                prop_assert_eq!(&user[*field], &before[*field], "{}", field);
            }
        }

        #[test]
        fn redaction_never_panics(user in any_json()) {
            let mut user = user;
            redact_user(&mut user);
        }
    }

    /// The schema's profile fields: scalars shown as they are.
    const PROFILE_FIELDS: &[&str] = &[
        "email",
        "email_verified",
        "phone_number",
        "phone_verified",
        "user_id",
        "username",
        "given_name",
        "family_name",
        "name",
        "nickname",
        "picture",
        "blocked",
    ];

    /// A profile field's value: any scalar, strings that look like secrets included.
    fn profile_value() -> impl Strategy<Value = Value> {
        prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            ".{0,12}".prop_map(Value::String),
            "[A-Za-z0-9+/=$.]{16,40}".prop_map(Value::String),
        ]
    }

    /// A name that looks like a secret: one of the parts inside any letters, in any case; or
    /// one of the words, in lower, upper or title case, set apart from what is around it by a
    /// separator or a change of case.
    fn secret_name() -> impl Strategy<Value = String> {
        let part = (
            prop::sample::select(SECRET_NAME_PARTS.to_vec()),
            "[a-zA-Z0-9]{0,6}",
            "[a-zA-Z0-9_]{0,6}",
            any::<bool>(),
        )
            .prop_map(|(part, pre, post, upper)| {
                let part = if upper {
                    part.to_uppercase()
                } else {
                    part.to_string()
                };
                format!("{pre}{part}{post}")
            });
        let word = (
            prop::sample::select(SECRET_NAME_WORDS.to_vec()),
            prop::sample::select(vec!["", "x_", "my-", "legacy.", "user"]),
            prop::sample::select(vec!["", "_1", "-code", ".v", "Code"]),
            0..3u8,
        )
            .prop_map(|(word, pre, post, case)| {
                let title = |w: &str| w[..1].to_uppercase() + &w[1..];
                // Glued to letters on either side, the word is set apart by its case.
                let case = match (pre, post, case) {
                    ("user", "Code", _) => 2,
                    ("user", _, 0) => 2,
                    _ => case,
                };
                let word = match case {
                    0 => word.to_string(),
                    1 => word.to_uppercase(),
                    _ => title(word),
                };
                format!("{pre}{word}{post}")
            });
        prop_oneof![part, word]
    }

    fn any_json() -> impl Strategy<Value = Value> {
        let names = prop::sample::select(vec![
            "password_hash",
            "custom_password_hash",
            "hash",
            "value",
            "key",
            "salt",
            "mfa_factors",
            "totp",
            "secret",
            "email",
            "app_metadata",
            "user_metadata",
            "password",
        ]);
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            ".{0,8}".prop_map(Value::String),
        ];
        leaf.prop_recursive(5, 48, 5, move |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                prop::collection::vec((names.clone(), inner), 0..5).prop_map(|entries| {
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
}
