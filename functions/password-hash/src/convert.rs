//! Stored hash strings of legacy systems → Auth0's `password_hash` or `custom_password_hash`.
//! One pure function per source format; formats Auth0 cannot import are recognised and refused
//! with what to do instead. Errors never quote the stored string.

use serde_json::{json, Map, Value};

use crate::encoding::{from_phc_b64, to_base64, to_hex, to_phc_b64, BinaryEncoding};
use crate::facts::{self, Digest};
use crate::stored::SaltPosition;

/// A legacy source format, by the name the CLI and scripts use (`--from NAME`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LegacyFormat {
    Bcrypt,
    Django,
    AspnetIdentity,
    /// A Keycloak credential object as JSON, with `secretData` and `credentialData`.
    Keycloak,
    Werkzeug,
    Passlib,
    Php,
    Ldap,
    FirebaseScrypt,
    Phpass,
    Drupal7,
}

impl LegacyFormat {
    pub const ALL: [LegacyFormat; 11] = [
        LegacyFormat::Bcrypt,
        LegacyFormat::Django,
        LegacyFormat::AspnetIdentity,
        LegacyFormat::Keycloak,
        LegacyFormat::Werkzeug,
        LegacyFormat::Passlib,
        LegacyFormat::Php,
        LegacyFormat::Ldap,
        LegacyFormat::FirebaseScrypt,
        LegacyFormat::Phpass,
        LegacyFormat::Drupal7,
    ];

    pub fn name(self) -> &'static str {
        match self {
            LegacyFormat::Bcrypt => "bcrypt",
            LegacyFormat::Django => "django",
            LegacyFormat::AspnetIdentity => "aspnet-identity",
            LegacyFormat::Keycloak => "keycloak",
            LegacyFormat::Werkzeug => "werkzeug",
            LegacyFormat::Passlib => "passlib",
            LegacyFormat::Php => "php",
            LegacyFormat::Ldap => "ldap",
            LegacyFormat::FirebaseScrypt => "firebase-scrypt",
            LegacyFormat::Phpass => "phpass",
            LegacyFormat::Drupal7 => "drupal7",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|f| f.name() == name)
    }
}

/// The user-object members that carry a converted hash: `{"password_hash": …}` or
/// `{"custom_password_hash": {…}}`, to merge into an import record.
#[derive(Clone, PartialEq, Eq)]
pub struct Fragment(Map<String, Value>);

impl Fragment {
    fn password_hash(bcrypt: &str) -> Self {
        let mut map = Map::new();
        map.insert("password_hash".into(), Value::String(bcrypt.to_string()));
        Fragment(map)
    }

    fn custom(custom_password_hash: Value) -> Self {
        let mut map = Map::new();
        map.insert("custom_password_hash".into(), custom_password_hash);
        Fragment(map)
    }

    pub fn members(&self) -> &Map<String, Value> {
        &self.0
    }

    pub fn into_value(self) -> Value {
        Value::Object(self.0)
    }

    /// `record` with this fragment's members set (any other hash member removed).
    pub fn merge_into(&self, record: &mut Map<String, Value>) {
        record.remove("password_hash");
        record.remove("custom_password_hash");
        for (k, v) in &self.0 {
            record.insert(k.clone(), v.clone());
        }
    }
}

// A fragment holds a hash: `{:?}` names its members only.
impl std::fmt::Debug for Fragment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries(self.0.keys()).finish()
    }
}

/// What to do with users whose hashes Auth0 cannot import.
pub const INSTEAD: &str = "import these users without a password hash and have them reset their \
password, or keep the legacy store behind an Auth0 custom database connection with import mode \
on (automatic migration), whose login script verifies this format and moves each user at their \
first login";

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ConvertError {
    /// A format recognised, that Auth0 has no algorithm for.
    #[error("{scheme} is not a hash Auth0 can import ({why}): {INSTEAD}")]
    Unsupported {
        scheme: &'static str,
        why: &'static str,
    },
    #[error("not a {format} hash: {why}")]
    Malformed { format: &'static str, why: String },
}

fn malformed(format: &'static str, why: impl Into<String>) -> ConvertError {
    ConvertError::Malformed {
        format,
        why: why.into(),
    }
}

/// Converts one stored hash of `format` into Auth0's import members.
pub fn convert(format: LegacyFormat, stored: &str) -> Result<Fragment, ConvertError> {
    let stored = stored.trim();
    match format {
        LegacyFormat::Bcrypt => bcrypt(stored, "bcrypt"),
        LegacyFormat::Django => django(stored),
        LegacyFormat::AspnetIdentity => aspnet_identity(stored),
        LegacyFormat::Keycloak => keycloak(stored),
        LegacyFormat::Werkzeug => werkzeug(stored),
        LegacyFormat::Passlib => passlib(stored),
        LegacyFormat::Php => php(stored),
        LegacyFormat::Ldap => ldap(stored),
        LegacyFormat::FirebaseScrypt => firebase_scrypt(stored),
        LegacyFormat::Phpass => phpass(stored),
        LegacyFormat::Drupal7 => drupal7(stored),
    }
}

/// A bare digest with its salt kept apart (a column beside the hash).
#[derive(Clone, Copy, Debug)]
pub struct BareSalt<'a> {
    pub value: &'a str,
    pub encoding: BinaryEncoding,
    pub position: SaltPosition,
}

/// A bare hex or base64 digest of one of Auth0's plain algorithms (md4, md5, sha1, sha256,
/// sha512), with an optional separate salt. The encoding is told from the text and the length.
pub fn convert_digest(
    algorithm: &str,
    digest: &str,
    salt: Option<BareSalt<'_>>,
) -> Result<Fragment, ConvertError> {
    const FORMAT: &str = "bare digest";
    let which = facts::plain_digest_algorithm(algorithm).ok_or_else(|| {
        malformed(
            FORMAT,
            "the algorithm must be one of md4, md5, sha1, sha256, sha512",
        )
    })?;
    let digest = digest.trim();
    let bytes = which.output_bytes();
    let encoding = if digest.len() == bytes * 2 && digest.bytes().all(|b| b.is_ascii_hexdigit()) {
        "hex"
    } else if BinaryEncoding::Base64
        .decode(digest)
        .is_ok_and(|d| d.len() == bytes)
    {
        "base64"
    } else {
        return Err(malformed(
            FORMAT,
            format!(
                "it is neither {} hex digits nor base64 of {bytes} bytes, the size of {algorithm}",
                bytes * 2
            ),
        ));
    };
    let mut cph = json!({"algorithm": algorithm, "hash": {"value": digest, "encoding": encoding}});
    if let Some(salt) = salt {
        salt.encoding
            .decode(salt.value)
            .map_err(|p| malformed(FORMAT, format!("the salt {p}")))?;
        cph["salt"] = json!({
            "value": salt.value,
            "encoding": salt.encoding.name(),
            "position": salt.position.name(),
        });
    }
    Ok(Fragment::custom(cph))
}

// ---- bcrypt ---------------------------------------------------------------------------------

fn bcrypt(stored: &str, format: &'static str) -> Result<Fragment, ConvertError> {
    if stored.starts_with("$2x$") || stored.starts_with("$2$") {
        return Err(ConvertError::Unsupported {
            scheme: "bcrypt $2x$/$2$",
            why: "Auth0 takes $2a$, $2b$ and $2y$ only; $2x$ marks hashes made by crypt_blowfish's 8-bit bug",
        });
    }
    let version = ["$2a$", "$2b$", "$2y$"]
        .into_iter()
        .find(|p| stored.starts_with(p))
        .ok_or_else(|| malformed(format, "a bcrypt hash starts with $2a$, $2b$ or $2y$"))?;
    let rest = &stored[4..];
    let cost = rest
        .get(..2)
        .and_then(|c| c.parse::<u32>().ok())
        .filter(|c| (4..=31).contains(c));
    let tail_ok = rest.len() == 56
        && rest.as_bytes()[2] == b'$'
        && rest[3..]
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'/');
    let Some(cost) = cost.filter(|_| tail_ok) else {
        return Err(malformed(
            format,
            "a bcrypt hash is 60 characters: $2b$, a cost 04-31, $, then 53 of [./A-Za-z0-9]",
        ));
    };
    // Auth0's own field takes exactly $2a$/$2b$ at cost 10 (facts §4.4); anything else goes
    // through custom_password_hash, which takes $2y$ and any cost.
    if cost == 10 && version != "$2y$" {
        Ok(Fragment::password_hash(stored))
    } else {
        Ok(custom_utf8("bcrypt", stored))
    }
}

fn custom_utf8(algorithm: &str, value: &str) -> Fragment {
    Fragment::custom(json!({"algorithm": algorithm, "hash": {"value": value, "encoding": "utf8"}}))
}

// ---- PHC builders ---------------------------------------------------------------------------

fn pbkdf2_fragment(
    format: &'static str,
    digest: Digest,
    iterations: u64,
    salt: &[u8],
    hash: &[u8],
) -> Result<Fragment, ConvertError> {
    // An empty salt or hash makes an empty PHC field, which Auth0's rules refuse (found by the
    // `convert` fuzz target: passlib's "$pbkdf2-sha256$1$$…").
    if salt.is_empty() {
        return Err(malformed(format, "the salt is empty"));
    }
    if hash.is_empty() {
        return Err(malformed(format, "the hash is empty"));
    }
    let value = format!(
        "$pbkdf2-{}$i={iterations},l={}${}${}",
        digest.name(),
        hash.len(),
        to_phc_b64(salt),
        to_phc_b64(hash)
    );
    Ok(custom_utf8("pbkdf2", &value))
}

fn argon2_fragment(stored_phc: &str, format: &'static str) -> Result<Fragment, ConvertError> {
    // Read by the PHC parser the argon2 crate verifies with (what `check` will read), not our
    // lenient field splitter: that one took "$argon2i$v=19-m=256,…" (no `$` after the
    // version) as parameters, which Auth0's rules refuse (found by the `convert` fuzz target).
    let ok = ["$argon2id$", "$argon2i$", "$argon2d$"]
        .iter()
        .any(|p| stored_phc.starts_with(p))
        && crate::stored::parse_phc(stored_phc).is_some()
        && argon2::password_hash::phc::PasswordHash::new(stored_phc).is_ok_and(|phc| {
            phc.salt.is_some()
                && phc.hash.is_some()
                // Auth0 asks for m, t and p written out (facts §4.6), not the crate's defaults.
                && ["m", "t", "p"]
                    .iter()
                    .all(|&name| phc.params.get_decimal(name).is_some())
                && argon2::Params::try_from(&phc).is_ok()
        });
    if !ok {
        return Err(malformed(
            format,
            "an argon2 hash is a PHC string $argon2id$v=19$m=..,t=..,p=..$<salt>$<hash>",
        ));
    }
    Ok(custom_utf8("argon2", stored_phc))
}

/// The largest integer a JavaScript double holds exactly (`Number.MAX_SAFE_INTEGER`).
const MAX_EXACT_NUMBER: u64 = (1 << 53) - 1;

#[allow(clippy::too_many_arguments)]
fn scrypt_fragment(
    format: &'static str,
    salt_value: &str,
    salt_encoding: &str,
    hash_value: &str,
    hash_encoding: &str,
    keylen: usize,
    cost: u64,
    block_size: u64,
    parallelization: u64,
) -> Result<Fragment, ConvertError> {
    // As for pbkdf2: Auth0 refuses an empty salt, and a keylen of 0 (found by the fuzz target:
    // passlib's "$scrypt$ln=6,r=8,p=1$<salt>$" with no hash).
    if salt_value.is_empty() {
        return Err(malformed(format, "the salt is empty"));
    }
    if hash_value.is_empty() || keylen == 0 {
        return Err(malformed(format, "the hash is empty"));
    }
    // Auth0 reads numbers as JavaScript doubles: a parameter above 2^53 - 1 would not be the
    // one the hash was made with (found by the fuzz target: Django's scrypt with p=10^16+2).
    if [cost, block_size, parallelization]
        .iter()
        .any(|&n| n > MAX_EXACT_NUMBER)
    {
        return Err(malformed(
            format,
            "an scrypt parameter is above 2^53 - 1, more than Auth0 reads exactly",
        ));
    }
    Ok(Fragment::custom(json!({
        "algorithm": "scrypt",
        "hash": {"value": hash_value, "encoding": hash_encoding},
        "salt": {"value": salt_value, "encoding": salt_encoding},
        "keylen": keylen,
        "cost": cost,
        "blockSize": block_size,
        "parallelization": parallelization,
    })))
}

fn number(text: &str, format: &'static str, what: &str) -> Result<u64, ConvertError> {
    text.parse::<u64>()
        .ok()
        .filter(|&n| n > 0)
        .ok_or_else(|| malformed(format, format!("the {what} is not a positive number")))
}

fn scrypt_cost(n: u64, format: &'static str) -> Result<u64, ConvertError> {
    if n >= 2 && n.is_power_of_two() {
        Ok(n)
    } else {
        Err(malformed(format, "the scrypt N is not a power of two"))
    }
}

// ---- Django ---------------------------------------------------------------------------------

fn django(stored: &str) -> Result<Fragment, ConvertError> {
    const F: &str = "django";
    if stored.starts_with('!') {
        return Err(ConvertError::Unsupported {
            scheme: "Django's unusable password (!)",
            why: "the user has no password to import",
        });
    }
    // UnsaltedMD5PasswordHasher's own form: 32 hex digits, no prefix.
    if stored.len() == 32 && stored.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Ok(Fragment::custom(
            json!({"algorithm": "md5", "hash": {"value": stored, "encoding": "hex"}}),
        ));
    }
    let (algorithm, rest) = stored
        .split_once('$')
        .ok_or_else(|| malformed(F, "a Django hash is <algorithm>$<fields>"))?;
    match algorithm {
        "pbkdf2_sha256" | "pbkdf2_sha1" => {
            let digest = if algorithm == "pbkdf2_sha256" {
                Digest::Sha256
            } else {
                Digest::Sha1
            };
            let [iterations, salt, hash] = fields::<3>(rest, F, "pbkdf2_sha256$<iterations>$<salt>$<base64 hash>")?;
            let hash = BinaryEncoding::Base64
                .decode(hash)
                .map_err(|_| malformed(F, "the hash field is not base64"))?;
            // Django feeds the salt's text to PBKDF2 as its UTF-8 bytes.
            pbkdf2_fragment(F, digest,
                number(iterations, F, "iteration count")?,
                salt.as_bytes(),
                &hash,
            )
        }
        // Django writes "argon2" then argon2-cffi's PHC string without its leading "$".
        "argon2" => argon2_fragment(&format!("${rest}"), F),
        "bcrypt" => bcrypt(rest, F),
        "bcrypt_sha256" => Err(ConvertError::Unsupported {
            scheme: "Django bcrypt_sha256",
            why: "bcrypt of the password's SHA-256 hex digest; Auth0 cannot pre-hash the password",
        }),
        "scrypt" => {
            let [n, salt, r, p, hash] = fields::<5>(rest, F, "scrypt$<N>$<salt>$<r>$<p>$<base64 hash>")?;
            let hash_bytes = BinaryEncoding::Base64
                .decode(hash)
                .map_err(|_| malformed(F, "the hash field is not base64"))?;
            let keylen = hash_bytes.len();
            // Canonical base64, whatever padding the stored text had.
            let hash = &to_base64(&hash_bytes);
            scrypt_fragment(F, salt,
                "utf8",
                hash,
                "base64",
                keylen,
                scrypt_cost(number(n, F, "scrypt N")?, F)?,
                number(r, F, "scrypt r")?,
                number(p, F, "scrypt p")?,
            )
        }
        "md5" | "sha1" => {
            let [salt, hex] = fields::<2>(rest, F, "md5$<salt>$<hex digest>")?;
            let bytes = if algorithm == "md5" { 16 } else { 20 };
            if hex.len() != bytes * 2 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(malformed(F, format!("the {algorithm} digest is not {} hex digits", bytes * 2)));
            }
            let mut cph = json!({"algorithm": algorithm, "hash": {"value": hex, "encoding": "hex"}});
            // Salted: digest(salt ‖ password); empty salt: Django's Unsalted*PasswordHasher.
            if !salt.is_empty() {
                cph["salt"] = json!({"value": salt, "encoding": "utf8", "position": "prefix"});
            }
            Ok(Fragment::custom(cph))
        }
        "crypt" => Err(ConvertError::Unsupported {
            scheme: "Django crypt (Unix DES crypt)",
            why: "Auth0 has no crypt(3) algorithm",
        }),
        _ => Err(malformed(
            F,
            "unknown Django algorithm (known: pbkdf2_sha256, pbkdf2_sha1, argon2, bcrypt, bcrypt_sha256, scrypt, md5, sha1)",
        )),
    }
}

/// Exactly `N` `$`-separated fields of `rest`.
fn fields<'a, const N: usize>(
    rest: &'a str,
    format: &'static str,
    layout: &str,
) -> Result<[&'a str; N], ConvertError> {
    let parts: Vec<&str> = rest.split('$').collect();
    <[&str; N]>::try_from(parts).map_err(|_| malformed(format, format!("expected {layout}")))
}

// ---- ASP.NET Identity -----------------------------------------------------------------------

fn aspnet_identity(stored: &str) -> Result<Fragment, ConvertError> {
    const F: &str = "aspnet-identity";
    let blob = BinaryEncoding::Base64
        .decode(stored)
        .map_err(|_| malformed(F, "an ASP.NET Identity hash is base64"))?;
    match blob.split_first() {
        // v2: PBKDF2-HMAC-SHA1, 1000 iterations, 16-byte salt, 32-byte subkey.
        Some((0x00, rest)) if rest.len() == 48 => {
            let (salt, subkey) = rest.split_at(16);
            pbkdf2_fragment(F, Digest::Sha1, 1000, salt, subkey)
        }
        Some((0x00, _)) => Err(malformed(F, "a v2 blob (first byte 0) is 49 bytes")),
        // v3: PRF, iterations and salt length as big-endian u32s, then salt and subkey.
        Some((0x01, rest)) if rest.len() >= 12 => {
            let word =
                |i: usize| u32::from_be_bytes([rest[i], rest[i + 1], rest[i + 2], rest[i + 3]]);
            let digest = match word(0) {
                0 => Digest::Sha1,
                1 => Digest::Sha256,
                2 => Digest::Sha512,
                _ => {
                    return Err(malformed(
                        F,
                        "the v3 PRF is not 0 (SHA1), 1 (SHA256) or 2 (SHA512)",
                    ))
                }
            };
            let iterations = u64::from(word(4));
            let salt_len = usize::try_from(word(8)).unwrap_or(usize::MAX);
            let body = &rest[12..];
            if iterations == 0 || salt_len < 8 || body.len() < salt_len + 16 {
                return Err(malformed(
                    F,
                    "the v3 header does not fit the blob (iterations, salt length, subkey)",
                ));
            }
            let (salt, subkey) = body.split_at(salt_len);
            pbkdf2_fragment(F, digest, iterations, salt, subkey)
        }
        _ => Err(malformed(F, "the first byte is neither 0 (v2) nor 1 (v3)")),
    }
}

// ---- Keycloak -------------------------------------------------------------------------------

fn keycloak(stored: &str) -> Result<Fragment, ConvertError> {
    const F: &str = "keycloak";
    let credential: Value = serde_json::from_str(stored)
        .map_err(|_| malformed(F, "a Keycloak credential is a JSON object"))?;
    // In Keycloak's database and realm exports both members are JSON held in strings.
    let member = |name: &str| -> Result<Value, ConvertError> {
        match credential.get(name) {
            Some(Value::String(text)) => serde_json::from_str(text)
                .map_err(|_| malformed(F, format!("{name} is a string that is not JSON"))),
            Some(v @ Value::Object(_)) => Ok(v.clone()),
            _ => Err(malformed(F, format!("the credential has no {name}"))),
        }
    };
    let secret = member("secretData")?;
    let data = member("credentialData")?;
    let b64 = |name: &str| -> Result<Vec<u8>, ConvertError> {
        secret
            .get(name)
            .and_then(Value::as_str)
            .and_then(|s| BinaryEncoding::Base64.decode(s).ok())
            .ok_or_else(|| malformed(F, format!("secretData.{name} is not base64")))
    };
    let iterations = data
        .get("hashIterations")
        .and_then(Value::as_u64)
        .filter(|&n| n > 0)
        .ok_or_else(|| malformed(F, "credentialData.hashIterations is not a positive number"))?;
    let algorithm = data
        .get("algorithm")
        .and_then(Value::as_str)
        .ok_or_else(|| malformed(F, "credentialData.algorithm is missing"))?;
    let digest = match algorithm {
        "pbkdf2" | "pbkdf2-sha1" => Some(Digest::Sha1),
        "pbkdf2-sha256" => Some(Digest::Sha256),
        "pbkdf2-sha512" => Some(Digest::Sha512),
        _ => None,
    };
    if let Some(digest) = digest {
        return pbkdf2_fragment(F, digest, iterations, &b64("salt")?, &b64("value")?);
    }
    if algorithm != "argon2" {
        return Err(malformed(
            F,
            "credentialData.algorithm is not pbkdf2, pbkdf2-sha1, pbkdf2-sha256, pbkdf2-sha512 or argon2",
        ));
    }
    // Keycloak keeps each argon2 parameter as a one-string list in additionalParameters.
    let param = |name: &str| -> Option<String> {
        let v = data.get("additionalParameters")?.get(name)?;
        match v {
            Value::Array(items) => items.first()?.as_str().map(str::to_string),
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        }
    };
    let kind = match param("type").as_deref() {
        Some("id") | None => "argon2id",
        Some("i") => "argon2i",
        Some("d") => "argon2d",
        Some(_) => return Err(malformed(F, "the argon2 type is not id, i or d")),
    };
    let version = match param("version").as_deref() {
        Some("1.3") | None => 19,
        Some("1.0") => 16,
        Some(_) => return Err(malformed(F, "the argon2 version is not 1.3 or 1.0")),
    };
    let memory = param("memory")
        .and_then(|m| m.parse::<u64>().ok())
        .unwrap_or(7168);
    let parallelism = param("parallelism")
        .and_then(|p| p.parse::<u64>().ok())
        .unwrap_or(1);
    let phc = format!(
        "${kind}$v={version}$m={memory},t={iterations},p={parallelism}${}${}",
        to_phc_b64(&b64("salt")?),
        to_phc_b64(&b64("value")?)
    );
    Ok(custom_utf8("argon2", &phc))
}

// ---- Werkzeug -------------------------------------------------------------------------------

fn werkzeug(stored: &str) -> Result<Fragment, ConvertError> {
    const F: &str = "werkzeug";
    let [method, salt, hex] = fields::<3>(stored, F, "<method>$<salt>$<hex hash>")?;
    let hash = BinaryEncoding::Hex
        .decode(hex)
        .map_err(|_| malformed(F, "the hash field is not hex"))?;
    let parts: Vec<&str> = method.split(':').collect();
    match parts.as_slice() {
        ["pbkdf2", digest, iterations] => {
            let digest = match *digest {
                "sha1" => Digest::Sha1,
                "sha224" => Digest::Sha224,
                "sha256" => Digest::Sha256,
                "sha384" => Digest::Sha384,
                "sha512" => Digest::Sha512,
                "md5" => Digest::Md5,
                _ => return Err(malformed(F, "the pbkdf2 digest is not one Werkzeug offers")),
            };
            pbkdf2_fragment(F, digest,
                number(iterations, F, "iteration count")?,
                salt.as_bytes(),
                &hash,
            )
        }
        ["pbkdf2", _] | ["pbkdf2"] => Err(malformed(
            F,
            "the method does not state its iteration count (pbkdf2:sha256:<iterations>); the Werkzeug version that made it decides it: add it",
        )),
        ["scrypt", n, r, p] => scrypt_fragment(F, salt,
            "utf8",
            hex,
            "hex",
            hash.len(),
            scrypt_cost(number(n, F, "scrypt N")?, F)?,
            number(r, F, "scrypt r")?,
            number(p, F, "scrypt p")?,
        ),
        _ => Err(malformed(
            F,
            "the method is not pbkdf2:<digest>:<iterations> or scrypt:<N>:<r>:<p>",
        )),
    }
}

// ---- passlib --------------------------------------------------------------------------------

/// passlib's "adapted base64": `.` for `+`, no padding.
fn ab64(text: &str) -> Result<Vec<u8>, crate::encoding::DecodeProblem> {
    from_phc_b64(&text.replace('.', "+"))
}

fn passlib(stored: &str) -> Result<Fragment, ConvertError> {
    const F: &str = "passlib";
    if let Some(known) = recognise_unsupported(stored) {
        return Err(known);
    }
    for (prefix, digest) in [
        ("$pbkdf2-sha256$", Digest::Sha256),
        ("$pbkdf2-sha512$", Digest::Sha512),
        ("$pbkdf2$", Digest::Sha1),
    ] {
        if let Some(rest) = stored.strip_prefix(prefix) {
            let [rounds, salt, hash] =
                fields::<3>(rest, F, "$pbkdf2-sha256$<rounds>$<salt>$<hash>")?;
            let salt = ab64(salt).map_err(|_| malformed(F, "the salt is not adapted base64"))?;
            let hash = ab64(hash).map_err(|_| malformed(F, "the hash is not adapted base64"))?;
            return pbkdf2_fragment(F, digest, number(rounds, F, "rounds")?, &salt, &hash);
        }
    }
    if let Some(rest) = stored.strip_prefix("$scrypt$") {
        let [params, salt, hash] =
            fields::<3>(rest, F, "$scrypt$ln=<n>,r=<n>,p=<n>$<salt>$<hash>")?;
        let mut ln = None;
        let mut r = None;
        let mut p = None;
        for pair in params.split(',') {
            match pair.split_once('=') {
                // N = 2^ln must stay a number Auth0 reads exactly (a double: at most 2^53 - 1).
                Some(("ln", v)) => ln = v.parse::<u32>().ok().filter(|&v| (1..=52).contains(&v)),
                // Auth0 takes a blockSize and parallelization of at least 1 (schema minimum).
                Some(("r", v)) => r = v.parse::<u64>().ok().filter(|&v| v > 0),
                Some(("p", v)) => p = v.parse::<u64>().ok().filter(|&v| v > 0),
                _ => return Err(malformed(F, "scrypt parameters are ln=, r= and p=")),
            }
        }
        let (Some(ln), Some(r), Some(p)) = (ln, r, p) else {
            return Err(malformed(F, "scrypt needs ln=, r= and p="));
        };
        let salt_bytes = from_phc_b64(salt).map_err(|_| malformed(F, "the salt is not base64"))?;
        let hash_bytes = from_phc_b64(hash).map_err(|_| malformed(F, "the hash is not base64"))?;
        return scrypt_fragment(
            F,
            &to_hex(&salt_bytes),
            "hex",
            &to_hex(&hash_bytes),
            "hex",
            hash_bytes.len(),
            1u64 << ln,
            r,
            p,
        );
    }
    if stored.starts_with("$2") {
        return bcrypt(stored, F);
    }
    if stored.starts_with("$argon2") {
        return argon2_fragment(stored, F);
    }
    if stored.starts_with('{') {
        return ldap(stored);
    }
    Err(malformed(
        F,
        "not a passlib format this converter knows ($pbkdf2-sha256$, $pbkdf2-sha512$, $pbkdf2$, $scrypt$, bcrypt, argon2, {LDAP})",
    ))
}

/// The unsupported schemes any modular-crypt string may hold.
fn recognise_unsupported(stored: &str) -> Option<ConvertError> {
    let unsupported = |scheme, why| Some(ConvertError::Unsupported { scheme, why });
    if stored.starts_with("$P$") || stored.starts_with("$H$") {
        return unsupported(
            "phpass ($P$/$H$)",
            "iterated salted MD5 (WordPress, phpBB); Auth0 has no such algorithm",
        );
    }
    if stored.starts_with("$S$") || stored.starts_with("U$S$") {
        return unsupported(
            "Drupal 7 ($S$)",
            "iterated salted SHA-512; Auth0 has no such algorithm",
        );
    }
    if stored.starts_with("$5$") || stored.starts_with("$6$") {
        return unsupported(
            "SHA-crypt ($5$/$6$)",
            "multi-round SHA-256/SHA-512 crypt; Auth0 hashes one round only",
        );
    }
    if stored.starts_with("$1$") {
        return unsupported(
            "MD5-crypt ($1$)",
            "multi-round MD5 crypt; Auth0 hashes one round only",
        );
    }
    if stored.starts_with("$bcrypt-sha256$") {
        return unsupported(
            "passlib bcrypt_sha256",
            "bcrypt of a SHA-256 of the password; Auth0 cannot pre-hash the password",
        );
    }
    None
}

// ---- PHP, LDAP ------------------------------------------------------------------------------

fn php(stored: &str) -> Result<Fragment, ConvertError> {
    const F: &str = "php";
    if let Some(known) = recognise_unsupported(stored) {
        return Err(known);
    }
    if stored.starts_with("$2") {
        return bcrypt(stored, F);
    }
    if stored.starts_with("$argon2i$") || stored.starts_with("$argon2id$") {
        return argon2_fragment(stored, F);
    }
    Err(malformed(
        F,
        "PHP's password_hash makes $2y$ (bcrypt), $argon2i$ or $argon2id$ strings",
    ))
}

fn ldap(stored: &str) -> Result<Fragment, ConvertError> {
    const F: &str = "ldap";
    let (scheme, payload) = stored
        .strip_prefix('{')
        .and_then(|rest| rest.split_once('}'))
        .ok_or_else(|| malformed(F, "an RFC 2307 value starts with {SCHEME}"))?;
    if scheme.eq_ignore_ascii_case("CRYPT") {
        if payload.starts_with("$2") {
            return bcrypt(payload, F);
        }
        return Err(recognise_unsupported(payload).unwrap_or(ConvertError::Unsupported {
            scheme: "LDAP {CRYPT}",
            why: "Auth0's ldap algorithm does not take {CRYPT}, and the inner crypt(3) scheme is not one Auth0 imports",
        }));
    }
    let known = facts::ldap_scheme(scheme).ok_or_else(|| {
        malformed(F, "the scheme is not one Auth0 takes (MD5, SMD5, SHA, SSHA, SHA256, SSHA256, SHA384, SSHA384, SHA512, SSHA512)")
    })?;
    let bytes = BinaryEncoding::Base64
        .decode(payload)
        .map_err(|_| malformed(F, "the value after the scheme is not base64"))?;
    let digest = known.digest.output_bytes();
    if bytes.len() < digest || (!known.salted && bytes.len() != digest) {
        return Err(malformed(F, "the value is the wrong length for its scheme"));
    }
    // Written again in canonical base64: the stored text may pad where a strict reader (and
    // Auth0's rules) will not take it (found by the `convert` fuzz target).
    Ok(custom_utf8(
        "ldap",
        &format!("{{{}}}{}", known.name, to_base64(&bytes)),
    ))
}

// ---- Formats Auth0 cannot import ------------------------------------------------------------

fn firebase_scrypt(stored: &str) -> Result<Fragment, ConvertError> {
    if BinaryEncoding::Base64
        .decode(stored)
        .map_or(true, |b| b.is_empty())
    {
        return Err(malformed(
            "firebase-scrypt",
            "a Firebase passwordHash is base64",
        ));
    }
    Err(ConvertError::Unsupported {
        scheme: "Firebase scrypt",
        why: "Firebase's modified scrypt encrypts a project signer key with the derived key; Auth0's scrypt is the standard one",
    })
}

fn phpass(stored: &str) -> Result<Fragment, ConvertError> {
    match recognise_unsupported(stored) {
        Some(e) if stored.starts_with("$P$") || stored.starts_with("$H$") => Err(e),
        _ => Err(malformed("phpass", "a phpass hash starts with $P$ or $H$")),
    }
}

fn drupal7(stored: &str) -> Result<Fragment, ConvertError> {
    match recognise_unsupported(stored) {
        Some(e) if stored.starts_with("$S$") || stored.starts_with("U$S$") => Err(e),
        _ => Err(malformed(
            "drupal7",
            "a Drupal 7 hash starts with $S$ (or U$S$)",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_format_name_round_trips() {
        for format in LegacyFormat::ALL {
            assert_eq!(LegacyFormat::parse(format.name()), Some(format));
        }
        assert_eq!(LegacyFormat::parse("md5crypt"), None);
    }

    /// Found by the `convert` fuzz target: a version field run into the parameters (no `$`
    /// between them), a parameter that is not a number, or no hash field at all, was converted,
    /// and Auth0's rules refuse it.
    #[test]
    fn an_argon2_string_with_its_version_run_into_the_parameters_is_refused() {
        let salt = "c2FsdHNhbHRzYWx0c2FsdA";
        let hash = "aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGhhc2g";
        let broken = format!("$argon2i$v=19-m=256,t=4,p=1${salt}${hash}");
        for format in [LegacyFormat::Php, LegacyFormat::Passlib] {
            assert!(
                matches!(
                    convert(format, &broken),
                    Err(ConvertError::Malformed { .. })
                ),
                "{}",
                format.name()
            );
        }
        // Parameters the argon2 crate cannot read (p=1 run into the salt).
        let bad_param = format!("$argon2i$v=19$m=256,t=4,p=1x{salt}${hash}");
        assert!(matches!(
            convert(LegacyFormat::Php, &bad_param),
            Err(ConvertError::Malformed { .. })
        ));
        // And one with no hash field: the PHC format allows it, a stored password cannot.
        let no_hash = format!("$argon2i$v=19$m=256,t=4,p=1${salt}");
        assert!(matches!(
            convert(LegacyFormat::Php, &no_hash),
            Err(ConvertError::Malformed { .. })
        ));
        let fine = format!("$argon2i$v=19$m=256,t=4,p=1${salt}${hash}");
        assert!(convert(LegacyFormat::Php, &fine).is_ok());
    }

    /// Found by the `convert` fuzz target: base64 padded where its length does not allow it was
    /// passed through; it is written again canonically, the same bytes.
    #[test]
    fn an_ldap_value_is_written_in_canonical_base64() {
        let digest = [7u8; 64];
        let canonical = to_base64(&digest);
        let odd = format!("{}=", canonical.trim_end_matches('='));
        assert_ne!(odd, canonical);
        let fragment = convert(LegacyFormat::Ldap, &format!("{{SHA512}}{odd}")).unwrap();
        assert_eq!(
            fragment.members()["custom_password_hash"]["hash"]["value"],
            format!("{{SHA512}}{canonical}")
        );
    }

    /// Found by the `convert` fuzz target: an empty salt made an empty PHC field (pbkdf2), an
    /// empty hash a keylen of 0, r=0 or p=0 a blockSize or parallelization of 0, and ln=53 or
    /// a p above 2^53 - 1 a number beyond what a double holds exactly (scrypt).
    #[test]
    fn a_pbkdf2_or_scrypt_hash_with_an_empty_salt_or_hash_is_refused() {
        let hash = "Ks5xsG0HyVJyUZqXjOVgkN8bAXDk0rWMP9BgHdgCu9U";
        for (format, stored) in [
            (
                LegacyFormat::Passlib,
                format!("$pbkdf2-sha256$1000$${hash}"),
            ),
            (
                LegacyFormat::Passlib,
                "$pbkdf2-sha256$1000$c2FsdA$".to_string(),
            ),
            (
                LegacyFormat::Werkzeug,
                "pbkdf2:sha256:1000$$00ff".to_string(),
            ),
            (
                LegacyFormat::Passlib,
                "$scrypt$ln=6,r=8,p=1$c2FsdHNhbHQ$".to_string(),
            ),
            (
                LegacyFormat::Passlib,
                format!("$scrypt$ln=6,r=8,p=1$${hash}"),
            ),
            (
                LegacyFormat::Passlib,
                format!("$scrypt$ln=6,r=8,p=0$c2FsdHNhbHQ${hash}"),
            ),
            (
                LegacyFormat::Passlib,
                format!("$scrypt$ln=6,r=0,p=1$c2FsdHNhbHQ${hash}"),
            ),
            (
                LegacyFormat::Passlib,
                format!("$scrypt$ln=53,r=8,p=1$c2FsdHNhbHQ${hash}"),
            ),
            // After 1,071,698 executions: a parallelization (or blockSize) past 2^53 - 1.
            (
                LegacyFormat::Django,
                format!("scrypt$16384$c2FsdA$8$10000000010000002${hash}="),
            ),
            (
                LegacyFormat::Passlib,
                format!("$scrypt$ln=6,r=9007199254740992,p=1$c2FsdHNhbHQ${hash}"),
            ),
            (
                LegacyFormat::Werkzeug,
                "scrypt:16384:8:9007199254740992$salt$00ff".to_string(),
            ),
        ] {
            assert!(
                matches!(
                    convert(format, &stored),
                    Err(ConvertError::Malformed { .. })
                ),
                "{}: {stored}",
                format.name()
            );
        }
    }

    /// The refusals above are for the parameter alone: the same strings with p=1 or r=8 convert.
    #[test]
    fn the_same_scrypt_strings_with_exact_parameters_convert() {
        let hash = "Ks5xsG0HyVJyUZqXjOVgkN8bAXDk0rWMP9BgHdgCu9U";
        for (format, stored) in [
            (
                LegacyFormat::Django,
                format!("scrypt$16384$c2FsdA$8$1${hash}="),
            ),
            (
                LegacyFormat::Passlib,
                format!("$scrypt$ln=6,r=8,p=1$c2FsdHNhbHQ${hash}"),
            ),
            (
                LegacyFormat::Werkzeug,
                "scrypt:16384:8:1$salt$00ff".to_string(),
            ),
        ] {
            assert!(
                convert(format, &stored).is_ok(),
                "{}: {stored}",
                format.name()
            );
        }
    }

    #[test]
    fn errors_never_quote_the_stored_string() {
        let secretish = "$2b$10$SECRETSECRETSECRETSECRETSECRETSECRETSECRETSECRETSECRE";
        for format in LegacyFormat::ALL {
            if let Err(e) = convert(format, secretish) {
                assert!(!e.to_string().contains("SECRET"), "{format:?}: {e}");
            }
        }
    }

    proptest::proptest! {
        /// Any text after a format's prefix: an answer, never a panic, and the text never quoted.
        #[test]
        fn any_input_gets_an_answer_that_does_not_quote_it(
            prefix in "(\\$2[abxy]\\$10\\$|\\$argon2id\\$v=19\\$|pbkdf2_sha256\\$|\\{SSHA\\}|\\$pbkdf2-sha256\\$|AQAAAA|\\{\"secretData\":|scrypt:|\\$P\\$)?",
            secret in "[A-Za-z0-9]{12,40}",
            rest in "[ -~]{0,40}",
        ) {
            let stored = format!("{prefix}{secret}{rest}");
            for format in LegacyFormat::ALL {
                if let Err(e) = convert(format, &stored) {
                    proptest::prop_assert!(!e.to_string().contains(&secret), "{format:?}: {e}");
                }
            }
        }
    }

    #[test]
    fn bcrypt_cost_10_2a_2b_is_auth0s_own_field_and_the_rest_is_custom() {
        let tail = "$N9qo8uLOickgx2ZMRZoMyeIjZAgcfl7p92ldGxad68LJZdL17lhWy";
        let f = convert(LegacyFormat::Bcrypt, &format!("$2b$10{tail}")).unwrap();
        assert!(f.members().contains_key("password_hash"));
        for other in [format!("$2y$10{tail}"), format!("$2b$12{tail}")] {
            let f = convert(LegacyFormat::Bcrypt, &other).unwrap();
            assert_eq!(f.members()["custom_password_hash"]["algorithm"], "bcrypt");
        }
        assert!(matches!(
            convert(LegacyFormat::Bcrypt, &format!("$2x$10{tail}")),
            Err(ConvertError::Unsupported { .. })
        ));
    }
}
