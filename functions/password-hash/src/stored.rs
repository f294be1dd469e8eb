//! An import record's hash, read into what Auth0 computes at login: the algorithm, its
//! parameters (defaults applied) and the bytes it compares. Nothing here hashes anything.

use serde_json::{Map, Value};

use crate::encoding::{from_phc_b64, BinaryEncoding, PasswordEncoding};
use crate::facts::{self, Digest, LdapScheme};

/// The hash a record carries, ready to verify.
#[derive(Clone, PartialEq, Eq)]
pub enum StoredHash {
    /// `password_hash`: bcrypt, `$2a$`/`$2b$` cost 10 (facts §4.4).
    PasswordHash { bcrypt: String },
    Custom {
        algorithm: Algorithm,
        password_encoding: PasswordEncoding,
    },
}

// Hash bytes never reach a log through `{:?}`.
impl std::fmt::Debug for StoredHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StoredHash::PasswordHash { .. } => f.write_str("PasswordHash { .. }"),
            StoredHash::Custom {
                algorithm,
                password_encoding,
            } => write!(
                f,
                "Custom {{ algorithm: {}, password_encoding: {} }}",
                algorithm.name(),
                password_encoding.name()
            ),
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum SaltPosition {
    /// salt ‖ password (Auth0's default).
    Prefix,
    /// password ‖ salt.
    Suffix,
}

impl SaltPosition {
    pub fn name(self) -> &'static str {
        match self {
            SaltPosition::Prefix => "prefix",
            SaltPosition::Suffix => "suffix",
        }
    }
}

#[derive(Clone, PartialEq, Eq)]
pub struct Salt {
    pub bytes: Vec<u8>,
    pub position: SaltPosition,
}

impl Salt {
    /// The bytes Auth0 feeds the algorithm: the salt on the side `position` says.
    pub fn around(&self, password: &[u8]) -> Vec<u8> {
        match self.position {
            SaltPosition::Prefix => [self.bytes.as_slice(), password].concat(),
            SaltPosition::Suffix => [password, self.bytes.as_slice()].concat(),
        }
    }
}

#[derive(Clone, PartialEq, Eq)]
pub enum Algorithm {
    /// PHC string, checked by the argon2 crate (which reads its own parameters).
    Argon2 {
        phc: String,
    },
    Bcrypt {
        hash: String,
        salt: Option<Salt>,
    },
    Hmac {
        digest: Digest,
        key: Vec<u8>,
        salt: Option<Salt>,
        expected: Vec<u8>,
    },
    Ldap {
        scheme: &'static LdapScheme,
        /// The base64 payload decoded: the digest, then the salt for salted schemes.
        payload: Vec<u8>,
    },
    /// md4, md5, sha1, sha256, sha512.
    Plain {
        digest: Digest,
        salt: Option<Salt>,
        expected: Vec<u8>,
    },
    Pbkdf2 {
        digest: Digest,
        iterations: u32,
        key_bytes: usize,
        salt: Vec<u8>,
        expected: Vec<u8>,
    },
    Scrypt {
        cost: u64,
        block_size: u32,
        parallelization: u32,
        keylen: usize,
        salt: Vec<u8>,
        expected: Vec<u8>,
    },
}

impl Algorithm {
    pub fn name(&self) -> &'static str {
        match self {
            Algorithm::Argon2 { .. } => "argon2",
            Algorithm::Bcrypt { .. } => "bcrypt",
            Algorithm::Hmac { .. } => "hmac",
            Algorithm::Ldap { .. } => "ldap",
            Algorithm::Plain { digest, .. } => digest.name(),
            Algorithm::Pbkdf2 { .. } => "pbkdf2",
            Algorithm::Scrypt { .. } => "scrypt",
        }
    }
}

/// Why a record's hash cannot be checked. Messages name the field and never hold its value.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    #[error("the record is not a JSON object")]
    NotAnObject,
    #[error("the record has neither password_hash nor custom_password_hash: Auth0 gives such a user a random password, so no password can verify (import a hash, or plan a password reset)")]
    NoHash,
    #[error("the record has both password_hash and custom_password_hash: Auth0 refuses it (\"Forbidden attribute in appUser\"); keep one")]
    BothHashes,
    #[error("{path} is missing ({why})")]
    Missing {
        path: &'static str,
        why: &'static str,
    },
    #[error("{path} must be {expected}")]
    WrongType {
        path: &'static str,
        expected: &'static str,
    },
    #[error("{path} is not one of {allowed}")]
    NotAllowed {
        path: &'static str,
        allowed: &'static str,
    },
    #[error("{path} {problem}, but {path_encoding} says {encoding}")]
    Undecodable {
        path: &'static str,
        path_encoding: &'static str,
        encoding: &'static str,
        problem: crate::encoding::DecodeProblem,
    },
    #[error("custom_password_hash.hash.value {why}")]
    BadValue { why: String },
    #[error("custom_password_hash.{param} {why}")]
    BadParam { param: &'static str, why: String },
    #[error("{0}")]
    Unimplemented(#[from] crate::primitives::Unimplemented),
}

const CPH: &str = "custom_password_hash";

/// Reads the hash of an import record (a user object of Auth0's import file).
pub fn read_record(record: &Value) -> Result<StoredHash, RecordError> {
    let object = record.as_object().ok_or(RecordError::NotAnObject)?;
    match (
        object.get("password_hash"),
        object.get("custom_password_hash"),
    ) {
        (Some(_), Some(_)) => Err(RecordError::BothHashes),
        (None, None) => Err(RecordError::NoHash),
        (Some(hash), None) => {
            let bcrypt = hash.as_str().ok_or(RecordError::WrongType {
                path: "password_hash",
                expected: "a string",
            })?;
            Ok(StoredHash::PasswordHash {
                bcrypt: bcrypt.to_string(),
            })
        }
        (None, Some(cph)) => read_custom(cph.as_object().ok_or(RecordError::WrongType {
            path: CPH,
            expected: "an object",
        })?),
    }
}

fn read_custom(cph: &Map<String, Value>) -> Result<StoredHash, RecordError> {
    let algorithm = str_at(cph, "algorithm", "custom_password_hash.algorithm")?.ok_or(
        RecordError::Missing {
            path: "custom_password_hash.algorithm",
            why: "Auth0 requires it",
        },
    )?;
    let hash =
        object_at(cph, "hash", "custom_password_hash.hash")?.ok_or(RecordError::Missing {
            path: "custom_password_hash.hash",
            why: "Auth0 requires it",
        })?;
    let value =
        str_at(hash, "value", "custom_password_hash.hash.value")?.ok_or(RecordError::Missing {
            path: "custom_password_hash.hash.value",
            why: "the stored hash",
        })?;
    let password_encoding = match object_at(cph, "password", "custom_password_hash.password")? {
        None => PasswordEncoding::Utf8,
        Some(password) => {
            match str_at(
                password,
                "encoding",
                "custom_password_hash.password.encoding",
            )? {
                None => PasswordEncoding::Utf8,
                Some(name) => PasswordEncoding::parse(name).ok_or(RecordError::NotAllowed {
                    path: "custom_password_hash.password.encoding",
                    allowed: "ascii, utf8, utf16le, ucs2, latin1, binary",
                })?,
            }
        }
    };
    let salt = read_salt(cph)?;
    let hash_bytes = || decode_hash_value(hash, value);
    let algorithm = match algorithm {
        "argon2" => Algorithm::Argon2 {
            phc: value.to_string(),
        },
        "bcrypt" => Algorithm::Bcrypt {
            hash: value.to_string(),
            salt,
        },
        "hmac" => {
            let digest_name = str_at(hash, "digest", "custom_password_hash.hash.digest")?.ok_or(
                RecordError::Missing {
                    path: "custom_password_hash.hash.digest",
                    why: "algorithm hmac needs it",
                },
            )?;
            let digest = facts::hmac_digest(digest_name).ok_or(RecordError::NotAllowed {
                path: "custom_password_hash.hash.digest",
                allowed: "md4, md5, ripemd160, sha1, sha224, sha256, sha384, sha512, whirlpool",
            })?;
            let key = object_at(hash, "key", "custom_password_hash.hash.key")?.ok_or(
                RecordError::Missing {
                    path: "custom_password_hash.hash.key",
                    why: "algorithm hmac needs it",
                },
            )?;
            let key = read_encoded(
                key,
                "custom_password_hash.hash.key.value",
                "custom_password_hash.hash.key.encoding",
            )?
            .ok_or(RecordError::Missing {
                path: "custom_password_hash.hash.key.value",
                why: "algorithm hmac needs the key",
            })?;
            Algorithm::Hmac {
                digest,
                key,
                salt,
                expected: hash_bytes()?,
            }
        }
        "ldap" => read_ldap(value)?,
        "pbkdf2" => read_pbkdf2(value)?,
        "scrypt" => read_scrypt(cph, salt, hash_bytes()?)?,
        other => {
            match facts::plain_digest_algorithm(other) {
                Some(digest) => Algorithm::Plain {
                    digest,
                    salt,
                    expected: hash_bytes()?,
                },
                None => return Err(RecordError::NotAllowed {
                    path: "custom_password_hash.algorithm",
                    allowed:
                        "argon2, bcrypt, hmac, ldap, md4, md5, sha1, sha256, sha512, pbkdf2, scrypt",
                }),
            }
        }
    };
    Ok(StoredHash::Custom {
        algorithm,
        password_encoding,
    })
}

fn str_at<'a>(
    object: &'a Map<String, Value>,
    key: &str,
    path: &'static str,
) -> Result<Option<&'a str>, RecordError> {
    match object.get(key) {
        None => Ok(None),
        Some(v) => v.as_str().map(Some).ok_or(RecordError::WrongType {
            path,
            expected: "a string",
        }),
    }
}

fn object_at<'a>(
    object: &'a Map<String, Value>,
    key: &str,
    path: &'static str,
) -> Result<Option<&'a Map<String, Value>>, RecordError> {
    match object.get(key) {
        None => Ok(None),
        Some(v) => v.as_object().map(Some).ok_or(RecordError::WrongType {
            path,
            expected: "an object",
        }),
    }
}

/// `{value, encoding}` (encoding default utf8) as bytes; `None` without a value.
fn read_encoded(
    object: &Map<String, Value>,
    value_path: &'static str,
    encoding_path: &'static str,
) -> Result<Option<Vec<u8>>, RecordError> {
    let Some(value) = str_at(object, "value", value_path)? else {
        return Ok(None);
    };
    let encoding = match str_at(object, "encoding", encoding_path)? {
        None => BinaryEncoding::Utf8,
        Some(name) => BinaryEncoding::parse(name).ok_or(RecordError::NotAllowed {
            path: encoding_path,
            allowed: "base64, hex, utf8",
        })?,
    };
    encoding
        .decode(value)
        .map(Some)
        .map_err(|problem| RecordError::Undecodable {
            path: value_path,
            path_encoding: encoding_path,
            encoding: encoding.name(),
            problem,
        })
}

fn read_salt(cph: &Map<String, Value>) -> Result<Option<Salt>, RecordError> {
    let Some(salt) = object_at(cph, "salt", "custom_password_hash.salt")? else {
        return Ok(None);
    };
    let bytes = read_encoded(
        salt,
        "custom_password_hash.salt.value",
        "custom_password_hash.salt.encoding",
    )?
    .ok_or(RecordError::Missing {
        path: "custom_password_hash.salt.value",
        why: "a salt object needs its value",
    })?;
    let position = match str_at(salt, "position", "custom_password_hash.salt.position")? {
        None | Some("prefix") => SaltPosition::Prefix,
        Some("suffix") => SaltPosition::Suffix,
        Some(_) => {
            return Err(RecordError::NotAllowed {
                path: "custom_password_hash.salt.position",
                allowed: "prefix, suffix",
            })
        }
    };
    Ok(Some(Salt { bytes, position }))
}

/// `hash.value` in `hash.encoding` (required for the digest algorithms: hex or base64).
fn decode_hash_value(hash: &Map<String, Value>, value: &str) -> Result<Vec<u8>, RecordError> {
    const PATH: &str = "custom_password_hash.hash.encoding";
    let encoding = str_at(hash, "encoding", PATH)?.ok_or(RecordError::Missing {
        path: PATH,
        why: "without it the hash bytes cannot be read; hex or base64",
    })?;
    let encoding = BinaryEncoding::parse(encoding).ok_or(RecordError::NotAllowed {
        path: PATH,
        allowed: "base64, hex, utf8",
    })?;
    encoding
        .decode(value)
        .map_err(|problem| RecordError::Undecodable {
            path: "custom_password_hash.hash.value",
            path_encoding: PATH,
            encoding: encoding.name(),
            problem,
        })
}

fn read_ldap(value: &str) -> Result<Algorithm, RecordError> {
    let bad = |why: &str| RecordError::BadValue {
        why: why.to_string(),
    };
    let (scheme, payload) = value
        .strip_prefix('{')
        .and_then(|rest| rest.split_once('}'))
        .ok_or_else(|| bad("must start with an RFC 2307 scheme like {SSHA}"))?;
    let scheme = facts::ldap_scheme(scheme).ok_or_else(|| {
        bad("uses a scheme Auth0 does not take (MD5, SMD5, SHA, SSHA, SHA256, SSHA256, SHA384, SSHA384, SHA512, SSHA512)")
    })?;
    let payload = BinaryEncoding::Base64
        .decode(payload)
        .map_err(|_| bad("is not base64 after the {SCHEME}"))?;
    let needed = scheme.digest.output_bytes();
    let fits = if scheme.salted {
        payload.len() >= needed
    } else {
        payload.len() == needed
    };
    if !fits {
        return Err(bad("decodes to the wrong number of bytes for its scheme"));
    }
    Ok(Algorithm::Ldap { scheme, payload })
}

/// A PHC string's fields: `$<id>[$v=<version>][$<params>]$<salt>$<hash>`.
pub(crate) struct Phc<'a> {
    pub id: &'a str,
    pub params: Vec<(&'a str, &'a str)>,
    pub salt: &'a str,
    pub hash: &'a str,
}

pub(crate) fn parse_phc(value: &str) -> Option<Phc<'_>> {
    let fields: Vec<&str> = value.strip_prefix('$')?.split('$').collect();
    let (id, rest) = fields.split_first()?;
    let (params, salt, hash) = match rest {
        [salt, hash] => ("", *salt, *hash),
        [params, salt, hash] => (*params, *salt, *hash),
        [version, params, salt, hash] if version.starts_with("v=") => (*params, *salt, *hash),
        _ => return None,
    };
    let params = if params.is_empty() {
        Vec::new()
    } else {
        params
            .split(',')
            .map(|pair| pair.split_once('='))
            .collect::<Option<Vec<_>>>()?
    };
    Some(Phc {
        id,
        params,
        salt,
        hash,
    })
}

fn read_pbkdf2(value: &str) -> Result<Algorithm, RecordError> {
    let bad = |why: &str| RecordError::BadValue {
        why: why.to_string(),
    };
    let phc = parse_phc(value)
        .ok_or_else(|| bad("must be a PHC string $pbkdf2-<digest>$i=<n>,l=<n>$<salt>$<hash>"))?;
    let digest_name = phc
        .id
        .strip_prefix("pbkdf2-")
        .ok_or_else(|| bad("must start with $pbkdf2-<digest>$"))?;
    let digest = facts::pbkdf2_digest(digest_name)
        .ok_or_else(|| bad("names a digest Auth0 does not list after $pbkdf2-"))?;
    let mut iterations = facts::PBKDF2_DEFAULT_ITERATIONS;
    let mut key_bytes = facts::PBKDF2_DEFAULT_KEY_BYTES;
    for (name, number) in &phc.params {
        match *name {
            "i" => {
                iterations = number
                    .parse()
                    .ok()
                    .filter(|&i| i > 0)
                    .ok_or_else(|| bad("has an i= that is not a positive number"))?;
            }
            "l" => {
                key_bytes = number
                    .parse()
                    .ok()
                    .filter(|&l| l > 0)
                    .ok_or_else(|| bad("has an l= that is not a positive number"))?;
            }
            _ => return Err(bad("may only carry i= and l= parameters")),
        }
    }
    let salt =
        from_phc_b64(phc.salt).map_err(|_| bad("has a salt field that is not unpadded base64"))?;
    let expected =
        from_phc_b64(phc.hash).map_err(|_| bad("has a hash field that is not unpadded base64"))?;
    Ok(Algorithm::Pbkdf2 {
        digest,
        iterations,
        key_bytes,
        salt,
        expected,
    })
}

fn read_scrypt(
    cph: &Map<String, Value>,
    salt: Option<Salt>,
    expected: Vec<u8>,
) -> Result<Algorithm, RecordError> {
    let number = |param: &'static str| -> Result<Option<u64>, RecordError> {
        match cph.get(param) {
            None => Ok(None),
            Some(v) => {
                let n = v.as_u64().or_else(|| {
                    v.as_f64()
                        .filter(|f| f.fract() == 0.0 && *f >= 0.0)
                        .map(|f| f as u64)
                });
                n.filter(|&n| n > 0).map(Some).ok_or(RecordError::BadParam {
                    param,
                    why: "must be a positive integer".into(),
                })
            }
        }
    };
    let keylen = number("keylen")?.ok_or(RecordError::Missing {
        path: "custom_password_hash.keylen",
        why: "algorithm scrypt needs the derived key length in bytes",
    })?;
    let cost = number("cost")?.unwrap_or(facts::SCRYPT_DEFAULT_COST);
    if cost < 2 || !cost.is_power_of_two() {
        return Err(RecordError::BadParam {
            param: "cost",
            why: "must be a power of two above 1 (like 16384)".into(),
        });
    }
    let small = |param: &'static str, n: u64| {
        u32::try_from(n).map_err(|_| RecordError::BadParam {
            param,
            why: "is too large".into(),
        })
    };
    let block_size = match number("blockSize")? {
        Some(n) => small("blockSize", n)?,
        None => facts::SCRYPT_DEFAULT_BLOCK_SIZE,
    };
    let parallelization = match number("parallelization")? {
        Some(n) => small("parallelization", n)?,
        None => facts::SCRYPT_DEFAULT_PARALLELIZATION,
    };
    let keylen = usize::try_from(keylen).map_err(|_| RecordError::BadParam {
        param: "keylen",
        why: "is too large".into(),
    })?;
    Ok(Algorithm::Scrypt {
        cost,
        block_size,
        parallelization,
        keylen,
        // scrypt takes the salt as its own input: its position does not apply.
        salt: salt.map(|s| s.bytes).unwrap_or_default(),
        expected,
    })
}
