//! Auth0's published per-user schema (`definitions.user`, facts §4.2–4.7) as Rust data, and the
//! walker that applies it with z-schema's codes; a test cross-checks the data against the JSON file.

use sonic_rs::JsonType;

use super::node::{ArrayNode, Node, ObjectNode};
use super::{code, email, violation, Path};
use crate::compact;
use crate::violation::Violation;

/// The JSON type (and, for strings, the constraints) a property must have.
pub(crate) enum Kind {
    Boolean,
    Integer,
    String(StringRule),
    Object(&'static ObjectShape),
    Array(&'static ArrayShape),
}

/// `enumeration` empty means any string.
pub(crate) struct StringRule {
    pub(crate) enumeration: &'static [&'static str],
    pub(crate) pattern: Option<Pattern>,
    pub(crate) format: Option<Format>,
}

pub(crate) struct Property {
    pub(crate) name: &'static str,
    pub(crate) kind: Kind,
}

pub(crate) struct ObjectShape {
    pub(crate) properties: &'static [Property],
    pub(crate) required: &'static [&'static str],
    pub(crate) additional_properties: bool,
    pub(crate) max_properties: Option<usize>,
}

impl ObjectShape {
    /// Metadata's shape: no properties of its own, any others allowed, none required.
    pub(crate) fn is_free_form(&self) -> bool {
        self.properties.is_empty() && self.additional_properties && self.required.is_empty()
    }
}

pub(crate) struct ArrayShape {
    pub(crate) items: &'static ObjectShape,
    pub(crate) min_items: usize,
    pub(crate) max_items: usize,
}

/// The schema's `pattern`s, hand-matched (no regex crate: this runs on millions of records).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Pattern {
    /// Unpadded upper-case Base32, the TOTP secret alphabet.
    Base32Upper,
    /// E.164 phone number.
    E164,
}

impl Pattern {
    /// The schema's regex text, used in messages and compared with the JSON file by a test.
    pub(crate) fn source(self) -> &'static str {
        match self {
            Pattern::Base32Upper => "^[A-Z2-7]+$",
            Pattern::E164 => "^\\+[0-9]{1,15}$",
        }
    }

    pub(crate) fn matches(self, s: &str) -> bool {
        match self {
            Pattern::Base32Upper => {
                !s.is_empty()
                    && s.bytes()
                        .all(|b| b.is_ascii_uppercase() || (b'2'..=b'7').contains(&b))
            }
            Pattern::E164 => s.strip_prefix('+').is_some_and(|digits| {
                (1..=15).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit())
            }),
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Format {
    Email,
}

impl Format {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Format::Email => "email",
        }
    }
}

// The schema's enum lists, shared with the per-algorithm table in `hash`.
pub(crate) const ALGORITHMS: &[&str] = &[
    "argon2", "bcrypt", "hmac", "ldap", "md4", "md5", "sha1", "sha256", "sha512", "pbkdf2",
    "scrypt",
];
pub(crate) const VALUE_ENCODINGS: &[&str] = &["base64", "hex", "utf8"];
pub(crate) const HMAC_DIGESTS: &[&str] = &[
    "md4",
    "md5",
    "ripemd160",
    "sha1",
    "sha224",
    "sha256",
    "sha384",
    "sha512",
    "whirlpool",
];
pub(crate) const SALT_POSITIONS: &[&str] = &["prefix", "suffix"];
pub(crate) const PASSWORD_ENCODINGS: &[&str] =
    &["ascii", "utf8", "utf16le", "ucs2", "latin1", "binary"];

const ANY_STRING: Kind = Kind::String(StringRule {
    enumeration: &[],
    pattern: None,
    format: None,
});

const fn one_of(values: &'static [&'static str]) -> Kind {
    Kind::String(StringRule {
        enumeration: values,
        pattern: None,
        format: None,
    })
}

const fn prop(name: &'static str, kind: Kind) -> Property {
    Property { name, kind }
}

/// A free-form object (`app_metadata`, `user_metadata`): any keys, any values.
static FREE_OBJECT: ObjectShape = ObjectShape {
    properties: &[],
    required: &[],
    additional_properties: true,
    max_properties: None,
};

static HASH_KEY: ObjectShape = ObjectShape {
    properties: &[
        prop("value", ANY_STRING),
        prop("encoding", one_of(VALUE_ENCODINGS)),
    ],
    required: &["value"],
    additional_properties: true,
    max_properties: None,
};

/// The published schema puts no `required`/`additionalProperties` on `hash`; the per-algorithm
/// rules in `hash.rs` add what each algorithm needs.
static HASH: ObjectShape = ObjectShape {
    properties: &[
        prop("value", ANY_STRING),
        prop("encoding", one_of(VALUE_ENCODINGS)),
        prop("digest", one_of(HMAC_DIGESTS)),
        prop("key", Kind::Object(&HASH_KEY)),
    ],
    required: &[],
    additional_properties: true,
    max_properties: None,
};

static SALT: ObjectShape = ObjectShape {
    properties: &[
        prop("value", ANY_STRING),
        prop("encoding", one_of(VALUE_ENCODINGS)),
        prop("position", one_of(SALT_POSITIONS)),
    ],
    required: &["value"],
    additional_properties: true,
    max_properties: None,
};

static PASSWORD: ObjectShape = ObjectShape {
    properties: &[prop("encoding", one_of(PASSWORD_ENCODINGS))],
    required: &[],
    additional_properties: true,
    max_properties: None,
};

static CUSTOM_PASSWORD_HASH: ObjectShape = ObjectShape {
    properties: &[
        prop("algorithm", one_of(ALGORITHMS)),
        prop("hash", Kind::Object(&HASH)),
        prop("salt", Kind::Object(&SALT)),
        prop("password", Kind::Object(&PASSWORD)),
        prop("keylen", Kind::Integer),
        prop("cost", Kind::Integer),
        prop("blockSize", Kind::Integer),
        prop("parallelization", Kind::Integer),
    ],
    required: &["algorithm", "hash"],
    additional_properties: false,
    max_properties: None,
};

static TOTP: ObjectShape = ObjectShape {
    properties: &[prop(
        "secret",
        Kind::String(StringRule {
            enumeration: &[],
            pattern: Some(Pattern::Base32Upper),
            format: None,
        }),
    )],
    required: &["secret"],
    additional_properties: false,
    max_properties: None,
};

static PHONE_FACTOR: ObjectShape = ObjectShape {
    properties: &[prop(
        "value",
        Kind::String(StringRule {
            enumeration: &[],
            pattern: Some(Pattern::E164),
            format: None,
        }),
    )],
    required: &["value"],
    additional_properties: false,
    max_properties: None,
};

static EMAIL_FACTOR: ObjectShape = ObjectShape {
    properties: &[prop(
        "value",
        Kind::String(StringRule {
            enumeration: &[],
            pattern: None,
            format: Some(Format::Email),
        }),
    )],
    required: &["value"],
    additional_properties: false,
    max_properties: None,
};

/// One MFA enrollment. `maxProperties: 1` is the schema's "exactly one of"; the schema lets `{}`
/// through, which `mfa::check_factor_not_empty` closes.
pub(crate) static MFA_FACTOR: ObjectShape = ObjectShape {
    properties: &[
        prop("totp", Kind::Object(&TOTP)),
        prop("phone", Kind::Object(&PHONE_FACTOR)),
        prop("email", Kind::Object(&EMAIL_FACTOR)),
    ],
    required: &[],
    additional_properties: false,
    max_properties: Some(1),
};

static MFA_FACTORS: ArrayShape = ArrayShape {
    items: &MFA_FACTOR,
    min_items: 1,
    max_items: 10,
};

/// `definitions.user`.
pub(crate) static USER: ObjectShape = ObjectShape {
    properties: &[
        prop(
            "email",
            Kind::String(StringRule {
                enumeration: &[],
                pattern: None,
                format: Some(Format::Email),
            }),
        ),
        prop("email_verified", Kind::Boolean),
        prop("phone_number", ANY_STRING),
        prop("phone_verified", Kind::Boolean),
        prop("user_id", ANY_STRING),
        prop("username", ANY_STRING),
        prop("given_name", ANY_STRING),
        prop("family_name", ANY_STRING),
        prop("name", ANY_STRING),
        prop("nickname", ANY_STRING),
        prop("picture", ANY_STRING),
        prop("blocked", Kind::Boolean),
        prop("password_hash", ANY_STRING),
        prop("custom_password_hash", Kind::Object(&CUSTOM_PASSWORD_HASH)),
        prop("app_metadata", Kind::Object(&FREE_OBJECT)),
        prop("user_metadata", Kind::Object(&FREE_OBJECT)),
        prop("mfa_factors", Kind::Array(&MFA_FACTORS)),
    ],
    required: &["email"],
    additional_properties: false,
    max_properties: None,
};

pub(crate) static USER_KIND: Kind = Kind::Object(&USER);

/// `USER`'s properties by name, for the text pass, which looks up every top-level key of every
/// record: an open-addressing table built from the list at compile time, so a lookup is one hash
/// and (nearly always) one compare, where a scan of the list compares up to seventeen names.
pub(crate) static USER_INDEX: PropertyIndex = PropertyIndex::of(USER.properties);

const fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let mut i = 0;
    while i < a.len() {
        if a[i] != b[i] {
            return false;
        }
        i += 1;
    }
    true
}

pub(crate) struct PropertyIndex {
    properties: &'static [Property],
    /// Index + 1 of the property hashed to each slot (or past it, probing on); 0 for none.
    slots: [u8; PropertyIndex::SLOTS],
}

impl PropertyIndex {
    /// Four times the properties an index may hold (and a power of two): probes stay short.
    const SLOTS: usize = 128;

    const fn slot(name: &[u8]) -> usize {
        let (first, last) = match name {
            [] => (0, 0),
            [first, .., last] => (*first, *last),
            [only] => (*only, *only),
        };
        (name.len() * 31 + first as usize * 7 + last as usize) % Self::SLOTS
    }

    const fn of(properties: &'static [Property]) -> PropertyIndex {
        assert!(properties.len() * 4 <= Self::SLOTS);
        let mut slots = [0u8; Self::SLOTS];
        let mut i = 0;
        while i < properties.len() {
            let mut at = Self::slot(properties[i].name.as_bytes());
            while slots[at] != 0 {
                at = (at + 1) % Self::SLOTS;
            }
            slots[at] = i as u8 + 1;
            i += 1;
        }
        PropertyIndex { properties, slots }
    }

    /// The position of property `name` in the list, at compile time (which fails without it).
    pub(crate) const fn position(&self, name: &str) -> usize {
        let mut i = 0;
        while i < self.properties.len() {
            if same_bytes(self.properties[i].name.as_bytes(), name.as_bytes()) {
                return i;
            }
            i += 1;
        }
        panic!("no such property")
    }

    /// The position of property `name` in the list.
    #[inline]
    pub(crate) fn get(&self, name: &str) -> Option<usize> {
        let mut at = Self::slot(name.as_bytes());
        loop {
            let index = usize::from(self.slots[at]).checked_sub(1)?;
            if self.properties[index].name == name {
                return Some(index);
            }
            at = (at + 1) % Self::SLOTS;
        }
    }
}

/// JSON Schema integer semantics as Auth0 applies them: Auth0 parses the file with JavaScript's
/// `JSON.parse`, where `8.0` and `8` are the same number, and z-schema classifies numbers by
/// value (`n % 1 === 0`). So `8.0` is accepted as an integer and `1.5` is not.
pub(crate) fn is_integer<'a>(value: impl Node<'a>) -> bool {
    value.is_i64()
        || value.is_u64()
        || (value.is_number()
            && value
                .as_f64()
                .is_some_and(|f| f.is_finite() && f.fract() == 0.0))
}

/// z-schema's type names, for "Expected type X but found type Y".
fn type_name<'a>(value: impl Node<'a>) -> &'static str {
    match value.json_type() {
        JsonType::Null => "null",
        JsonType::Boolean => "boolean",
        JsonType::Number if is_integer(value) => "integer",
        JsonType::Number => "number",
        JsonType::String => "string",
        JsonType::Array => "array",
        JsonType::Object => "object",
    }
}

pub(crate) fn find_property<'s>(shape: &'s ObjectShape, name: &str) -> Option<&'s Property> {
    // The first byte rules out nearly every other name before any string comparison.
    let first = name.as_bytes().first();
    shape
        .properties
        .iter()
        .find(|p| p.name.as_bytes().first() == first && p.name == name)
}

/// Applies `kind` to `value`, appending every violation found (it does not stop at the first).
pub(crate) fn check_value<'a>(
    kind: &Kind,
    value: impl Node<'a>,
    path: &Path<'_>,
    out: &mut Vec<Violation>,
) {
    let expected = match kind {
        Kind::Boolean if value.is_boolean() => return,
        Kind::Boolean => "boolean",
        Kind::Integer if is_integer(value) => return,
        Kind::Integer => "integer",
        Kind::String(rule) => match value.as_str() {
            Some(s) => return check_string(rule, s, path, out),
            None => "string",
        },
        Kind::Object(shape) => match value.as_object() {
            Some(map) => return check_object(shape, map, path, out),
            None => "object",
        },
        Kind::Array(shape) => match value.as_array() {
            Some(items) => return check_array(shape, items, path, out),
            None => "array",
        },
    };
    out.push(violation(
        code::INVALID_TYPE,
        path,
        format_args!(
            "Expected type {expected} but found type {}",
            type_name(value)
        ),
    ));
}

pub(crate) fn check_string(rule: &StringRule, s: &str, path: &Path<'_>, out: &mut Vec<Violation>) {
    // The offending value is never echoed: enum fields sit next to secrets, and a misplaced
    // hash in `encoding` would otherwise end up in a report.
    if !rule.enumeration.is_empty() && !rule.enumeration.contains(&s) {
        out.push(violation(
            code::ENUM_MISMATCH,
            path,
            format_args!(
                "No enum match: must be one of {}",
                rule.enumeration.join(", ")
            ),
        ));
    }
    if let Some(pattern) = rule.pattern {
        if !pattern.matches(s) {
            out.push(violation(
                code::PATTERN,
                path,
                format_args!("String does not match pattern {}", pattern.source()),
            ));
        }
    }
    if let Some(format) = rule.format {
        let verdict = match format {
            Format::Email => email::check_email(s),
        };
        if let Err(problem) = verdict {
            out.push(violation(
                code::INVALID_FORMAT,
                path,
                format_args!(
                    "Object didn't pass validation for format {}: {problem}",
                    format.name()
                ),
            ));
        }
    }
}

fn check_object<'a>(
    shape: &ObjectShape,
    map: impl ObjectNode<'a>,
    path: &Path<'_>,
    out: &mut Vec<Violation>,
) {
    if let Some(max) = shape.max_properties {
        if map.len() > max {
            out.push(violation(
                code::OBJECT_PROPERTIES_MAXIMUM,
                path,
                format_args!(
                    "Too many properties defined ({}), maximum {max}; split them into separate items",
                    map.len()
                ),
            ));
        }
    }
    // A free-form object has nothing more to check, and is read for its key names only, which
    // repeats do not change.
    if shape.is_free_form() {
        return;
    }
    // Only a value parsed from text as written can repeat a key (every copy is kept there;
    // Auth0's `JSON.parse` keeps the last).
    if let Some(key) = compact::repeated_key(map) {
        out.push(violation(
            code::REPEATED_KEY,
            &path.key(key),
            format_args!(
                "{key} appears more than once in this object; JSON.parse keeps only the last copy"
            ),
        ));
    }
    for (key, value) in map.members() {
        let child = path.key(key);
        match find_property(shape, key) {
            Some(property) => check_value(&property.kind, value, &child, out),
            None if shape.additional_properties => {}
            None => out.push(violation(
                code::OBJECT_ADDITIONAL_PROPERTIES,
                &child,
                format_args!(
                    "Additional properties not allowed: {key} (allowed: {}; names are case-sensitive)",
                    AllowedNames(shape)
                ),
            )),
        }
    }
    for name in shape.required {
        if !map.contains_key(name) {
            out.push(violation(
                code::OBJECT_REQUIRED,
                &path.key(name),
                format_args!("Missing required property: {name}"),
            ));
        }
    }
}

fn check_array<'a>(
    shape: &ArrayShape,
    items: impl ArrayNode<'a>,
    path: &Path<'_>,
    out: &mut Vec<Violation>,
) {
    if items.len() < shape.min_items {
        out.push(violation(
            code::ARRAY_LENGTH_SHORT,
            path,
            format_args!(
                "Array is too short ({}), minimum {}; omit the property instead of sending an empty array",
                items.len(),
                shape.min_items
            ),
        ));
    }
    if items.len() > shape.max_items {
        out.push(violation(
            code::ARRAY_LENGTH_LONG,
            path,
            format_args!(
                "Array is too long ({}), maximum {}",
                items.len(),
                shape.max_items
            ),
        ));
    }
    let item_kind = Kind::Object(shape.items);
    for (index, item) in items.items().enumerate() {
        check_value(&item_kind, item, &path.index(index), out);
    }
}

/// Lists a shape's property names in a message without collecting them into a Vec first.
struct AllowedNames<'s>(&'s ObjectShape);

impl std::fmt::Display for AllowedNames<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, property) in self.0.properties.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            f.write_str(property.name)?;
        }
        Ok(())
    }
}

/// Renders a kind as the JSON Schema `type` keyword, for the cross-check test and debugging.
#[cfg(test)]
fn json_type(kind: &Kind) -> &'static str {
    match kind {
        Kind::Boolean => "boolean",
        Kind::Integer => "integer",
        Kind::String(_) => "string",
        Kind::Object(_) => "object",
        Kind::Array(_) => "array",
    }
}

/// Formats a path for assertion messages in the cross-check test.
#[cfg(test)]
fn describe(path: &[&str]) -> String {
    path.join(".")
}

#[cfg(test)]
mod tests {
    use serde_json::{json, Value};

    use super::super::testkit::{assert_clean, assert_finding, findings, with};
    use super::*;

    const PUBLISHED_SCHEMA: &str = include_str!("../../schema/user-import.schema.json");

    #[test]
    fn the_property_index_finds_each_property_and_nothing_else() {
        for (i, property) in USER.properties.iter().enumerate() {
            assert_eq!(USER_INDEX.get(property.name), Some(i), "{}", property.name);
            // The same first and last bytes and length, another name: found by comparing.
            let mut other = property.name.as_bytes().to_vec();
            let middle = other.len() / 2;
            other[middle] ^= 0x01;
            let other = String::from_utf8(other).unwrap();
            if USER.properties.iter().all(|p| p.name != other) {
                assert_eq!(USER_INDEX.get(&other), None, "{other}");
            }
        }
        for name in [
            "",
            "e",
            "Email",
            "email ",
            "created_at",
            "custom_password_hashes",
            "é",
        ] {
            assert_eq!(USER_INDEX.get(name), None, "{name:?}");
        }
    }

    #[test]
    fn repeated_key_is_found_where_values_are_read_by_key_only() {
        // Only a value parsed from text as written can repeat a key (serde_json's maps cannot).
        let check = |text: &str| -> Vec<(String, String)> {
            super::super::check_user(&sonic_rs::from_str(text).unwrap())
                .into_iter()
                .map(|v| (v.code, v.path))
                .collect()
        };
        assert_eq!(
            check(r#"{"email":"a@example.com","name":"A","email":"b@example.com"}"#),
            vec![(code::REPEATED_KEY.to_string(), "email".to_string())]
        );
        // (The item also counts two factors: that is the schema's maxProperties speaking.)
        assert!(check(
            r#"{"email":"a@example.com","mfa_factors":[{"totp":{"secret":"ABC234"},"totp":{"secret":"ABC234"}}]}"#
        )
        .contains(&(
            code::REPEATED_KEY.to_string(),
            "mfa_factors[0].totp".to_string()
        )));
        // Free-form metadata is read for its key names, which a repeat does not change.
        assert!(
            check(r#"{"email":"a@example.com","user_metadata":{"x":1,"x":{"y":1,"y":2}}}"#)
                .is_empty()
        );
    }

    /// Compares our data with the published schema node by node, so a field Auth0 adds, removes
    /// or retypes makes this test fail and points at the place to update.
    #[test]
    fn data_matches_published_schema() {
        let schema: Value = serde_json::from_str(PUBLISHED_SCHEMA).unwrap();
        let user = &schema["definitions"]["user"];
        assert!(
            user.is_object(),
            "definitions.user missing from the schema file"
        );
        compare_object(&USER, user, &mut vec!["user"]);
    }

    fn compare_kind(kind: &Kind, node: &Value, at: &mut Vec<&'static str>) {
        let here = describe(at);
        assert_eq!(node["type"], json!(json_type(kind)), "type of {here}");
        match kind {
            Kind::String(rule) => {
                let expected_enum: Vec<&str> = node
                    .get("enum")
                    .and_then(Value::as_array)
                    .map(|values| values.iter().map(|v| v.as_str().unwrap()).collect())
                    .unwrap_or_default();
                assert_eq!(rule.enumeration, expected_enum.as_slice(), "enum of {here}");
                assert_eq!(
                    rule.pattern.map(Pattern::source),
                    node.get("pattern").and_then(Value::as_str),
                    "pattern of {here}"
                );
                assert_eq!(
                    rule.format.map(Format::name),
                    node.get("format").and_then(Value::as_str),
                    "format of {here}"
                );
            }
            Kind::Object(shape) => compare_object(shape, node, at),
            Kind::Array(shape) => {
                assert_eq!(
                    node["minItems"],
                    json!(shape.min_items),
                    "minItems of {here}"
                );
                assert_eq!(
                    node["maxItems"],
                    json!(shape.max_items),
                    "maxItems of {here}"
                );
                at.push("items");
                compare_kind(&Kind::Object(shape.items), &node["items"], at);
                at.pop();
            }
            Kind::Boolean | Kind::Integer => {}
        }
        // Keywords we do not implement must not appear: a new one would silently go unchecked.
        let known = [
            "type",
            "enum",
            "pattern",
            "format",
            "properties",
            "required",
            "additionalProperties",
            "maxProperties",
            "items",
            "minItems",
            "maxItems",
            "description",
            "default",
        ];
        for keyword in node.as_object().unwrap().keys() {
            assert!(
                known.contains(&keyword.as_str()),
                "unhandled keyword {keyword} at {here}"
            );
        }
    }

    fn compare_object(shape: &ObjectShape, node: &Value, at: &mut Vec<&'static str>) {
        let here = describe(at);
        let published: &serde_json::Map<String, Value> = match node.get("properties") {
            Some(p) => p.as_object().unwrap(),
            None => &serde_json::Map::new(),
        };
        let ours: Vec<&str> = shape.properties.iter().map(|p| p.name).collect();
        let theirs: Vec<&str> = published.keys().map(String::as_str).collect();
        assert_eq!(ours, theirs, "property names of {here}");
        for property in shape.properties {
            at.push(property.name);
            compare_kind(&property.kind, &published[property.name], at);
            at.pop();
        }
        let required: Vec<&str> = node
            .get("required")
            .and_then(Value::as_array)
            .map(|r| r.iter().map(|v| v.as_str().unwrap()).collect())
            .unwrap_or_default();
        assert_eq!(shape.required, required.as_slice(), "required of {here}");
        let additional = node
            .get("additionalProperties")
            .map(|v| v.as_bool().unwrap())
            .unwrap_or(true);
        assert_eq!(
            shape.additional_properties, additional,
            "additionalProperties of {here}"
        );
        assert_eq!(
            shape.max_properties.map(|m| m as u64),
            node.get("maxProperties").and_then(Value::as_u64),
            "maxProperties of {here}"
        );
    }

    #[test]
    fn cross_check_catches_an_added_field() {
        // The cross-check itself must be able to fail: feed it a schema with one extra field.
        let mut schema: Value = serde_json::from_str(PUBLISHED_SCHEMA).unwrap();
        schema["definitions"]["user"]["properties"]["locale"] = json!({ "type": "string" });
        let outcome = std::panic::catch_unwind(|| {
            compare_object(&USER, &schema["definitions"]["user"], &mut vec!["user"])
        });
        assert!(outcome.is_err());
    }

    #[test]
    fn email_is_required() {
        assert_clean(&json!({ "email": "a@example.com" }));
        assert_finding(
            &json!({ "username": "jane" }),
            code::OBJECT_REQUIRED,
            "email",
        );
    }

    #[test]
    fn unknown_top_level_key_is_rejected() {
        assert_clean(&with("given_name", json!("Jane")));
        assert_finding(
            &with("emailVerified", json!(true)),
            code::OBJECT_ADDITIONAL_PROPERTIES,
            "emailVerified",
        );
    }

    #[test]
    fn property_types_are_enforced() {
        assert_clean(&with("blocked", json!(true)));
        assert_finding(
            &with("blocked", json!("true")),
            code::INVALID_TYPE,
            "blocked",
        );
        assert_finding(&with("name", json!(null)), code::INVALID_TYPE, "name");
        assert_finding(
            &with("app_metadata", json!([])),
            code::INVALID_TYPE,
            "app_metadata",
        );
        assert_finding(&json!({ "email": 5 }), code::INVALID_TYPE, "email");
    }

    #[test]
    fn invalid_type_message_names_both_types() {
        let violations = super::super::testkit::check(&with("email_verified", json!("yes")));
        assert_eq!(violations.len(), 1);
        assert!(violations[0]
            .message
            .ends_with("Expected type boolean but found type string"));
    }

    fn scrypt_with(param: &str, value: Value) -> Value {
        let mut cph = json!({
            "algorithm": "scrypt",
            "hash": { "value": "AAAAAAAAAAAAAAAAAAAAAA==", "encoding": "base64" },
            "keylen": 16
        });
        cph[param] = value;
        with("custom_password_hash", cph)
    }

    #[test]
    fn integer_parameters_reject_fractions_and_accept_integral_floats() {
        assert_clean(&scrypt_with("blockSize", json!(8)));
        // 8.0 is the same number as 8 for Auth0's JavaScript parser (see is_integer).
        assert_clean(&scrypt_with("blockSize", json!(8.0)));
        assert_finding(
            &scrypt_with("blockSize", json!(1.5)),
            code::INVALID_TYPE,
            "custom_password_hash.blockSize",
        );
        assert_finding(
            &scrypt_with("cost", json!("16384")),
            code::INVALID_TYPE,
            "custom_password_hash.cost",
        );
    }

    #[test]
    fn enums_are_enforced() {
        let cph = |algorithm: &str| {
            with(
                "custom_password_hash",
                json!({ "algorithm": algorithm, "hash": { "value": "$2b$10$N9qo8uLOickgx2ZMRZoMyeIjZAgcfl7p92ldGxad68LJZdL17lhWy", "encoding": "utf8" } }),
            )
        };
        assert_clean(&cph("bcrypt"));
        assert_finding(
            &cph("BCRYPT"),
            code::ENUM_MISMATCH,
            "custom_password_hash.algorithm",
        );
        let user = with(
            "custom_password_hash",
            json!({ "algorithm": "md5", "hash": { "value": "1524cb91042cc716c88bacaf99f2e70e", "encoding": "hex" }, "password": { "encoding": "utf-8" } }),
        );
        assert_finding(
            &user,
            code::ENUM_MISMATCH,
            "custom_password_hash.password.encoding",
        );
    }

    #[test]
    fn custom_password_hash_structure() {
        let missing = with("custom_password_hash", json!({ "algorithm": "md5" }));
        assert_finding(&missing, code::OBJECT_REQUIRED, "custom_password_hash.hash");
        let extra = with(
            "custom_password_hash",
            json!({ "algorithm": "md5", "hash": { "value": "1524cb91042cc716c88bacaf99f2e70e", "encoding": "hex" }, "salt_prefix": "x" }),
        );
        assert_finding(
            &extra,
            code::OBJECT_ADDITIONAL_PROPERTIES,
            "custom_password_hash.salt_prefix",
        );
        let salt_without_value = with(
            "custom_password_hash",
            json!({ "algorithm": "md5", "hash": { "value": "1524cb91042cc716c88bacaf99f2e70e", "encoding": "hex" }, "salt": { "position": "prefix" } }),
        );
        assert_finding(
            &salt_without_value,
            code::OBJECT_REQUIRED,
            "custom_password_hash.salt.value",
        );
    }

    fn factors(items: Value) -> Value {
        with("mfa_factors", items)
    }

    #[test]
    fn mfa_factor_count_is_one_to_ten() {
        let one = json!({ "totp": { "secret": "JBSWY3DPEHPK3PXP" } });
        assert_clean(&factors(json!([one.clone()])));
        assert_clean(&factors(Value::Array(vec![one.clone(); 10])));
        assert_finding(&factors(json!([])), code::ARRAY_LENGTH_SHORT, "mfa_factors");
        assert_finding(
            &factors(Value::Array(vec![one; 11])),
            code::ARRAY_LENGTH_LONG,
            "mfa_factors",
        );
    }

    #[test]
    fn mfa_factor_holds_at_most_one_known_factor() {
        let two = json!([{ "totp": { "secret": "JBSWY3DPEHPK3PXP" }, "phone": { "value": "+15551234567" } }]);
        assert_finding(
            &factors(two),
            code::OBJECT_PROPERTIES_MAXIMUM,
            "mfa_factors[0]",
        );
        let unknown = json!([{ "sms": { "value": "+15551234567" } }]);
        assert_finding(
            &factors(unknown),
            code::OBJECT_ADDITIONAL_PROPERTIES,
            "mfa_factors[0].sms",
        );
        assert_finding(
            &factors(json!(["totp"])),
            code::INVALID_TYPE,
            "mfa_factors[0]",
        );
    }

    #[test]
    fn totp_secret_is_upper_case_base32() {
        assert_clean(&factors(
            json!([{ "totp": { "secret": "JBSWY3DPEHPK3PXP" } }]),
        ));
        for bad in ["jbswy3dpehpk3pxp", "JBSWY3DPEHPK3PX=", "JBSWY01", ""] {
            let user = factors(json!([{ "totp": { "secret": bad } }]));
            assert_finding(&user, code::PATTERN, "mfa_factors[0].totp.secret");
        }
        let missing = factors(json!([{ "totp": {} }]));
        assert_finding(
            &missing,
            code::OBJECT_REQUIRED,
            "mfa_factors[0].totp.secret",
        );
        let extra = factors(json!([{ "totp": { "secret": "JBSWY3DP", "issuer": "x" } }]));
        assert_finding(
            &extra,
            code::OBJECT_ADDITIONAL_PROPERTIES,
            "mfa_factors[0].totp.issuer",
        );
    }

    #[test]
    fn pattern_message_never_contains_the_secret() {
        let user = factors(json!([{ "totp": { "secret": "lowercase-secret-value" } }]));
        let violations = super::super::testkit::check(&user);
        assert_eq!(violations.len(), 1);
        assert!(!violations[0].message.contains("lowercase-secret-value"));
    }

    #[test]
    fn phone_factor_is_e164() {
        assert_clean(&factors(json!([{ "phone": { "value": "+15551234567" } }])));
        for bad in ["15551234567", "+1 555 123 4567", "+", "+1234567890123456"] {
            let user = factors(json!([{ "phone": { "value": bad } }]));
            assert_finding(&user, code::PATTERN, "mfa_factors[0].phone.value");
        }
    }

    #[test]
    fn email_factor_value_is_an_email() {
        assert_clean(&factors(
            json!([{ "email": { "value": "jane@example.com" } }]),
        ));
        let user = factors(json!([{ "email": { "value": "jane at example.com" } }]));
        assert_finding(&user, code::INVALID_FORMAT, "mfa_factors[0].email.value");
        let missing = factors(json!([{ "email": {} }]));
        assert_finding(
            &missing,
            code::OBJECT_REQUIRED,
            "mfa_factors[0].email.value",
        );
    }

    #[test]
    fn top_level_email_format_is_checked() {
        assert_clean(&json!({ "email": "jane@example.com" }));
        assert_finding(
            &json!({ "email": "jane@localhost" }),
            code::INVALID_FORMAT,
            "email",
        );
        // One violation, not one per rule that notices it.
        assert_eq!(findings(&json!({ "email": "x" })).len(), 1);
    }

    #[test]
    fn patterns_match_their_regex_text() {
        assert!(Pattern::Base32Upper.matches("ABCXYZ234567"));
        assert!(!Pattern::Base32Upper.matches("ABC1"));
        assert!(Pattern::E164.matches("+1"));
        assert!(Pattern::E164.matches("+123456789012345"));
        assert!(!Pattern::E164.matches("+1234567890123456"));
        assert!(!Pattern::E164.matches("+１２３"));
    }
}
