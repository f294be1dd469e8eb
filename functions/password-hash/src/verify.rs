//! Would Auth0 accept this password at login? The computation Auth0 runs for each algorithm,
//! on a record read by `stored`, with the readings we chose where Auth0's docs are silent.

use argon2::password_hash::PasswordVerifier as _;
use serde_json::Value;

use crate::encoding::PasswordEncoding;
use crate::primitives::{self, same_bytes};
use crate::stored::{read_record, Algorithm, RecordError, StoredHash};

/// How a record is read where Auth0's documentation is silent (README, "Choices").
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Reading {
    pub hmac_salt: HmacSalt,
}

/// Whether a `salt` object takes part in an HMAC. The docs list no salt for hmac, the schema
/// allows one; Auth0's Node code most plausibly shares the salt handling of the digest
/// algorithms, so the salt is added to the message on its `position` side.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum HmacSalt {
    /// HMAC(key, salt ‖ password) or HMAC(key, password ‖ salt). Our default.
    #[default]
    InMessage,
    /// HMAC(key, password): the salt object is not used.
    Ignored,
}

/// Whether `password` verifies against the hash in `record`, read the default way.
pub fn check(record: &Value, password: &str) -> Result<bool, RecordError> {
    check_with(record, password, Reading::default())
}

pub fn check_with(record: &Value, password: &str, reading: Reading) -> Result<bool, RecordError> {
    verify(&read_record(record)?, password, reading)
}

/// Whether Auth0 would accept `password` for `stored`.
pub fn verify(stored: &StoredHash, password: &str, reading: Reading) -> Result<bool, RecordError> {
    match stored {
        // Auth0 takes the typed password as UTF-8 for its own bcrypt hashes.
        StoredHash::PasswordHash { bcrypt } => bcrypt_verify(password.as_bytes(), bcrypt),
        StoredHash::Custom {
            algorithm,
            password_encoding,
        } => verify_custom(algorithm, &password_encoding.encode(password), reading),
    }
}

fn verify_custom(
    algorithm: &Algorithm,
    password: &[u8],
    reading: Reading,
) -> Result<bool, RecordError> {
    match algorithm {
        Algorithm::Argon2 { phc } => argon2_verify(password, phc),
        Algorithm::Bcrypt { hash, salt } => match salt {
            // The salt counts against bcrypt's 72 input bytes (facts §4.6).
            Some(salt) => bcrypt_verify(&salt.around(password), hash),
            None => bcrypt_verify(password, hash),
        },
        Algorithm::Hmac {
            digest,
            key,
            salt,
            expected,
        } => {
            let message = match (salt, reading.hmac_salt) {
                (Some(salt), HmacSalt::InMessage) => salt.around(password),
                _ => password.to_vec(),
            };
            Ok(same_bytes(
                &primitives::hmac(*digest, key, &message)?,
                expected,
            ))
        }
        Algorithm::Ldap { scheme, payload } => {
            let (stored, salt) = payload.split_at(scheme.digest.output_bytes());
            Ok(same_bytes(
                &primitives::digest(scheme.digest, &[password, salt])?,
                stored,
            ))
        }
        Algorithm::Plain {
            digest,
            salt,
            expected,
        } => {
            let input = match salt {
                Some(salt) => salt.around(password),
                None => password.to_vec(),
            };
            Ok(same_bytes(
                &primitives::digest(*digest, &[&input])?,
                expected,
            ))
        }
        Algorithm::Pbkdf2 {
            digest,
            iterations,
            key_bytes,
            salt,
            expected,
        } => {
            // Auth0 derives `l` bytes and compares: a stored hash of another length never matches.
            if *key_bytes != expected.len() {
                return Ok(false);
            }
            let mut derived = vec![0u8; *key_bytes];
            primitives::pbkdf2(*digest, password, salt, *iterations, &mut derived)?;
            Ok(same_bytes(&derived, expected))
        }
        Algorithm::Scrypt {
            cost,
            block_size,
            parallelization,
            keylen,
            salt,
            expected,
        } => {
            if *keylen != expected.len() {
                return Ok(false);
            }
            // `cost` was checked to be a power of two above 1 when the record was read.
            let log_n = u8::try_from(cost.trailing_zeros()).unwrap_or(u8::MAX);
            let params =
                scrypt::Params::new(log_n, *block_size, *parallelization).map_err(|_| {
                    RecordError::BadParam {
                        param: "cost",
                        why: "with blockSize and parallelization, is outside what scrypt can run"
                            .into(),
                    }
                })?;
            let mut derived = vec![0u8; *keylen];
            scrypt::scrypt(password, salt, &params, &mut derived).map_err(|_| {
                RecordError::BadParam {
                    param: "keylen",
                    why: "is outside what scrypt can derive".into(),
                }
            })?;
            Ok(same_bytes(&derived, expected))
        }
    }
}

fn bcrypt_verify(password: &[u8], hash: &str) -> Result<bool, RecordError> {
    // Auth0 takes $2a$, $2b$ and $2y$ only (facts §4.6); the crate would also take $2x$.
    if !(hash.starts_with("$2a$") || hash.starts_with("$2b$") || hash.starts_with("$2y$")) {
        return Err(RecordError::BadValue {
            why: "must be a bcrypt hash starting with $2a$, $2b$ or $2y$".into(),
        });
    }
    // bcrypt reads at most 72 bytes of input and ignores the rest, as Auth0's does.
    bcrypt::verify(password, hash).map_err(|e| RecordError::BadValue {
        why: format!(
            "is not a bcrypt hash bcrypt can read ({})",
            bcrypt_problem(&e)
        ),
    })
}

/// The bcrypt crate's error without any part of the hash.
fn bcrypt_problem(e: &bcrypt::BcryptError) -> &'static str {
    match e {
        bcrypt::BcryptError::CostNotAllowed(_) => "its cost is outside 4..=31",
        bcrypt::BcryptError::InvalidHash(_) => {
            "60 characters: $2b$, two cost digits, $, 53 of [./A-Za-z0-9]"
        }
        _ => "malformed",
    }
}

fn argon2_verify(password: &[u8], phc: &str) -> Result<bool, RecordError> {
    use argon2::password_hash::Error;
    match argon2::Argon2::default().verify_password(password, phc) {
        Ok(()) => Ok(true),
        Err(Error::PasswordInvalid) => Ok(false),
        Err(_) => Err(RecordError::BadValue {
            why: "is not an argon2 PHC string the argon2 crate can read ($argon2id$v=19$m=..,t=..,p=..$<salt>$<hash>)".into(),
        }),
    }
}

/// What a password is to the hash: the bytes `encoding` makes of it (for tests and the doctor).
pub fn password_bytes(password: &str, encoding: PasswordEncoding) -> Vec<u8> {
    encoding.encode(password)
}
