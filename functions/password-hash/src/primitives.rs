//! The RustCrypto implementations behind each `Digest`: a plain digest, HMAC and PBKDF2-HMAC.
//! Dispatch only; every primitive is a well-kept crate's.

use digest::Digest as _;
use hmac::{KeyInit as _, Mac as _};

use crate::facts::Digest;

/// Dispatches `$body` with `$d` bound to the RustCrypto type of `$digest`; `$mdc2` when the
/// digest has no implementation.
macro_rules! with_digest {
    ($digest:expr, $d:ident => $body:expr, $mdc2:expr) => {
        match $digest {
            Digest::Md4 => {
                type $d = md4::Md4;
                $body
            }
            Digest::Md5 => {
                type $d = md5::Md5;
                $body
            }
            Digest::Ripemd160 => {
                type $d = ripemd::Ripemd160;
                $body
            }
            Digest::Sha1 => {
                type $d = sha1::Sha1;
                $body
            }
            Digest::Sha224 => {
                type $d = sha2::Sha224;
                $body
            }
            Digest::Sha256 => {
                type $d = sha2::Sha256;
                $body
            }
            Digest::Sha384 => {
                type $d = sha2::Sha384;
                $body
            }
            Digest::Sha512 => {
                type $d = sha2::Sha512;
                $body
            }
            Digest::Whirlpool => {
                type $d = whirlpool::Whirlpool;
                $body
            }
            Digest::Mdc2 => $mdc2,
        }
    };
}

#[derive(Clone, Copy, PartialEq, Eq, Debug, thiserror::Error)]
#[error("{} has no implementation in a well-kept Rust crate, so this record cannot be checked here", .0.name())]
pub struct Unimplemented(pub Digest);

/// digest(parts[0] ‖ parts[1] ‖ …).
pub fn digest(which: Digest, parts: &[&[u8]]) -> Result<Vec<u8>, Unimplemented> {
    with_digest!(
        which,
        D => {
            let mut hasher = D::new();
            for part in parts {
                hasher.update(part);
            }
            Ok(hasher.finalize().to_vec())
        },
        Err(Unimplemented(which))
    )
}

/// HMAC-`which`(key, message).
pub fn hmac(which: Digest, key: &[u8], message: &[u8]) -> Result<Vec<u8>, Unimplemented> {
    with_digest!(
        which,
        D => {
            // HMAC takes a key of any length (long keys are hashed first).
            let mut mac = hmac::Hmac::<D>::new_from_slice(key).map_err(|_| Unimplemented(which))?;
            mac.update(message);
            Ok(mac.finalize().into_bytes().to_vec())
        },
        Err(Unimplemented(which))
    )
}

/// PBKDF2 with HMAC-`which`, `out.len()` bytes.
pub fn pbkdf2(
    which: Digest,
    password: &[u8],
    salt: &[u8],
    iterations: u32,
    out: &mut [u8],
) -> Result<(), Unimplemented> {
    with_digest!(
        which,
        D => {
            pbkdf2::pbkdf2_hmac::<D>(password, salt, iterations, out);
            Ok(())
        },
        Err(Unimplemented(which))
    )
}

/// Constant-time equality of two byte strings (lengths are not secret).
pub fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
