//! Auth0's password-hash semantics as pure functions: whether Auth0 would accept a password for
//! an import record (`verify`), which declared parameter breaks a hash that does not verify
//! (`doctor`), and legacy hash strings turned into Auth0's import fields (`convert`).
//!
//! No I/O: records are `serde_json::Value`s, passwords are strings. Every primitive is a
//! RustCrypto crate's. No error message holds a password, hash, salt or key.
#![forbid(unsafe_code)]

pub mod convert;
pub mod doctor;
pub mod encoding;
pub mod facts;
mod primitives;
pub mod stored;
pub mod verify;

pub use convert::{convert, convert_digest, BareSalt, ConvertError, Fragment, LegacyFormat};
pub use doctor::{diagnose, Diagnosis, Finding};
pub use primitives::Unimplemented;
pub use stored::{read_record, RecordError, StoredHash};
pub use verify::{check, check_with, verify, HmacSalt, Reading};

/// A plaintext password: shown as `*****` by `{:?}`, so it never reaches a log by accident.
#[derive(Clone, PartialEq, Eq)]
pub struct Password(String);

impl Password {
    pub fn new(plaintext: impl Into<String>) -> Self {
        Password(plaintext.into())
    }

    /// The plaintext, for the hash computation only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Password(*****)")
    }
}
