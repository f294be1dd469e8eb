//! When a known password does not verify: try the plausible variants of the record's declared
//! parameters, one parameter at a time from a fixed list, and name the one that verifies.
//!
//! Each variant is the record with one parameter changed, read and verified like any record,
//! so the doctor can never disagree with the verifier. Cheap variants come first; the costly
//! ones (PBKDF2 iteration counts) last, and the search stops at the first that verifies.

use serde_json::{Map, Value};

use crate::encoding::{BinaryEncoding, PasswordEncoding};
use crate::facts::{self, Digest};
use crate::stored::parse_phc;
use crate::verify::{check_with, HmacSalt, Reading};

/// PBKDF2 iteration counts of common frameworks' defaults, cheapest first: ASP.NET Identity v2
/// (1000) and v3 (10000, later 100000), Keycloak (27500, later 210000), passlib (29000), Django
/// (150000 … 1000000 by version), Werkzeug (150000, 260000, 600000), OWASP (210000, 310000, 600000).
pub const PBKDF2_ITERATIONS: &[u32] = &[
    1_000, 10_000, 27_500, 29_000, 100_000, 150_000, 210_000, 260_000, 310_000, 600_000, 1_000_000,
];

/// PBKDF2 digests worth trying when the declared one fails (what frameworks use).
const PBKDF2_DIGESTS: &[&str] = &["sha1", "sha256", "sha512"];

/// Password encodings worth trying: `ascii`/`binary` write what `latin1` writes, `ucs2` is `utf16le`.
const PASSWORD_ENCODINGS: &[PasswordEncoding] = &[
    PasswordEncoding::Utf8,
    PasswordEncoding::Utf16le,
    PasswordEncoding::Latin1,
];

/// scrypt parameters worth trying: Node's and Auth0's defaults and common library choices.
const SCRYPT_COSTS: &[u64] = &[1_024, 16_384, 32_768, 65_536, 131_072];
const SCRYPT_BLOCK_SIZES: &[u64] = &[1, 8, 16];
const SCRYPT_PARALLELIZATIONS: &[u64] = &[1, 2];

const HMAC_SALT_IGNORED: &str = "salt (with hmac)";

/// One parameter value under which the password verifies.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finding {
    /// The record's parameter, as the import file names it (`salt.position`, `hash.value i=`).
    pub parameter: String,
    pub verifies_with: String,
    pub declared: String,
}

impl Finding {
    /// "verifies with salt.position = suffix; your records declare prefix".
    pub fn sentence(&self) -> String {
        format!(
            "verifies with {} = {}; your records declare {}",
            self.parameter, self.verifies_with, self.declared
        )
    }
}

/// What the doctor found, and what it tried (parameter and the values tried, in order).
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Diagnosis {
    pub finding: Option<Finding>,
    pub tried: Vec<(String, Vec<String>)>,
}

impl Diagnosis {
    /// "tried: salt.position (suffix); password.encoding (utf16le, latin1); …".
    pub fn tried_summary(&self) -> String {
        let parts: Vec<String> = self
            .tried
            .iter()
            .map(|(parameter, values)| format!("{parameter} ({})", values.join(", ")))
            .collect();
        if parts.is_empty() {
            "nothing to vary for this algorithm".to_string()
        } else {
            parts.join("; ")
        }
    }
}

/// One candidate: the parameter it changes, its value, what the record declares, and the record
/// with that change (plus the reading to verify it under).
struct Variant {
    parameter: String,
    value: String,
    declared: String,
    record: Value,
    reading: Reading,
}

/// Tries the variants of `record`'s parameters for `password` (one that did not verify as
/// declared) and returns the first that verifies, with what was tried up to it.
pub fn diagnose(record: &Value, password: &str) -> Diagnosis {
    let mut diagnosis = Diagnosis::default();
    for variant in variants(record) {
        match diagnosis.tried.last_mut() {
            Some((parameter, values)) if *parameter == variant.parameter => {
                values.push(variant.value.clone())
            }
            _ => diagnosis
                .tried
                .push((variant.parameter.clone(), vec![variant.value.clone()])),
        }
        if check_with(&variant.record, password, variant.reading) == Ok(true) {
            diagnosis.finding = Some(Finding {
                parameter: variant.parameter,
                verifies_with: variant.value,
                declared: variant.declared,
            });
            break;
        }
    }
    diagnosis
}

/// The variants of `record`, in the order they are tried (a fixed list per algorithm).
fn variants(record: &Value) -> Vec<Variant> {
    let Some(cph) = record
        .get("custom_password_hash")
        .and_then(Value::as_object)
    else {
        return Vec::new();
    };
    let algorithm = cph.get("algorithm").and_then(Value::as_str).unwrap_or("");
    let mut out = Vec::new();
    let mut push = |parameter: &str,
                    value: String,
                    declared: String,
                    change: &dyn Fn(&mut Map<String, Value>)| {
        let mut changed = record.clone();
        if let Some(c) = changed
            .get_mut("custom_password_hash")
            .and_then(Value::as_object_mut)
        {
            change(c);
        }
        out.push(Variant {
            parameter: parameter.to_string(),
            value,
            declared,
            record: changed,
            reading: Reading::default(),
        });
    };
    let salt = cph.get("salt").and_then(Value::as_object);
    let takes_position = matches!(
        algorithm,
        "bcrypt" | "hmac" | "md4" | "md5" | "sha1" | "sha256" | "sha512"
    );

    // 1. Where the salt goes.
    if let (Some(salt), true) = (salt, takes_position) {
        let declared = salt
            .get("position")
            .and_then(Value::as_str)
            .unwrap_or("prefix");
        let other = if declared == "suffix" {
            "prefix"
        } else {
            "suffix"
        };
        push("salt.position", other.into(), declared.into(), &|c| {
            set(c, &["salt", "position"], other)
        });
    }
    // 2. How the salt's text becomes bytes.
    if let Some(salt) = salt {
        let declared = salt
            .get("encoding")
            .and_then(Value::as_str)
            .unwrap_or("utf8");
        let value = salt.get("value").and_then(Value::as_str).unwrap_or("");
        for encoding in BinaryEncoding::ALL {
            if encoding.name() != declared && encoding.decode(value).is_ok() {
                push(
                    "salt.encoding",
                    encoding.name().into(),
                    declared.into(),
                    &|c| set(c, &["salt", "encoding"], encoding.name()),
                );
            }
        }
    }
    // 3. How the hash's text becomes bytes (the digest algorithms; the others take utf8 only).
    let hash = cph.get("hash").and_then(Value::as_object);
    if matches!(
        algorithm,
        "hmac" | "md4" | "md5" | "sha1" | "sha256" | "sha512" | "scrypt"
    ) {
        let declared = hash
            .and_then(|h| h.get("encoding"))
            .and_then(Value::as_str)
            .unwrap_or("(none)");
        let value = hash
            .and_then(|h| h.get("value"))
            .and_then(Value::as_str)
            .unwrap_or("");
        for encoding in [BinaryEncoding::Hex, BinaryEncoding::Base64] {
            if encoding.name() != declared && encoding.decode(value).is_ok() {
                push(
                    "hash.encoding",
                    encoding.name().into(),
                    declared.into(),
                    &|c| set(c, &["hash", "encoding"], encoding.name()),
                );
            }
        }
    }
    // 4. How the typed password becomes bytes.
    let declared_password = cph
        .get("password")
        .and_then(|p| p.get("encoding"))
        .and_then(Value::as_str)
        .unwrap_or("utf8");
    let declared_canonical = PasswordEncoding::parse(declared_password).map(|e| match e {
        PasswordEncoding::Ascii => PasswordEncoding::Latin1,
        e => e,
    });
    for encoding in PASSWORD_ENCODINGS {
        if Some(*encoding) != declared_canonical {
            push(
                "password.encoding",
                encoding.name().into(),
                declared_password.into(),
                &|c| {
                    c.insert(
                        "password".into(),
                        serde_json::json!({"encoding": encoding.name()}),
                    );
                },
            );
        }
    }
    // 5. How the HMAC key's text becomes bytes.
    if algorithm == "hmac" {
        let key = hash.and_then(|h| h.get("key")).and_then(Value::as_object);
        let declared = key
            .and_then(|k| k.get("encoding"))
            .and_then(Value::as_str)
            .unwrap_or("utf8");
        let value = key
            .and_then(|k| k.get("value"))
            .and_then(Value::as_str)
            .unwrap_or("");
        for encoding in BinaryEncoding::ALL {
            if encoding.name() != declared && encoding.decode(value).is_ok() {
                push(
                    "hash.key.encoding",
                    encoding.name().into(),
                    declared.into(),
                    &|c| set(c, &["hash", "key", "encoding"], encoding.name()),
                );
            }
        }
    }
    // 6. The salt left out: bcrypt made from the password alone, or a salt the source kept
    // elsewhere. With hmac that is the reading we did not choose (README, "Choices").
    if algorithm == "hmac" && salt.is_some() {
        // The record as it is, read the other way (set below, once `push` is done with `out`).
        push(
            HMAC_SALT_IGNORED,
            "not part of the HMAC message".into(),
            "a salt that, as we read Auth0, is part of it".into(),
            &|_| {},
        );
    } else if salt.is_some() && algorithm != "scrypt" {
        push(
            "salt",
            "none (the hash was made from the password alone)".into(),
            "a salt object".into(),
            &|c| {
                c.remove("salt");
            },
        );
    }
    // 7. The digest: others of the same output size (a hash of another size cannot match).
    if algorithm == "hmac" {
        let declared = hash
            .and_then(|h| h.get("digest"))
            .and_then(Value::as_str)
            .unwrap_or("");
        let size = facts::hmac_digest(declared).map(Digest::output_bytes);
        for d in facts::HMAC_DIGESTS {
            let name = d.name();
            if name != declared && Some(d.output_bytes()) == size {
                push("hash.digest", name.into(), declared.into(), &|c| {
                    set(c, &["hash", "digest"], name)
                });
            }
        }
    }
    if let Some(declared) = facts::plain_digest_algorithm(algorithm) {
        for (name, d) in facts::PLAIN_DIGEST_ALGORITHMS {
            if *d != declared && d.output_bytes() == declared.output_bytes() {
                push("algorithm", (*name).into(), algorithm.into(), &|c| {
                    c.insert("algorithm".into(), Value::String((*name).into()));
                });
            }
        }
    }
    if algorithm == "pbkdf2" {
        pbkdf2_variants(hash, &mut push);
    }
    if algorithm == "scrypt" {
        scrypt_variants(cph, hash, &mut push);
    }
    for variant in out.iter_mut().filter(|v| v.parameter == HMAC_SALT_IGNORED) {
        variant.reading = Reading {
            hmac_salt: HmacSalt::Ignored,
        };
    }
    // PBKDF2 iteration counts last: they cost the most.
    if algorithm == "pbkdf2" {
        pbkdf2_iteration_variants(record, hash, &mut out);
    }
    out
}

type Push<'a> = dyn FnMut(&str, String, String, &dyn Fn(&mut Map<String, Value>)) + 'a;

/// `hash.value` of a pbkdf2 record with its PHC id or parameters replaced.
fn rebuild_pbkdf2(
    value: &str,
    digest: Option<&str>,
    iterations: Option<u32>,
    key_bytes: Option<usize>,
) -> Option<String> {
    let phc = parse_phc(value)?;
    let digest = digest.or_else(|| phc.id.strip_prefix("pbkdf2-"))?;
    let mut params: Vec<String> = Vec::new();
    let mut seen_i = false;
    let mut seen_l = false;
    for (name, v) in &phc.params {
        match *name {
            "i" => {
                seen_i = true;
                params.push(format!(
                    "i={}",
                    iterations.map_or(v.to_string(), |i| i.to_string())
                ));
            }
            "l" => {
                seen_l = true;
                params.push(format!(
                    "l={}",
                    key_bytes.map_or(v.to_string(), |l| l.to_string())
                ));
            }
            _ => params.push(format!("{name}={v}")),
        }
    }
    if let (false, Some(i)) = (seen_i, iterations) {
        params.insert(0, format!("i={i}"));
    }
    if let (false, Some(l)) = (seen_l, key_bytes) {
        params.push(format!("l={l}"));
    }
    Some(format!(
        "$pbkdf2-{digest}${}${}${}",
        params.join(","),
        phc.salt,
        phc.hash
    ))
}

fn pbkdf2_parts(hash: Option<&Map<String, Value>>) -> Option<(String, String, u32, usize, usize)> {
    let value = hash?.get("value")?.as_str()?;
    let phc = parse_phc(value)?;
    let digest = phc.id.strip_prefix("pbkdf2-")?.to_string();
    let param = |n: &str| phc.params.iter().find(|(k, _)| *k == n).map(|(_, v)| *v);
    let iterations = param("i")
        .and_then(|i| i.parse().ok())
        .unwrap_or(facts::PBKDF2_DEFAULT_ITERATIONS);
    let key_bytes = param("l")
        .and_then(|l| l.parse().ok())
        .unwrap_or(facts::PBKDF2_DEFAULT_KEY_BYTES);
    let stored = crate::encoding::from_phc_b64(phc.hash).ok()?.len();
    Some((value.to_string(), digest, iterations, key_bytes, stored))
}

fn pbkdf2_variants(hash: Option<&Map<String, Value>>, push: &mut Push<'_>) {
    let Some((value, digest, _, key_bytes, stored)) = pbkdf2_parts(hash) else {
        return;
    };
    let declared_digest = facts::pbkdf2_digest(&digest);
    for candidate in PBKDF2_DIGESTS {
        if facts::pbkdf2_digest(candidate) != declared_digest {
            if let Some(new) = rebuild_pbkdf2(&value, Some(candidate), None, None) {
                push(
                    "the pbkdf2 digest ($pbkdf2-<digest>$)",
                    (*candidate).into(),
                    digest.clone(),
                    &|c| set(c, &["hash", "value"], &new),
                );
            }
        }
    }
    // The stored key is shorter or longer than `l` says (l=64 is the default when omitted).
    if key_bytes != stored {
        if let Some(new) = rebuild_pbkdf2(&value, None, None, Some(stored)) {
            push(
                "l= in hash.value (key length)",
                stored.to_string(),
                key_bytes.to_string(),
                &|c| set(c, &["hash", "value"], &new),
            );
        }
    }
}

fn pbkdf2_iteration_variants(
    record: &Value,
    hash: Option<&Map<String, Value>>,
    out: &mut Vec<Variant>,
) {
    let Some((value, _, iterations, _, _)) = pbkdf2_parts(hash) else {
        return;
    };
    for &candidate in PBKDF2_ITERATIONS {
        if candidate == iterations {
            continue;
        }
        let Some(new) = rebuild_pbkdf2(&value, None, Some(candidate), None) else {
            continue;
        };
        let mut changed = record.clone();
        if let Some(c) = changed
            .get_mut("custom_password_hash")
            .and_then(Value::as_object_mut)
        {
            set(c, &["hash", "value"], &new);
        }
        out.push(Variant {
            parameter: "i= in hash.value (iterations)".into(),
            value: candidate.to_string(),
            declared: iterations.to_string(),
            record: changed,
            reading: Reading::default(),
        });
    }
}

fn scrypt_variants(
    cph: &Map<String, Value>,
    hash: Option<&Map<String, Value>>,
    push: &mut Push<'_>,
) {
    let declared =
        |name: &str, default: u64| cph.get(name).and_then(Value::as_u64).unwrap_or(default);
    // The key length is the stored hash's length, when it decodes.
    let stored_len = hash.and_then(|h| {
        let encoding = BinaryEncoding::parse(h.get("encoding")?.as_str()?)?;
        encoding
            .decode(h.get("value")?.as_str()?)
            .ok()
            .map(|b| b.len())
    });
    let keylen = cph.get("keylen").and_then(Value::as_u64);
    if let Some(stored) = stored_len.filter(|&s| Some(s as u64) != keylen) {
        push(
            "keylen",
            stored.to_string(),
            keylen.map_or("(none)".into(), |k| k.to_string()),
            &|c| {
                c.insert("keylen".into(), Value::from(stored));
            },
        );
    }
    let params: [(&str, u64, &[u64]); 3] = [
        ("cost", facts::SCRYPT_DEFAULT_COST, SCRYPT_COSTS),
        (
            "blockSize",
            u64::from(facts::SCRYPT_DEFAULT_BLOCK_SIZE),
            SCRYPT_BLOCK_SIZES,
        ),
        (
            "parallelization",
            u64::from(facts::SCRYPT_DEFAULT_PARALLELIZATION),
            SCRYPT_PARALLELIZATIONS,
        ),
    ];
    for (name, default, candidates) in params {
        let current = declared(name, default);
        for &candidate in candidates {
            if candidate != current {
                push(name, candidate.to_string(), current.to_string(), &|c| {
                    c.insert(name.into(), Value::from(candidate));
                });
            }
        }
    }
}

/// Sets the string at `path` inside `object`, making the objects on the way.
fn set(object: &mut Map<String, Value>, path: &[&str], value: &str) {
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    let mut at = object;
    for key in parents {
        let entry = at
            .entry((*key).to_string())
            .or_insert_with(|| Value::Object(Map::new()));
        if !entry.is_object() {
            *entry = Value::Object(Map::new());
        }
        let Some(next) = entry.as_object_mut() else {
            return;
        };
        at = next;
    }
    at.insert((*last).to_string(), Value::String(value.to_string()));
}
