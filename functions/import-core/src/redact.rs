//! Masks every secret in a user record with `*****`, as Auth0 does in job errors, so records can
//! be written to reports and logs; the secret locations are one table, `SECRET_PATHS`.

use serde_json::Value;

/// What Auth0 shows in place of a redacted value (facts §3).
const MASK: &str = "*****";

/// One step from a JSON node to the next on the way to a secret.
enum Step {
    Key(&'static str),
    EachItem,
}

/// Every place a user record carries a secret.
const SECRET_PATHS: &[&[Step]] = &[
    &[Step::Key("password_hash")],
    &[
        Step::Key("custom_password_hash"),
        Step::Key("hash"),
        Step::Key("value"),
    ],
    &[
        Step::Key("custom_password_hash"),
        Step::Key("hash"),
        Step::Key("key"),
        Step::Key("value"),
    ],
    &[
        Step::Key("custom_password_hash"),
        Step::Key("salt"),
        Step::Key("value"),
    ],
    &[
        Step::Key("mfa_factors"),
        Step::EachItem,
        Step::Key("totp"),
        Step::Key("secret"),
    ],
];

/// Replace every secret value in a user record with "*****" (as Auth0 does in job errors):
/// password_hash, custom_password_hash.hash.value, custom_password_hash.hash.key.value,
/// custom_password_hash.salt.value, mfa_factors[*].totp.secret. Works on any JSON shape without panicking
/// (only replaces when the value is present; leaves non-string values replaced too, since a secret is a secret).
///
/// A container on the way to a secret that has the wrong shape (for example the legacy flat form
/// `"custom_password_hash": {"hash": "<hash string>"}`, or `"totp": "<secret>"`) is masked whole:
/// it sits where a secret lives, so it may well be one. `null` holds nothing and is left alone, and
/// a record that is not an object is left as it is.
pub fn redact_user(user: &mut serde_json::Value) {
    if !user.is_object() {
        return;
    }
    for path in SECRET_PATHS {
        redact_along(user, path, true);
    }
}

fn redact_along(node: &mut Value, steps: &[Step], is_record: bool) {
    let Some((step, rest)) = steps.split_first() else {
        *node = Value::String(MASK.to_string());
        return;
    };
    match (step, node) {
        (Step::Key(key), Value::Object(map)) => {
            if let Some(child) = map.get_mut(*key) {
                redact_along(child, rest, false);
            }
        }
        (Step::EachItem, Value::Array(items)) => {
            for item in items {
                redact_along(item, rest, false);
            }
        }
        (_, Value::Null) => {}
        (_, other) => {
            if !is_record {
                *other = Value::String(MASK.to_string());
            }
        }
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
                "salt": { "value": "s", "position": "prefix" }
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
        assert_eq!(user["mfa_factors"][1]["phone"]["value"], "+15551234567");
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
    }

    #[test]
    fn non_object_records_are_left_alone() {
        for mut user in [json!("x"), json!([1, 2]), json!(null), json!(3)] {
            let before = user.clone();
            redact_user(&mut user);
            assert_eq!(user, before);
        }
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

        #[test]
        fn redaction_never_panics(user in any_json()) {
            let mut user = user;
            redact_user(&mut user);
        }
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
