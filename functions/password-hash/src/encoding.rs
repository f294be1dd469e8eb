//! Text ↔ bytes the way Auth0's Node.js does it: `password.encoding` is `Buffer.from(password,
//! encoding)`, and `hash`/`salt`/`key` values are hex, base64 or utf8 text of their bytes.

use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use base64::Engine as _;

/// `custom_password_hash.password.encoding`: how the legacy system turned the typed password into
/// bytes. Auth0 re-encodes the password typed at login the same way (facts §4.5).
#[derive(Clone, Copy, PartialEq, Eq, Debug, Hash)]
pub enum PasswordEncoding {
    Utf8,
    /// `utf16le` and its Node alias `ucs2`.
    Utf16le,
    /// `latin1` and its Node alias `binary`: each UTF-16 code unit's low byte.
    Latin1,
    /// Node writes `ascii` exactly like `latin1` (its docs: "equivalent to using 'latin1'" when
    /// encoding a string), so a non-ASCII character keeps its low byte rather than losing bit 7.
    Ascii,
}

impl PasswordEncoding {
    /// Every value Auth0's schema lists, with the variant each means.
    pub const NAMES: &'static [(&'static str, PasswordEncoding)] = &[
        ("utf8", PasswordEncoding::Utf8),
        ("utf16le", PasswordEncoding::Utf16le),
        ("ucs2", PasswordEncoding::Utf16le),
        ("latin1", PasswordEncoding::Latin1),
        ("binary", PasswordEncoding::Latin1),
        ("ascii", PasswordEncoding::Ascii),
    ];

    pub fn parse(name: &str) -> Option<Self> {
        Self::NAMES
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, e)| *e)
    }

    pub fn name(self) -> &'static str {
        match self {
            PasswordEncoding::Utf8 => "utf8",
            PasswordEncoding::Utf16le => "utf16le",
            PasswordEncoding::Latin1 => "latin1",
            PasswordEncoding::Ascii => "ascii",
        }
    }

    /// `Buffer.from(password, encoding)`.
    pub fn encode(self, password: &str) -> Vec<u8> {
        match self {
            PasswordEncoding::Utf8 => password.as_bytes().to_vec(),
            PasswordEncoding::Utf16le => password
                .encode_utf16()
                .flat_map(|unit| unit.to_le_bytes())
                .collect(),
            // The low byte of each UTF-16 unit is the point of these encodings: truncation intended.
            #[allow(clippy::cast_possible_truncation)]
            PasswordEncoding::Latin1 | PasswordEncoding::Ascii => {
                password.encode_utf16().map(|unit| unit as u8).collect()
            }
        }
    }
}

/// `hash.encoding`, `salt.encoding`, `hash.key.encoding`.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Hash)]
pub enum BinaryEncoding {
    Base64,
    Hex,
    Utf8,
}

impl BinaryEncoding {
    pub const ALL: [BinaryEncoding; 3] = [
        BinaryEncoding::Utf8,
        BinaryEncoding::Hex,
        BinaryEncoding::Base64,
    ];

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|e| e.name() == name)
    }

    pub fn name(self) -> &'static str {
        match self {
            BinaryEncoding::Base64 => "base64",
            BinaryEncoding::Hex => "hex",
            BinaryEncoding::Utf8 => "utf8",
        }
    }

    /// The bytes `text` stands for, or why it does not decode. Hex is case-insensitive; base64
    /// may be standard or URL-safe, padded or not (what Auth0 accepts, facts §4.5).
    pub fn decode(self, text: &str) -> Result<Vec<u8>, DecodeProblem> {
        match self {
            BinaryEncoding::Utf8 => Ok(text.as_bytes().to_vec()),
            BinaryEncoding::Hex => decode_hex(text),
            BinaryEncoding::Base64 => decode_base64(text),
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug, thiserror::Error)]
pub enum DecodeProblem {
    #[error("is not valid hex (0-9, a-f, an even number of digits)")]
    Hex,
    #[error("is not valid base64 (standard or URL-safe alphabet, = only as padding)")]
    Base64,
}

fn decode_hex(text: &str) -> Result<Vec<u8>, DecodeProblem> {
    if !text.len().is_multiple_of(2) {
        return Err(DecodeProblem::Hex);
    }
    text.as_bytes()
        .chunks_exact(2)
        .map(|pair| {
            let digit = |b: u8| (b as char).to_digit(16).ok_or(DecodeProblem::Hex);
            // Two hex digits make at most 255.
            #[allow(clippy::cast_possible_truncation)]
            Ok((digit(pair[0])? * 16 + digit(pair[1])?) as u8)
        })
        .collect()
}

/// Standard-alphabet base64 that takes padding or not and ignores stray low bits, as Node does.
const LENIENT: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new()
        .with_decode_padding_mode(DecodePaddingMode::Indifferent)
        .with_decode_allow_trailing_bits(true),
);

fn decode_base64(text: &str) -> Result<Vec<u8>, DecodeProblem> {
    let standard: String = text
        .chars()
        .map(|c| match c {
            '-' => '+',
            '_' => '/',
            c => c,
        })
        .collect();
    LENIENT.decode(standard).map_err(|_| DecodeProblem::Base64)
}

/// Lower-case hex of `bytes`.
pub fn to_hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        // Writing to a String cannot fail.
        let _ = write!(out, "{b:02x}");
    }
    out
}

/// Standard base64 with padding (what `hash.encoding: base64` values usually look like).
pub fn to_base64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// Standard base64 without padding: PHC strings' "B64" (facts §4.6).
pub fn to_phc_b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD_NO_PAD.encode(bytes)
}

/// The bytes of a PHC field (standard alphabet, padding optional).
pub fn from_phc_b64(text: &str) -> Result<Vec<u8>, DecodeProblem> {
    if text.contains(['-', '_']) {
        return Err(DecodeProblem::Base64);
    }
    decode_base64(text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn node_buffer_semantics() {
        assert_eq!(PasswordEncoding::Utf8.encode("é"), vec![0xc3, 0xa9]);
        assert_eq!(PasswordEncoding::Utf16le.encode("é"), vec![0xe9, 0x00]);
        assert_eq!(PasswordEncoding::Latin1.encode("é"), vec![0xe9]);
        assert_eq!(PasswordEncoding::Ascii.encode("é"), vec![0xe9]);
        // U+20AC € is 0x20AC in UTF-16: latin1 keeps 0xAC.
        assert_eq!(PasswordEncoding::Latin1.encode("€"), vec![0xac]);
        // U+1F600 is a surrogate pair D83D DE00: two units, two low bytes.
        assert_eq!(PasswordEncoding::Latin1.encode("😀"), vec![0x3d, 0x00]);
        assert_eq!(
            PasswordEncoding::parse("ucs2"),
            Some(PasswordEncoding::Utf16le)
        );
        assert_eq!(
            PasswordEncoding::parse("binary"),
            Some(PasswordEncoding::Latin1)
        );
    }

    #[test]
    fn base64_takes_both_alphabets_with_or_without_padding() {
        for text in ["+/8=", "+/8", "-_8", "-_8="] {
            assert_eq!(decode_base64(text), Ok(vec![0xfb, 0xff]), "{text}");
        }
        assert!(decode_base64("a").is_err());
        assert!(decode_base64("ab$d").is_err());
        assert_eq!(decode_hex("aBcD"), Ok(vec![0xab, 0xcd]));
        assert!(decode_hex("abc").is_err());
        assert!(decode_hex("zz").is_err());
    }

    proptest! {
        #[test]
        fn encodings_round_trip(bytes in proptest::collection::vec(any::<u8>(), 0..80)) {
            prop_assert_eq!(BinaryEncoding::Hex.decode(&to_hex(&bytes)), Ok(bytes.clone()));
            prop_assert_eq!(BinaryEncoding::Hex.decode(&to_hex(&bytes).to_uppercase()), Ok(bytes.clone()));
            prop_assert_eq!(BinaryEncoding::Base64.decode(&to_base64(&bytes)), Ok(bytes.clone()));
            prop_assert_eq!(from_phc_b64(&to_phc_b64(&bytes)), Ok(bytes.clone()));
            let url_safe = to_phc_b64(&bytes).replace('+', "-").replace('/', "_");
            prop_assert_eq!(BinaryEncoding::Base64.decode(&url_safe), Ok(bytes));
        }

        #[test]
        fn utf16_and_latin1_agree_on_the_low_byte(password in "\\PC{0,24}") {
            let wide = PasswordEncoding::Utf16le.encode(&password);
            let narrow = PasswordEncoding::Latin1.encode(&password);
            prop_assert_eq!(wide.len(), narrow.len() * 2);
            for (i, b) in narrow.iter().enumerate() {
                prop_assert_eq!(wide[2 * i], *b);
            }
            prop_assert_eq!(PasswordEncoding::Ascii.encode(&password), narrow);
        }
    }
}
