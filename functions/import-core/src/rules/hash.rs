//! Password-hash rules beyond the schema: the observed `password_hash` pattern, the hash XOR, and
//! the per-algorithm `custom_password_hash` rules (facts §4.4–4.6), with the algorithms as a table.
//!
//! Beyond what Auth0 states, values are checked to decode in their declared encoding and to have
//! the byte length the algorithm produces: wrong bytes are the first cause of "Verification failed
//! for the provided custom_password_hash" at login (§4.6), which Auth0 only reveals after import,
//! one failed login at a time. Codes: a property the algorithm forbids → `NOT_PASSED`; an encoding
//! it does not take → `ENUM_MISMATCH`; a property it needs → `OBJECT_REQUIRED`; a value of the wrong
//! textual shape (prefix, PHC layout) → `PATTERN`; a value that does not decode in its encoding or
//! decodes to the wrong number of bytes → `INVALID_FORMAT`; a numeric parameter out of range →
//! `MINIMUM`/`MAXIMUM`, or `INVALID_FORMAT` for a scrypt cost that is not a power of two.
//! No message ever contains a hash, salt or key value.
//!
//! The facts these rules share with the verifier (digests and their sizes, the PBKDF2 digest
//! names, the LDAP schemes, defaults) live in `auth0_password_hash::facts`.

use auth0_password_hash::facts::{self, Digest, PBKDF2_DEFAULT_KEY_BYTES};

use super::node::{Node, ObjectNode};

use super::{code, split_ascii, split_once_ascii, violation, Members, Path};
use crate::violation::Violation;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Encoding {
    Base64,
    Hex,
    Utf8,
}

impl Encoding {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Encoding::Base64 => "base64",
            Encoding::Hex => "hex",
            Encoding::Utf8 => "utf8",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        match s {
            "base64" => Some(Encoding::Base64),
            "hex" => Some(Encoding::Hex),
            "utf8" => Some(Encoding::Utf8),
            _ => None,
        }
    }
}

/// Whether the top-level `salt` object may accompany the algorithm.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Salt {
    Allowed,
    /// `why` ends the violation message ("salt is not allowed for argon2: <why>").
    Forbidden {
        why: &'static str,
    },
}

/// Which algorithm-specific property group the algorithm takes; every other group is forbidden.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Params {
    None,
    /// `hash.digest` and `hash.key`, both required.
    Hmac,
    /// `keylen` (required), `cost`, `blockSize`, `parallelization`.
    Scrypt,
}

/// What `hash.value` must look like once its encoding is right.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum ValueShape {
    /// Raw digest bytes of a fixed length, hex- or base64-encoded.
    Digest { bytes: usize },
    /// HMAC output; its length follows `hash.digest`.
    HmacDigest,
    /// scrypt output; its length is `keylen`.
    ScryptKey,
    /// Modular-crypt bcrypt, `$2a$`/`$2b$`/`$2y$`, cost, 53 characters.
    Bcrypt,
    /// PHC string `$argon2{i,d,id}$v=..$m=..,t=..,p=..$<salt>$<hash>`.
    Argon2Phc,
    /// PHC string `$pbkdf2-<digest>$i=..,l=..$<salt>$<hash>`.
    Pbkdf2Phc,
    /// RFC 2307 `{SCHEME}base64`.
    LdapRfc2307,
}

pub(crate) struct AlgorithmRule {
    pub(crate) name: &'static str,
    /// The `hash.encoding` values the algorithm takes.
    pub(crate) encodings: &'static [Encoding],
    pub(crate) salt: Salt,
    pub(crate) params: Params,
    pub(crate) value: ValueShape,
}

const HEX_OR_BASE64: &[Encoding] = &[Encoding::Hex, Encoding::Base64];
const UTF8: &[Encoding] = &[Encoding::Utf8];

const SALT_IN_PHC: Salt = Salt::Forbidden {
    why: "the salt is part of the PHC string in hash.value; remove the salt object",
};

/// Auth0's per-algorithm rules (facts §4.6), one row per `algorithm` enum value.
pub(crate) const ALGORITHM_RULES: &[AlgorithmRule] = &[
    AlgorithmRule {
        name: "argon2",
        encodings: UTF8,
        salt: SALT_IN_PHC,
        params: Params::None,
        value: ValueShape::Argon2Phc,
    },
    AlgorithmRule {
        name: "bcrypt",
        encodings: UTF8,
        salt: Salt::Allowed,
        params: Params::None,
        value: ValueShape::Bcrypt,
    },
    // The docs are silent on a salt for hmac; the schema allows one, so we do not reject it.
    AlgorithmRule {
        name: "hmac",
        encodings: HEX_OR_BASE64,
        salt: Salt::Allowed,
        params: Params::Hmac,
        value: ValueShape::HmacDigest,
    },
    AlgorithmRule {
        name: "ldap",
        encodings: UTF8,
        salt: Salt::Forbidden {
            why: "salted schemes ({SSHA}, {SMD5}, ...) carry the salt inside hash.value; remove the salt object",
        },
        params: Params::None,
        value: ValueShape::LdapRfc2307,
    },
    AlgorithmRule {
        name: "md4",
        encodings: HEX_OR_BASE64,
        salt: Salt::Allowed,
        params: Params::None,
        value: ValueShape::Digest { bytes: 16 },
    },
    AlgorithmRule {
        name: "md5",
        encodings: HEX_OR_BASE64,
        salt: Salt::Allowed,
        params: Params::None,
        value: ValueShape::Digest { bytes: 16 },
    },
    AlgorithmRule {
        name: "sha1",
        encodings: HEX_OR_BASE64,
        salt: Salt::Allowed,
        params: Params::None,
        value: ValueShape::Digest { bytes: 20 },
    },
    AlgorithmRule {
        name: "sha256",
        encodings: HEX_OR_BASE64,
        salt: Salt::Allowed,
        params: Params::None,
        value: ValueShape::Digest { bytes: 32 },
    },
    AlgorithmRule {
        name: "sha512",
        encodings: HEX_OR_BASE64,
        salt: Salt::Allowed,
        params: Params::None,
        value: ValueShape::Digest { bytes: 64 },
    },
    AlgorithmRule {
        name: "pbkdf2",
        encodings: UTF8,
        salt: SALT_IN_PHC,
        params: Params::None,
        value: ValueShape::Pbkdf2Phc,
    },
    AlgorithmRule {
        name: "scrypt",
        encodings: HEX_OR_BASE64,
        salt: Salt::Allowed,
        params: Params::Scrypt,
        value: ValueShape::ScryptKey,
    },
];

/// `hash` properties only hmac takes, both required for it.
const HMAC_FIELDS: &[&str] = &["digest", "key"];

pub(crate) struct ScryptParam {
    pub(crate) name: &'static str,
    pub(crate) required: bool,
    pub(crate) minimum: i64,
    pub(crate) power_of_two: bool,
}

/// Top-level `custom_password_hash` properties only scrypt takes (defaults 16384/8/1 apply when omitted).
pub(crate) const SCRYPT_PARAMS: &[ScryptParam] = &[
    ScryptParam {
        name: "keylen",
        required: true,
        minimum: 1,
        power_of_two: false,
    },
    ScryptParam {
        name: "cost",
        required: false,
        minimum: 2,
        power_of_two: true,
    },
    ScryptParam {
        name: "blockSize",
        required: false,
        minimum: 1,
        power_of_two: false,
    },
    ScryptParam {
        name: "parallelization",
        required: false,
        minimum: 1,
        power_of_two: false,
    },
];

/// The pattern the server reports for `password_hash` (facts §3.1/§4.4), matched by hand.
pub(crate) const PASSWORD_HASH_PATTERN: &str = r"^\$2[ab]?\$10+\$[./A-Za-z0-9]{53}$";

pub(crate) fn check_password_hash_pattern<'v, N: Node<'v>>(
    record: &Members<'v, N>,
    out: &mut Vec<Violation>,
) {
    let Some(hash) = record.get("password_hash").and_then(Node::as_str) else {
        return;
    };
    if !matches_password_hash_pattern(hash) {
        out.push(violation(
            code::PATTERN,
            &Path::Root.key("password_hash"),
            format_args!(
                "String does not match pattern {PASSWORD_HASH_PATTERN}: password_hash only takes bcrypt \
                 $2a$/$2b$ hashes with cost 10 (60 characters); for $2y$ hashes or other costs use \
                 custom_password_hash with algorithm bcrypt and hash.encoding utf8"
            ),
        ));
    }
}

/// `^\$2[ab]?\$10+\$[./A-Za-z0-9]{53}$`, literally (so `$2$1000$` passes, as it does at Auth0).
pub(crate) fn matches_password_hash_pattern(s: &str) -> bool {
    let Some(rest) = s.strip_prefix("$2") else {
        return false;
    };
    let rest = rest.strip_prefix(['a', 'b']).unwrap_or(rest);
    let Some(rest) = rest.strip_prefix("$1") else {
        return false;
    };
    let zeros = rest.bytes().take_while(|&b| b == b'0').count();
    if zeros == 0 {
        return false;
    }
    match rest[zeros..].strip_prefix('$') {
        Some(tail) => tail.len() == 53 && tail.bytes().all(is_bcrypt_char),
        None => false,
    }
}

fn is_bcrypt_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'.' || b == b'/'
}

/// Auth0 rejects a record carrying both hash fields ("Forbidden attribute in appUser", §3.1).
pub(crate) fn check_hash_fields_exclusive<'v, N: Node<'v>>(
    record: &Members<'v, N>,
    out: &mut Vec<Violation>,
) {
    if record.contains_key("password_hash") && record.contains_key("custom_password_hash") {
        out.push(violation(
            code::NOT_PASSED,
            &Path::Root.key("custom_password_hash"),
            format_args!(
                "Forbidden attribute in appUser: password_hash and custom_password_hash are mutually \
                 exclusive; keep only one of them"
            ),
        ));
    }
}

pub(crate) fn check_custom_password_hash<'v, N: Node<'v>>(
    record: &Members<'v, N>,
    out: &mut Vec<Violation>,
) {
    let Some(cph) = record.get("custom_password_hash").and_then(Node::as_object) else {
        return;
    };
    // An unknown or missing algorithm is the schema's ENUM_MISMATCH/OBJECT_REQUIRED; without
    // one there is no row to apply.
    let Some(rule) = cph
        .get("algorithm")
        .and_then(Node::as_str)
        .and_then(algorithm_rule)
    else {
        return;
    };
    let root = Path::Root;
    let base = root.key("custom_password_hash");
    let hash = cph.get("hash").and_then(Node::as_object);

    if let (Salt::Forbidden { why }, true) = (rule.salt, cph.contains_key("salt")) {
        out.push(violation(
            code::NOT_PASSED,
            &base.key("salt"),
            format_args!("salt is not allowed for {}: {why}", rule.name),
        ));
    }
    if let Some(hash) = hash {
        check_hmac_fields(rule, hash, &base.key("hash"), out);
    }
    let keylen = check_scrypt_params(rule, cph, &base, out);
    if let Some(hash) = hash {
        check_hash_value(rule, hash, keylen, &base.key("hash"), out);
        if let Some(key) = hash.get("key").and_then(Node::as_object) {
            check_encoded_secret(key, "hash.key", &base.key("hash").key("key"), out);
        }
    }
    if let Some(salt) = cph.get("salt").and_then(Node::as_object) {
        check_encoded_secret(salt, "salt", &base.key("salt"), out);
    }
}

pub(crate) fn algorithm_rule(name: &str) -> Option<&'static AlgorithmRule> {
    ALGORITHM_RULES.iter().find(|rule| rule.name == name)
}

fn check_hmac_fields<'a>(
    rule: &AlgorithmRule,
    hash: impl ObjectNode<'a>,
    path: &Path<'_>,
    out: &mut Vec<Violation>,
) {
    for field in HMAC_FIELDS {
        let present = hash.contains_key(field);
        if rule.params == Params::Hmac && !present {
            out.push(violation(
                code::OBJECT_REQUIRED,
                &path.key(field),
                format_args!("Missing required property: {field} (algorithm hmac needs hash.digest and hash.key)"),
            ));
        } else if rule.params != Params::Hmac && present {
            out.push(violation(
                code::NOT_PASSED,
                &path.key(field),
                format_args!(
                    "hash.{field} is only used by algorithm hmac; remove it for {}",
                    rule.name
                ),
            ));
        }
    }
}

/// Checks scrypt's numeric parameters (or forbids them elsewhere) and returns `keylen` when it
/// is usable, so the hash length can be checked against it.
fn check_scrypt_params<'a>(
    rule: &AlgorithmRule,
    cph: impl ObjectNode<'a>,
    base: &Path<'_>,
    out: &mut Vec<Violation>,
) -> Option<usize> {
    let mut keylen = None;
    for param in SCRYPT_PARAMS {
        let path = base.key(param.name);
        let value = cph.get(param.name);
        if rule.params != Params::Scrypt {
            if value.is_some() {
                out.push(violation(
                    code::NOT_PASSED,
                    &path,
                    format_args!(
                        "{} is only used by algorithm scrypt; remove it for {}",
                        param.name, rule.name
                    ),
                ));
            }
            continue;
        }
        let Some(value) = value else {
            if param.required {
                out.push(violation(
                    code::OBJECT_REQUIRED,
                    &path,
                    format_args!(
                        "Missing required property: {} (algorithm scrypt needs the derived key length in bytes)",
                        param.name
                    ),
                ));
            }
            continue;
        };
        match integer_param(value) {
            // The schema walker already reported a non-integer.
            IntegerParam::NotInteger => {}
            IntegerParam::OutOfRange { negative: true } => {
                push_below_minimum(param, &path, out);
            }
            IntegerParam::Value(n) if n < param.minimum => push_below_minimum(param, &path, out),
            IntegerParam::OutOfRange { negative: false } => out.push(violation(
                code::MAXIMUM,
                &path,
                format_args!(
                    "{} must be at most {MAX_SAFE_INTEGER}: Auth0 reads numbers as JavaScript doubles",
                    param.name
                ),
            )),
            IntegerParam::Value(n) => {
                if param.power_of_two && !(n as u64).is_power_of_two() {
                    out.push(violation(
                        code::INVALID_FORMAT,
                        &path,
                        format_args!("{} must be a power of two (like 16384), found {n}", param.name),
                    ));
                } else if param.name == "keylen" {
                    keylen = usize::try_from(n).ok();
                }
            }
        }
    }
    keylen
}

fn push_below_minimum(param: &ScryptParam, path: &Path<'_>, out: &mut Vec<Violation>) {
    out.push(violation(
        code::MINIMUM,
        path,
        format_args!("{} must be at least {}", param.name, param.minimum),
    ));
}

/// JavaScript's `Number.MAX_SAFE_INTEGER`: beyond it Auth0 cannot hold the value exactly.
const MAX_SAFE_INTEGER: i64 = (1 << 53) - 1;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum IntegerParam {
    Value(i64),
    OutOfRange { negative: bool },
    NotInteger,
}

/// Reads an integer the way Auth0's JavaScript would: `8.0` is 8 (see `schema::is_integer`).
fn integer_param<'a>(value: impl Node<'a>) -> IntegerParam {
    if let Some(n) = value.as_i64() {
        return if n.unsigned_abs() <= MAX_SAFE_INTEGER as u64 {
            IntegerParam::Value(n)
        } else {
            IntegerParam::OutOfRange { negative: n < 0 }
        };
    }
    if value.as_u64().is_some() {
        return IntegerParam::OutOfRange { negative: false };
    }
    match value.as_f64() {
        Some(f) if f.is_finite() && f.fract() == 0.0 => {
            if f.abs() <= MAX_SAFE_INTEGER as f64 {
                // Exact: an integral f64 within ±2^53 converts without loss.
                IntegerParam::Value(f as i64)
            } else {
                IntegerParam::OutOfRange { negative: f < 0.0 }
            }
        }
        _ => IntegerParam::NotInteger,
    }
}

fn check_hash_value<'a>(
    rule: &AlgorithmRule,
    hash: impl ObjectNode<'a>,
    keylen: Option<usize>,
    path: &Path<'_>,
    out: &mut Vec<Violation>,
) {
    // The published schema has no `required` inside `hash`, but a hash without a value verifies
    // nothing, and without an encoding its bytes cannot be read the way the source system wrote
    // them; we require both rather than let the user discover it at login.
    let value = match hash.get("value").map(Node::as_str) {
        Some(Some(value)) => Some(value),
        Some(None) => None, // wrong type: the schema walker reported it
        None => {
            out.push(violation(
                code::OBJECT_REQUIRED,
                &path.key("value"),
                format_args!(
                    "Missing required property: value (the stored {} hash)",
                    rule.name
                ),
            ));
            None
        }
    };
    let encoding = match hash.get("encoding").map(Node::as_str) {
        Some(Some(name)) => match Encoding::parse(name) {
            Some(encoding) if rule.encodings.contains(&encoding) => Some(encoding),
            Some(_) => {
                out.push(violation(
                    code::ENUM_MISMATCH,
                    &path.key("encoding"),
                    format_args!(
                        "algorithm {} requires hash.encoding {}",
                        rule.name,
                        EncodingList(rule.encodings)
                    ),
                ));
                None
            }
            None => None, // not in the schema enum: the schema walker reported it
        },
        Some(None) => None,
        None => {
            out.push(violation(
                code::OBJECT_REQUIRED,
                &path.key("encoding"),
                format_args!(
                    "Missing required property: encoding (algorithm {} takes hash.encoding {})",
                    rule.name,
                    EncodingList(rule.encodings)
                ),
            ));
            None
        }
    };
    if let (Some(value), Some(encoding)) = (value, encoding) {
        check_value_shape(rule, value, encoding, hash, keylen, &path.key("value"), out);
    }
}

fn check_value_shape<'a, O: ObjectNode<'a>>(
    rule: &AlgorithmRule,
    value: &str,
    encoding: Encoding,
    hash: O,
    keylen: Option<usize>,
    path: &Path<'_>,
    out: &mut Vec<Violation>,
) {
    let expected_bytes = match rule.value {
        ValueShape::Digest { bytes } => Some(bytes),
        ValueShape::HmacDigest => hash
            .get("digest")
            .and_then(Node::as_str)
            .and_then(facts::hmac_digest)
            .map(Digest::output_bytes),
        ValueShape::ScryptKey => keylen,
        ValueShape::Bcrypt => {
            if let Err(problem) = check_bcrypt(value) {
                out.push(violation(
                    code::PATTERN,
                    path,
                    format_args!("bcrypt hash {problem}"),
                ));
            }
            return;
        }
        ValueShape::Argon2Phc => return check_argon2(value, path, out),
        ValueShape::Pbkdf2Phc => return check_pbkdf2(value, path, out),
        ValueShape::LdapRfc2307 => return check_ldap(value, path, out),
    };
    match decoded_len(value, encoding) {
        Err(problem) => out.push(violation(
            code::INVALID_FORMAT,
            path,
            format_args!(
                "hash.value {problem}, but hash.encoding says {}",
                encoding.name()
            ),
        )),
        Ok(found) => {
            if let Some(expected) = expected_bytes.filter(|&expected| expected != found) {
                out.push(violation(
                    code::INVALID_FORMAT,
                    path,
                    format_args!(
                        "hash.value decodes to {found} bytes but {} produces {expected} bytes; check \
                         hash.encoding (hex vs base64) and that the value is not truncated or re-encoded",
                        ProducerName(rule, hash)
                    ),
                ));
            }
        }
    }
}

/// Names what produced the hash in a length message ("sha256", "hmac with sha512", "scrypt with this keylen").
struct ProducerName<'r, O>(&'r AlgorithmRule, O);

impl<'a, O: ObjectNode<'a>> std::fmt::Display for ProducerName<'_, O> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0.value {
            ValueShape::HmacDigest => {
                let digest = self.1.get("digest").and_then(Node::as_str).unwrap_or("?");
                write!(f, "hmac with {digest}")
            }
            ValueShape::ScryptKey => f.write_str("scrypt with this keylen"),
            _ => f.write_str(self.0.name),
        }
    }
}

struct EncodingList(&'static [Encoding]);

impl std::fmt::Display for EncodingList {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, encoding) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(" or ")?;
            }
            f.write_str(encoding.name())?;
        }
        Ok(())
    }
}

/// `salt` and `hash.key`: when their encoding (default utf8) is hex or base64, the value must decode.
fn check_encoded_secret<'a>(
    object: impl ObjectNode<'a>,
    label: &str,
    path: &Path<'_>,
    out: &mut Vec<Violation>,
) {
    let Some(value) = object.get("value").and_then(Node::as_str) else {
        return;
    };
    let encoding = match object.get("encoding") {
        None => Encoding::Utf8,
        Some(name) => match name.as_str().and_then(Encoding::parse) {
            Some(encoding) => encoding,
            None => return, // the schema walker reported it
        },
    };
    if let Err(problem) = decoded_len(value, encoding) {
        out.push(violation(
            code::INVALID_FORMAT,
            &path.key("value"),
            format_args!(
                "{label}.value {problem}, but {label}.encoding says {}",
                encoding.name()
            ),
        ));
    }
}

/// How many bytes `value` decodes to in `encoding`, or why it does not decode. Hex is
/// case-insensitive; base64 may be standard or URL-safe, padded or not (what Auth0 accepts).
/// Node's decoder silently skips bad characters instead of failing, so we must be the strict one.
fn decoded_len(value: &str, encoding: Encoding) -> Result<usize, &'static str> {
    match encoding {
        Encoding::Utf8 => Ok(value.len()),
        Encoding::Hex => hex_len(value),
        Encoding::Base64 => base64_len(value),
    }
}

fn hex_len(value: &str) -> Result<usize, &'static str> {
    if !value.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err("is not valid hex (only 0-9 and a-f allowed)");
    }
    if !value.len().is_multiple_of(2) {
        return Err("has an odd number of hex digits");
    }
    Ok(value.len() / 2)
}

fn base64_len(value: &str) -> Result<usize, &'static str> {
    let bytes = value.as_bytes();
    let padding = bytes.iter().rev().take_while(|&&b| b == b'=').count();
    let body = &bytes[..bytes.len() - padding];
    if !body.iter().all(|&b| BASE64_ALPHABET[usize::from(b)]) {
        return Err("is not valid base64 (standard or URL-safe alphabet, = only as padding)");
    }
    if body.len() % 4 == 1 || padding > 2 || (padding > 0 && !value.len().is_multiple_of(4)) {
        return Err("has a base64 length or padding that cannot be decoded (truncated?)");
    }
    Ok(body.len() / 4 * 3
        + match body.len() % 4 {
            2 => 1,
            3 => 2,
            _ => 0,
        })
}

/// The standard and URL-safe base64 alphabets together, by byte: a table lookup per byte, as
/// hash values are tens of bytes long and every hashed user has one or two.
const BASE64_ALPHABET: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        table[b] = c.is_ascii_alphanumeric() || matches!(c, b'+' | b'/' | b'-' | b'_');
        b += 1;
    }
    table
};

fn check_bcrypt(value: &str) -> Result<(), &'static str> {
    let rest = ["$2a$", "$2b$", "$2y$"]
        .iter()
        .find_map(|prefix| value.strip_prefix(prefix))
        .ok_or(
            "must start with $2a$, $2b$ or $2y$ ($2$, $2x$ and other variants are not supported)",
        )?;
    let cost_ok = rest.len() >= 3
        && rest.as_bytes()[2] == b'$'
        && rest[..2]
            .parse::<u8>()
            .is_ok_and(|cost| (4..=31).contains(&cost));
    if !cost_ok {
        return Err("must have a two-digit cost from 04 to 31 after the prefix, like $2b$10$");
    }
    let tail = &rest[3..];
    if tail.len() != 53 || !tail.bytes().all(is_bcrypt_char) {
        return Err("must end with exactly 53 characters of [./A-Za-z0-9] after the cost (is it truncated?)");
    }
    Ok(())
}

/// A PHC string split into its fields: `$<id>[$v=<version>][$<params>]$<salt>$<hash>`.
struct Phc<'a> {
    id: &'a str,
    params: Option<&'a str>,
    /// The salt field is checked for base64 by `parse_phc` and needs nothing more.
    hash: &'a str,
}

fn parse_phc(value: &str) -> Result<Phc<'_>, &'static str> {
    const LAYOUT: &str = "must be a PHC string $<id>[$v=<version>]$<params>$<salt>$<hash>";
    let body = value.strip_prefix('$').ok_or(LAYOUT)?;
    let mut fields = split_ascii(body, b'$');
    let id = fields.next().unwrap_or_default();
    let mut rest = [""; 4];
    let mut count = 0;
    for field in fields {
        *rest.get_mut(count).ok_or(LAYOUT)? = field;
        count += 1;
    }
    if count < 2 {
        return Err(LAYOUT);
    }
    let (version, params) = match &rest[..count - 2] {
        [] => (None, None),
        [only] => match only.strip_prefix("v=") {
            Some(version) => (Some(version), None),
            None => (None, Some(*only)),
        },
        [version, params] => (
            Some(version.strip_prefix("v=").ok_or(LAYOUT)?),
            Some(*params),
        ),
        _ => return Err(LAYOUT),
    };
    if version.is_some_and(|v| v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit())) {
        return Err("has a version field that is not v=<digits>");
    }
    let well_formed_param = |pair: &str| {
        split_once_ascii(pair, b'=').is_some_and(|(name, value)| {
            !name.is_empty()
                && !value.is_empty()
                && name
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && value
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'/' | b'+' | b'.' | b'-'))
        })
    };
    if params.is_some_and(|p| !split_ascii(p, b',').all(well_formed_param)) {
        return Err("has a parameter field that is not name=value[,name=value...]");
    }
    let (salt, hash) = (rest[count - 2], rest[count - 1]);
    for (field, what) in [(salt, "salt"), (hash, "hash")] {
        if field.is_empty() {
            return Err(if what == "salt" {
                "has an empty salt field"
            } else {
                "has an empty hash field"
            });
        }
        if base64_len(field).is_err() {
            return Err(if field.contains('.') {
                "has a salt or hash field that is not base64; '.' suggests passlib's adapted base64 (replace '.' with '+')"
            } else {
                "has a salt or hash field that is not base64"
            });
        }
    }
    Ok(Phc { id, params, hash })
}

fn phc_param<'a>(params: Option<&'a str>, name: &str) -> Option<&'a str> {
    split_ascii(params?, b',').find_map(|pair| {
        split_once_ascii(pair, b'=')
            .filter(|(n, _)| *n == name)
            .map(|(_, v)| v)
    })
}

fn check_argon2(value: &str, path: &Path<'_>, out: &mut Vec<Violation>) {
    let verdict = parse_phc(value).and_then(|phc| {
        if !matches!(phc.id, "argon2i" | "argon2d" | "argon2id") {
            return Err("must start with $argon2i$, $argon2d$ or $argon2id$");
        }
        let numeric = |name| {
            phc_param(phc.params, name).is_some_and(|v| v.bytes().all(|b| b.is_ascii_digit()))
        };
        if !(numeric("m") && numeric("t") && numeric("p")) {
            return Err("must carry numeric m=, t= and p= parameters, like $m=65536,t=2,p=1$");
        }
        Ok(())
    });
    if let Err(problem) = verdict {
        out.push(violation(
            code::PATTERN,
            path,
            format_args!(
                "argon2 hash.value {problem} (example shape: $argon2id$v=19$m=65536,t=2,p=1$<base64 salt>$<base64 hash>)"
            ),
        ));
    }
}

fn check_pbkdf2(value: &str, path: &Path<'_>, out: &mut Vec<Violation>) {
    let phc = parse_phc(value).and_then(|phc| {
        let digest = phc.id.strip_prefix("pbkdf2-").ok_or("must start with $pbkdf2-<digest>$")?;
        if facts::pbkdf2_digest(digest).is_none() {
            return Err("names a digest Auth0 does not support after $pbkdf2- (use e.g. sha256, sha512, sha1)");
        }
        let names_ok = phc
            .params
            .is_none_or(|p| split_ascii(p, b',').all(|pair| pair.starts_with("i=") || pair.starts_with("l=")));
        let digits = |name| phc_param(phc.params, name).is_none_or(|v| v.bytes().all(|b| b.is_ascii_digit()));
        if !names_ok || !digits("i") || !digits("l") {
            return Err("may only carry numeric i= (iterations) and l= (key length) parameters");
        }
        Ok(phc)
    });
    let phc = match phc {
        Ok(phc) => phc,
        Err(problem) => {
            out.push(violation(
                code::PATTERN,
                path,
                format_args!(
                    "pbkdf2 hash.value {problem} (example shape: $pbkdf2-sha256$i=100000,l=32$<base64 salt>$<base64 hash>)"
                ),
            ));
            return;
        }
    };
    // Auth0 derives `l` bytes (64 when `l=` is absent) and compares them with the stored hash,
    // so a 32-byte hash without `l=32` can never verify.
    let key_bytes = phc_param(phc.params, "l")
        .and_then(|l| l.parse::<usize>().ok())
        .unwrap_or(PBKDF2_DEFAULT_KEY_BYTES);
    if let Ok(found) = base64_len(phc.hash) {
        if found != key_bytes {
            out.push(violation(
                code::INVALID_FORMAT,
                path,
                format_args!(
                    "pbkdf2 hash field decodes to {found} bytes but the key length is {key_bytes} \
                     (l= parameter, default {PBKDF2_DEFAULT_KEY_BYTES}); add l={found} to the parameters"
                ),
            ));
        }
    }
}

fn check_ldap(value: &str, path: &Path<'_>, out: &mut Vec<Violation>) {
    let supported = "{MD5}, {SMD5}, {SHA}, {SSHA}, {SHA256}, {SSHA256}, {SHA384}, {SSHA384}, {SHA512} or {SSHA512}";
    let Some((scheme, payload)) = value
        .strip_prefix('{')
        .and_then(|rest| split_once_ascii(rest, b'}'))
    else {
        out.push(violation(
            code::PATTERN,
            path,
            format_args!("ldap hash.value must start with an RFC 2307 scheme: {supported}"),
        ));
        return;
    };
    if scheme.eq_ignore_ascii_case("crypt") {
        out.push(violation(
            code::PATTERN,
            path,
            format_args!(
                "ldap hash.value uses {{CRYPT}}, which Auth0 does not support; import the inner hash with \
                 its own algorithm (e.g. bcrypt for {{CRYPT}}$2b$...) instead"
            ),
        ));
        return;
    }
    let Some(known) = facts::ldap_scheme(scheme) else {
        out.push(violation(
            code::PATTERN,
            path,
            format_args!("ldap hash.value uses an unsupported scheme; supported: {supported}"),
        ));
        return;
    };
    match base64_len(payload) {
        Err(problem) => out.push(violation(
            code::INVALID_FORMAT,
            path,
            format_args!("ldap hash.value after {{{}}} {problem}", known.name),
        )),
        Ok(found) => {
            let digest_bytes = known.digest.output_bytes();
            let fits = if known.salted {
                found >= digest_bytes
            } else {
                found == digest_bytes
            };
            if !fits {
                out.push(violation(
                    code::INVALID_FORMAT,
                    path,
                    format_args!(
                        "ldap hash.value after {{{}}} decodes to {found} bytes but needs {}{} bytes \
                         (RFC 2307 values are base64 of the raw digest{}, not hex)",
                        known.name,
                        if known.salted { "at least " } else { "" },
                        digest_bytes,
                        if known.salted { " followed by the salt" } else { "" }
                    ),
                ));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{json, Value};

    use super::super::schema;
    use super::super::testkit::{assert_clean, assert_finding, findings, with};
    use super::*;

    const BCRYPT_2B_10: &str = "$2b$10$N9qo8uLOickgx2ZMRZoMyeIjZAgcfl7p92ldGxad68LJZdL17lhWy";
    const SHA256_HEX: &str = "e66860546f18cdbbcd86b35e18b525bffc67f772c650cedfe3ff7a0026fa1dee";
    const ARGON2: &str =
        "$argon2id$v=19$m=65536,t=2,p=1$J4moa2MM0/6uf3HbY2Tf5w$9KqHW8Wsh6cSsoPT8kpeXaZ0Vz8NJUP8h8v5mGl2l9U";
    const PBKDF2: &str =
        "$pbkdf2-sha256$i=100000,l=32$YWJjMTIzc2FsdA$qnxovqoXgXF4RutydWI7DE8ydVuVZglPyjupkNJaFbM";

    fn cph(value: Value) -> Value {
        with("custom_password_hash", value)
    }

    fn simple(algorithm: &str, value: &str, encoding: &str) -> Value {
        cph(json!({ "algorithm": algorithm, "hash": { "value": value, "encoding": encoding } }))
    }

    fn hmac(hash: Value) -> Value {
        cph(json!({ "algorithm": "hmac", "hash": hash }))
    }

    fn scrypt(extra: Value) -> Value {
        let mut value = json!({
            "algorithm": "scrypt",
            "hash": { "value": "00112233445566778899aabbccddeeff", "encoding": "hex" },
            "salt": { "value": "pepper" },
            "keylen": 16
        });
        if let (Some(target), Some(extra)) = (value.as_object_mut(), extra.as_object()) {
            for (k, v) in extra {
                target.insert(k.clone(), v.clone());
            }
        }
        cph(value)
    }

    #[test]
    fn table_covers_exactly_the_schema_algorithms() {
        let names: Vec<&str> = ALGORITHM_RULES.iter().map(|rule| rule.name).collect();
        assert_eq!(names, schema::ALGORITHMS);
        for rule in ALGORITHM_RULES {
            assert!(!rule.encodings.is_empty(), "{}", rule.name);
            for encoding in rule.encodings {
                assert!(schema::VALUE_ENCODINGS.contains(&encoding.name()));
            }
        }
        let digests: Vec<&str> = facts::HMAC_DIGESTS.iter().map(|d| d.name()).collect();
        assert_eq!(digests, schema::HMAC_DIGESTS);
    }

    #[test]
    fn password_hash_pattern() {
        assert_clean(&with("password_hash", json!(BCRYPT_2B_10)));
        assert_clean(&with(
            "password_hash",
            json!(BCRYPT_2B_10.replacen("$2b$", "$2a$", 1)),
        ));
        for bad in [
            BCRYPT_2B_10.replacen("$2b$", "$2y$", 1),
            BCRYPT_2B_10.replacen("$10$", "$12$", 1),
            BCRYPT_2B_10[..59].to_string(),
            "plaintext".to_string(),
        ] {
            assert_finding(
                &with("password_hash", json!(bad)),
                code::PATTERN,
                "password_hash",
            );
        }
    }

    #[test]
    fn password_hash_message_points_to_custom_password_hash_without_the_hash() {
        let bad = BCRYPT_2B_10.replacen("$2b$", "$2y$", 1);
        let violations = super::super::testkit::check(&with("password_hash", json!(bad)));
        assert_eq!(violations.len(), 1);
        assert!(violations[0].message.contains("custom_password_hash"));
        assert!(!violations[0].message.contains(&bad[7..]));
    }

    #[test]
    fn hash_fields_are_exclusive() {
        let both = json!({
            "email": "a@example.com",
            "password_hash": BCRYPT_2B_10,
            "custom_password_hash": { "algorithm": "bcrypt", "hash": { "value": BCRYPT_2B_10, "encoding": "utf8" } }
        });
        assert_finding(&both, code::NOT_PASSED, "custom_password_hash");
        assert_clean(&simple("bcrypt", BCRYPT_2B_10, "utf8"));
    }

    #[test]
    fn hash_value_and_encoding_are_required() {
        let no_value = cph(json!({ "algorithm": "md5", "hash": { "encoding": "hex" } }));
        assert_finding(
            &no_value,
            code::OBJECT_REQUIRED,
            "custom_password_hash.hash.value",
        );
        let no_encoding = cph(
            json!({ "algorithm": "md5", "hash": { "value": "1524cb91042cc716c88bacaf99f2e70e" } }),
        );
        assert_finding(
            &no_encoding,
            code::OBJECT_REQUIRED,
            "custom_password_hash.hash.encoding",
        );
    }

    #[test]
    fn argon2_takes_utf8_phc_and_no_salt() {
        assert_clean(&simple("argon2", ARGON2, "utf8"));
        assert_clean(&simple("argon2", &ARGON2.replace("$v=19", ""), "utf8"));
        assert_finding(
            &simple("argon2", ARGON2, "base64"),
            code::ENUM_MISMATCH,
            "custom_password_hash.hash.encoding",
        );
        let salted = cph(
            json!({ "algorithm": "argon2", "hash": { "value": ARGON2, "encoding": "utf8" }, "salt": { "value": "x" } }),
        );
        assert_finding(&salted, code::NOT_PASSED, "custom_password_hash.salt");
        for bad in [
            ARGON2.replace("argon2id", "argon2"),
            ARGON2.replace("m=65536,t=2,p=1$", ""),
            ARGON2.replace(",p=1", ""),
            ARGON2
                .rsplit_once('$')
                .map(|(head, _)| head.to_string())
                .unwrap_or_default(),
            ARGON2.replace("J4moa2MM0/6uf3HbY2Tf5w", "J4moa2MM0.6uf3HbY2Tf5w"),
            "argon2id".to_string(),
        ] {
            assert_finding(
                &simple("argon2", &bad, "utf8"),
                code::PATTERN,
                "custom_password_hash.hash.value",
            );
        }
    }

    #[test]
    fn bcrypt_takes_utf8_modular_crypt() {
        assert_clean(&simple("bcrypt", BCRYPT_2B_10, "utf8"));
        assert_clean(&simple(
            "bcrypt",
            &BCRYPT_2B_10.replacen("$2b$10$", "$2y$12$", 1),
            "utf8",
        ));
        let salted = cph(
            json!({ "algorithm": "bcrypt", "hash": { "value": BCRYPT_2B_10, "encoding": "utf8" }, "salt": { "value": "pepper", "position": "suffix" } }),
        );
        assert_clean(&salted);
        assert_finding(
            &simple("bcrypt", BCRYPT_2B_10, "hex"),
            code::ENUM_MISMATCH,
            "custom_password_hash.hash.encoding",
        );
        for bad in [
            BCRYPT_2B_10.replacen("$2b$", "$2x$", 1),
            BCRYPT_2B_10.replacen("$2b$", "$2$", 1),
            BCRYPT_2B_10.replacen("$10$", "$3$", 1),
            BCRYPT_2B_10.replacen("$10$", "$32$", 1),
            BCRYPT_2B_10[..50].to_string(),
        ] {
            assert_finding(
                &simple("bcrypt", &bad, "utf8"),
                code::PATTERN,
                "custom_password_hash.hash.value",
            );
        }
    }

    #[test]
    fn hmac_needs_digest_and_key() {
        let good = json!({ "value": "41197e8f110d6e4bed871edf183b59edcfacd03b907f807aa384427402ee790f", "encoding": "hex", "digest": "sha256", "key": { "value": "secret-key" } });
        assert_clean(&hmac(good.clone()));
        let mut no_digest = good.clone();
        no_digest.as_object_mut().map(|h| h.remove("digest"));
        assert_finding(
            &hmac(no_digest),
            code::OBJECT_REQUIRED,
            "custom_password_hash.hash.digest",
        );
        let mut no_key = good.clone();
        no_key.as_object_mut().map(|h| h.remove("key"));
        assert_finding(
            &hmac(no_key),
            code::OBJECT_REQUIRED,
            "custom_password_hash.hash.key",
        );
        let mut no_key_value = good.clone();
        no_key_value["key"] = json!({ "encoding": "utf8" });
        assert_finding(
            &hmac(no_key_value),
            code::OBJECT_REQUIRED,
            "custom_password_hash.hash.key.value",
        );
        let mut utf8 = good.clone();
        utf8["encoding"] = json!("utf8");
        assert_finding(
            &hmac(utf8),
            code::ENUM_MISMATCH,
            "custom_password_hash.hash.encoding",
        );
        let mut sha512 = good.clone();
        sha512["digest"] = json!("sha512");
        assert_finding(
            &hmac(sha512),
            code::INVALID_FORMAT,
            "custom_password_hash.hash.value",
        );
        let mut bad_key = good;
        bad_key["key"] = json!({ "value": "not hex!", "encoding": "hex" });
        assert_finding(
            &hmac(bad_key),
            code::INVALID_FORMAT,
            "custom_password_hash.hash.key.value",
        );
    }

    #[test]
    fn digest_and_key_only_for_hmac() {
        let with_digest = cph(
            json!({ "algorithm": "sha256", "hash": { "value": SHA256_HEX, "encoding": "hex", "digest": "sha256" } }),
        );
        assert_finding(
            &with_digest,
            code::NOT_PASSED,
            "custom_password_hash.hash.digest",
        );
        let with_key = cph(
            json!({ "algorithm": "sha256", "hash": { "value": SHA256_HEX, "encoding": "hex", "key": { "value": "k" } } }),
        );
        assert_finding(&with_key, code::NOT_PASSED, "custom_password_hash.hash.key");
    }

    #[test]
    fn ldap_takes_utf8_rfc2307_without_salt() {
        assert_clean(&simple(
            "ldap",
            "{SSHA}zfJG7XLjnOUgSpnPte7954rIme9Zl/cr",
            "utf8",
        ));
        assert_clean(&simple("ldap", "{sha}ejo5u016BQkXR8L39d6l7/hT9to=", "utf8"));
        assert_finding(
            &simple("ldap", "{SSHA}zfJG7XLjnOUgSpnPte7954rIme9Zl/cr", "base64"),
            code::ENUM_MISMATCH,
            "custom_password_hash.hash.encoding",
        );
        let salted = cph(
            json!({ "algorithm": "ldap", "hash": { "value": "{SHA}ejo5u016BQkXR8L39d6l7/hT9to=", "encoding": "utf8" }, "salt": { "value": "x" } }),
        );
        assert_finding(&salted, code::NOT_PASSED, "custom_password_hash.salt");
        for bad in [
            "{CRYPT}$2b$10$abc",
            "{crypt}x",
            "{PBKDF2}abc",
            "SSHA}abc",
            "ejo5u016BQkXR8L39d6l7/hT9to=",
        ] {
            assert_finding(
                &simple("ldap", bad, "utf8"),
                code::PATTERN,
                "custom_password_hash.hash.value",
            );
        }
        // A hex MD5 after {MD5} is not base64 of the 16 raw bytes.
        assert_finding(
            &simple("ldap", "{MD5}1524cb91042cc716c88bacaf99f2e70e", "utf8"),
            code::INVALID_FORMAT,
            "custom_password_hash.hash.value",
        );
    }

    #[test]
    fn plain_digests_take_hex_or_base64_of_the_right_length() {
        let cases = [
            ("md4", "A448017AAF21D8525FC10AE87AA6729D", "hex"),
            ("md5", "1524cb91042cc716c88bacaf99f2e70e", "hex"),
            ("sha1", "ejo5u016BQkXR8L39d6l7/hT9to=", "base64"),
            ("sha1", "ejo5u016BQkXR8L39d6l7_hT9to", "base64"),
            ("sha256", SHA256_HEX, "hex"),
        ];
        for (algorithm, value, encoding) in cases {
            assert_clean(&simple(algorithm, value, encoding));
            assert_finding(
                &simple(algorithm, value, "utf8"),
                code::ENUM_MISMATCH,
                "custom_password_hash.hash.encoding",
            );
        }
        // The #1 import mistake: a hex digest declared as base64 decodes to the wrong bytes.
        assert_finding(
            &simple("sha256", SHA256_HEX, "base64"),
            code::INVALID_FORMAT,
            "custom_password_hash.hash.value",
        );
        assert_finding(
            &simple("md5", "1524cb91042cc716c88bacaf99f2e70", "hex"),
            code::INVALID_FORMAT,
            "custom_password_hash.hash.value",
        );
        assert_finding(
            &simple("md5", "1524cb91042cc716c88bacaf99f2e7zz", "hex"),
            code::INVALID_FORMAT,
            "custom_password_hash.hash.value",
        );
        assert_finding(
            &simple("sha1", "ejo5u016BQkXR8L39d6l7/hT9to=x", "base64"),
            code::INVALID_FORMAT,
            "custom_password_hash.hash.value",
        );
        let salted = cph(
            json!({ "algorithm": "md5", "hash": { "value": "1524cb91042cc716c88bacaf99f2e70e", "encoding": "hex" }, "salt": { "value": "zz", "encoding": "hex" } }),
        );
        assert_finding(
            &salted,
            code::INVALID_FORMAT,
            "custom_password_hash.salt.value",
        );
    }

    #[test]
    fn pbkdf2_takes_utf8_phc_and_no_salt() {
        assert_clean(&simple("pbkdf2", PBKDF2, "utf8"));
        assert_finding(
            &simple("pbkdf2", PBKDF2, "hex"),
            code::ENUM_MISMATCH,
            "custom_password_hash.hash.encoding",
        );
        let salted = cph(
            json!({ "algorithm": "pbkdf2", "hash": { "value": PBKDF2, "encoding": "utf8" }, "salt": { "value": "x" } }),
        );
        assert_finding(&salted, code::NOT_PASSED, "custom_password_hash.salt");
        for bad in [
            PBKDF2.replace("pbkdf2-sha256", "pbkdf2-sha3"),
            PBKDF2.replace("pbkdf2-sha256", "pbkdf2"),
            PBKDF2.replace("i=100000,l=32", "rounds=100000"),
            PBKDF2.replace("i=100000", "i=lots"),
        ] {
            assert_finding(
                &simple("pbkdf2", &bad, "utf8"),
                code::PATTERN,
                "custom_password_hash.hash.value",
            );
        }
        // Without l= Auth0 derives 64 bytes, which a 32-byte hash can never equal.
        assert_finding(
            &simple("pbkdf2", &PBKDF2.replace(",l=32", ""), "utf8"),
            code::INVALID_FORMAT,
            "custom_password_hash.hash.value",
        );
    }

    #[test]
    fn scrypt_needs_keylen_and_sane_parameters() {
        assert_clean(&scrypt(json!({})));
        assert_clean(&scrypt(
            json!({ "cost": 16384, "blockSize": 8, "parallelization": 1 }),
        ));
        let mut no_keylen = scrypt(json!({}));
        no_keylen["custom_password_hash"]
            .as_object_mut()
            .map(|c| c.remove("keylen"));
        assert_finding(
            &no_keylen,
            code::OBJECT_REQUIRED,
            "custom_password_hash.keylen",
        );
        assert_finding(
            &scrypt(json!({ "keylen": 0 })),
            code::MINIMUM,
            "custom_password_hash.keylen",
        );
        assert_finding(
            &scrypt(json!({ "cost": 1 })),
            code::MINIMUM,
            "custom_password_hash.cost",
        );
        assert_finding(
            &scrypt(json!({ "cost": 1000 })),
            code::INVALID_FORMAT,
            "custom_password_hash.cost",
        );
        assert_finding(
            &scrypt(json!({ "blockSize": 0 })),
            code::MINIMUM,
            "custom_password_hash.blockSize",
        );
        assert_finding(
            &scrypt(json!({ "parallelization": -1 })),
            code::MINIMUM,
            "custom_password_hash.parallelization",
        );
        assert_finding(
            &scrypt(json!({ "cost": 1e300 })),
            code::MAXIMUM,
            "custom_password_hash.cost",
        );
        assert_finding(
            &scrypt(json!({ "cost": u64::MAX })),
            code::MAXIMUM,
            "custom_password_hash.cost",
        );
        assert_finding(
            &scrypt(json!({ "keylen": -1e300 })),
            code::MINIMUM,
            "custom_password_hash.keylen",
        );
        // The hash must be keylen bytes long.
        assert_finding(
            &scrypt(json!({ "keylen": 32 })),
            code::INVALID_FORMAT,
            "custom_password_hash.hash.value",
        );
        let utf8 = scrypt(json!({ "hash": { "value": "x", "encoding": "utf8" } }));
        assert_finding(
            &utf8,
            code::ENUM_MISMATCH,
            "custom_password_hash.hash.encoding",
        );
    }

    #[test]
    fn scrypt_params_only_for_scrypt() {
        for param in SCRYPT_PARAMS {
            let mut value = json!({ "algorithm": "sha256", "hash": { "value": SHA256_HEX, "encoding": "hex" } });
            value[param.name] = json!(16);
            let path = format!("custom_password_hash.{}", param.name);
            assert_finding(&cph(value), code::NOT_PASSED, &path);
        }
    }

    #[test]
    fn integer_params_read_like_javascript() {
        assert_eq!(integer_param(&sonic_rs::json!(8)), IntegerParam::Value(8));
        assert_eq!(integer_param(&sonic_rs::json!(8.0)), IntegerParam::Value(8));
        assert_eq!(
            integer_param(&sonic_rs::json!(1.5)),
            IntegerParam::NotInteger
        );
        assert_eq!(
            integer_param(&sonic_rs::json!(MAX_SAFE_INTEGER + 1)),
            IntegerParam::OutOfRange { negative: false }
        );
        assert_eq!(
            integer_param(&sonic_rs::json!(i64::MIN)),
            IntegerParam::OutOfRange { negative: true }
        );
        assert_eq!(
            integer_param(&sonic_rs::json!("8")),
            IntegerParam::NotInteger
        );
    }

    #[test]
    fn decoders_accept_what_auth0_accepts() {
        assert_eq!(hex_len("DEADbeef"), Ok(4));
        assert!(hex_len("abc").is_err());
        assert_eq!(base64_len("YWJj"), Ok(3));
        assert_eq!(base64_len("YWI="), Ok(2));
        assert_eq!(base64_len("YWI"), Ok(2));
        assert_eq!(base64_len("-_-_"), Ok(3));
        assert!(base64_len("YWI=x").is_err());
        assert!(base64_len("Y").is_err());
        assert!(base64_len("YW==").is_ok());
        assert!(base64_len("YW=").is_err());
        assert!(base64_len("Y===").is_err());
        assert!(base64_len("YW I=").is_err());
        // The two alphabets and nothing else, by character: 64 + 2 URL-safe ones.
        let alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/-_";
        for c in (0..=0x7f_u8).map(char::from).chain(['é', '€', '\u{ff}']) {
            let value = format!("YW{c}j");
            assert_eq!(
                base64_len(&value).is_ok(),
                alphabet.contains(c),
                "{value:?}"
            );
        }
    }

    #[test]
    fn no_message_contains_a_secret() {
        let key = "KEY-MATERIAL-123";
        let user = cph(json!({
            "algorithm": "hmac",
            "hash": { "value": "HASH-MATERIAL-456", "encoding": "hex", "digest": "sha256", "key": { "value": key, "encoding": "hex" } },
            "salt": { "value": "SALT-MATERIAL-789", "encoding": "base64" },
            "keylen": 3
        }));
        let violations = super::super::testkit::check(&user);
        assert!(violations.len() >= 3, "{violations:?}");
        for v in &violations {
            for secret in [key, "HASH-MATERIAL-456", "SALT-MATERIAL-789"] {
                assert!(!v.message.contains(secret), "{v:?}");
            }
        }
        let found = findings(&user);
        assert!(found
            .iter()
            .any(|(c, p)| c == code::NOT_PASSED && p == "custom_password_hash.keylen"));
    }
}
