//! Auth0's password-hash facts (facts §4.4–4.6) as data: digests and their names, LDAP schemes,
//! PBKDF2 and scrypt defaults. The import rules (import-core `rules::hash`) and the verifier read the same rows.

/// A message digest Auth0 names somewhere (HMAC `hash.digest`, a `$pbkdf2-<digest>$` id, an
/// RFC 2307 scheme, a plain algorithm).
#[derive(Clone, Copy, PartialEq, Eq, Debug, Hash, PartialOrd, Ord)]
pub enum Digest {
    Md4,
    Md5,
    Ripemd160,
    Sha1,
    Sha224,
    Sha256,
    Sha384,
    Sha512,
    Whirlpool,
    /// Named in Auth0's PBKDF2 list (OpenSSL's MDC-2) but implemented by no well-kept Rust crate:
    /// a record using it cannot be checked here.
    Mdc2,
}

impl Digest {
    /// Output size in bytes.
    pub const fn output_bytes(self) -> usize {
        match self {
            Digest::Md4 | Digest::Md5 | Digest::Mdc2 => 16,
            Digest::Ripemd160 | Digest::Sha1 => 20,
            Digest::Sha224 => 28,
            Digest::Sha256 => 32,
            Digest::Sha384 => 48,
            Digest::Sha512 | Digest::Whirlpool => 64,
        }
    }

    /// The name Node.js (and Auth0's `hash.digest`) uses for it.
    pub const fn name(self) -> &'static str {
        match self {
            Digest::Md4 => "md4",
            Digest::Md5 => "md5",
            Digest::Ripemd160 => "ripemd160",
            Digest::Sha1 => "sha1",
            Digest::Sha224 => "sha224",
            Digest::Sha256 => "sha256",
            Digest::Sha384 => "sha384",
            Digest::Sha512 => "sha512",
            Digest::Whirlpool => "whirlpool",
            Digest::Mdc2 => "mdc2",
        }
    }

    /// Whether this crate can compute it (every digest but MDC-2).
    pub const fn implemented(self) -> bool {
        !matches!(self, Digest::Mdc2)
    }
}

/// `hash.digest` values for algorithm `hmac` (the schema's enum), in the schema's order.
pub const HMAC_DIGESTS: &[Digest] = &[
    Digest::Md4,
    Digest::Md5,
    Digest::Ripemd160,
    Digest::Sha1,
    Digest::Sha224,
    Digest::Sha256,
    Digest::Sha384,
    Digest::Sha512,
    Digest::Whirlpool,
];

pub fn hmac_digest(name: &str) -> Option<Digest> {
    HMAC_DIGESTS.iter().copied().find(|d| d.name() == name)
}

/// The digests a `$pbkdf2-<digest>$` PHC id may name (facts §4.6: Node's crypto digest names),
/// with the digest each one means in OpenSSL.
pub const PBKDF2_DIGESTS: &[(&str, Digest)] = &[
    ("RSA-MD4", Digest::Md4),
    ("RSA-MD5", Digest::Md5),
    ("RSA-MDC2", Digest::Mdc2),
    ("RSA-RIPEMD160", Digest::Ripemd160),
    ("RSA-SHA1", Digest::Sha1),
    ("RSA-SHA1-2", Digest::Sha1),
    ("RSA-SHA224", Digest::Sha224),
    ("RSA-SHA256", Digest::Sha256),
    ("RSA-SHA384", Digest::Sha384),
    ("RSA-SHA512", Digest::Sha512),
    ("md4", Digest::Md4),
    ("md4WithRSAEncryption", Digest::Md4),
    ("md5", Digest::Md5),
    ("md5WithRSAEncryption", Digest::Md5),
    ("mdc2", Digest::Mdc2),
    ("mdc2WithRSA", Digest::Mdc2),
    ("ripemd", Digest::Ripemd160),
    ("ripemd160", Digest::Ripemd160),
    ("ripemd160WithRSA", Digest::Ripemd160),
    ("rmd160", Digest::Ripemd160),
    ("sha1", Digest::Sha1),
    ("sha1WithRSAEncryption", Digest::Sha1),
    ("sha224", Digest::Sha224),
    ("sha224WithRSAEncryption", Digest::Sha224),
    ("sha256", Digest::Sha256),
    ("sha256WithRSAEncryption", Digest::Sha256),
    ("sha384", Digest::Sha384),
    ("sha384WithRSAEncryption", Digest::Sha384),
    ("sha512", Digest::Sha512),
    ("sha512WithRSAEncryption", Digest::Sha512),
    ("ssl3-md5", Digest::Md5),
    ("ssl3-sha1", Digest::Sha1),
    ("whirlpool", Digest::Whirlpool),
];

pub fn pbkdf2_digest(name: &str) -> Option<Digest> {
    PBKDF2_DIGESTS
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, d)| *d)
}

/// Auth0's PBKDF2 parameters when the PHC string omits them (facts §4.6).
pub const PBKDF2_DEFAULT_ITERATIONS: u32 = 100_000;
pub const PBKDF2_DEFAULT_KEY_BYTES: usize = 64;

/// Auth0's scrypt parameters when the record omits them (facts §4.5).
pub const SCRYPT_DEFAULT_COST: u64 = 16_384;
pub const SCRYPT_DEFAULT_BLOCK_SIZE: u32 = 8;
pub const SCRYPT_DEFAULT_PARALLELIZATION: u32 = 1;

/// An RFC 2307 `userPassword` scheme Auth0 takes for algorithm `ldap`. Salted schemes store
/// base64(digest(password ‖ salt) ‖ salt).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct LdapScheme {
    pub name: &'static str,
    pub digest: Digest,
    pub salted: bool,
}

pub const LDAP_SCHEMES: &[LdapScheme] = &[
    LdapScheme {
        name: "MD5",
        digest: Digest::Md5,
        salted: false,
    },
    LdapScheme {
        name: "SMD5",
        digest: Digest::Md5,
        salted: true,
    },
    LdapScheme {
        name: "SHA",
        digest: Digest::Sha1,
        salted: false,
    },
    LdapScheme {
        name: "SSHA",
        digest: Digest::Sha1,
        salted: true,
    },
    LdapScheme {
        name: "SHA256",
        digest: Digest::Sha256,
        salted: false,
    },
    LdapScheme {
        name: "SSHA256",
        digest: Digest::Sha256,
        salted: true,
    },
    LdapScheme {
        name: "SHA384",
        digest: Digest::Sha384,
        salted: false,
    },
    LdapScheme {
        name: "SSHA384",
        digest: Digest::Sha384,
        salted: true,
    },
    LdapScheme {
        name: "SHA512",
        digest: Digest::Sha512,
        salted: false,
    },
    LdapScheme {
        name: "SSHA512",
        digest: Digest::Sha512,
        salted: true,
    },
];

/// The scheme named between the braces, case-insensitively (`{ssha}` is `{SSHA}`).
pub fn ldap_scheme(name: &str) -> Option<&'static LdapScheme> {
    LDAP_SCHEMES
        .iter()
        .find(|s| s.name.eq_ignore_ascii_case(name))
}

/// The plain digest algorithms (`algorithm` md4 … sha512): digest(salt ‖ password) or
/// digest(password ‖ salt).
pub const PLAIN_DIGEST_ALGORITHMS: &[(&str, Digest)] = &[
    ("md4", Digest::Md4),
    ("md5", Digest::Md5),
    ("sha1", Digest::Sha1),
    ("sha256", Digest::Sha256),
    ("sha512", Digest::Sha512),
];

pub fn plain_digest_algorithm(name: &str) -> Option<Digest> {
    PLAIN_DIGEST_ALGORITHMS
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, d)| *d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_pbkdf2_name_is_listed_once_and_every_digest_but_mdc2_is_implemented() {
        let mut names: Vec<&str> = PBKDF2_DIGESTS.iter().map(|(n, _)| *n).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), PBKDF2_DIGESTS.len());
        assert_eq!(PBKDF2_DIGESTS.len(), 33);
        for (name, digest) in PBKDF2_DIGESTS {
            assert_eq!(
                digest.implemented(),
                !name.to_ascii_lowercase().contains("mdc2")
            );
        }
    }

    #[test]
    fn ldap_schemes_are_found_case_insensitively() {
        assert_eq!(ldap_scheme("ssha").map(|s| s.digest), Some(Digest::Sha1));
        assert_eq!(ldap_scheme("SMD5").map(|s| s.salted), Some(true));
        assert!(ldap_scheme("CRYPT").is_none());
    }
}
