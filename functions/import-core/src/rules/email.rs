//! The `format: email` check Auth0 applies to `email` and `mfa_factors[].email.value`.
//! Mirrors validator.js `isEmail(s, { require_tld: true })`, which z-schema (Auth0's validator) calls.
//!
//! Deliberate differences from validator.js, all towards rejecting:
//! - quoted local parts (`"john doe"@example.com`) are rejected: they are vanishingly rare in user
//!   data, most need whitespace (which we reject anywhere), and getting quoted-pair escaping right
//!   buys nothing for an identity provider that lower-cases and matches addresses as plain strings;
//! - whitespace is rejected everywhere, including Unicode spaces validator.js's ranges let through.

use std::fmt;

/// Why an address fails. Messages name the rule, never echo the address (it is personal data
/// that would otherwise be copied into every report and log line).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum EmailProblem {
    Empty,
    Whitespace,
    TooLong,
    NoAt,
    SeveralAts,
    QuotedLocalPart,
    EmptyLocalPart,
    LocalPartTooLong,
    LocalPartDots,
    LocalPartCharacter(char),
    EmptyDomain,
    DomainEmptyLabel,
    DomainSingleLabel,
    DomainLabelTooLong,
    DomainLabelHyphen,
    DomainCharacter(char),
    TopLevelDomain,
}

impl fmt::Display for EmailProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EmailProblem::Empty => f.write_str("the address is empty"),
            EmailProblem::Whitespace => f.write_str("the address contains whitespace"),
            EmailProblem::TooLong => {
                write!(f, "the address is longer than {MAX_ADDRESS} characters")
            }
            EmailProblem::NoAt => f.write_str("the address has no @"),
            EmailProblem::SeveralAts => {
                f.write_str("the address has more than one @ (quoted local parts are not accepted)")
            }
            EmailProblem::QuotedLocalPart => f.write_str("quoted local parts are not accepted"),
            EmailProblem::EmptyLocalPart => f.write_str("nothing before the @"),
            EmailProblem::LocalPartTooLong => {
                write!(
                    f,
                    "the part before the @ is longer than {MAX_LOCAL_BYTES} bytes"
                )
            }
            EmailProblem::LocalPartDots => f.write_str(
                "the part before the @ starts or ends with a dot or has two dots in a row",
            ),
            EmailProblem::LocalPartCharacter(c) => {
                write!(
                    f,
                    "the part before the @ contains {c:?}, which is not allowed"
                )
            }
            EmailProblem::EmptyDomain => f.write_str("nothing after the @"),
            EmailProblem::DomainEmptyLabel => {
                f.write_str("the domain starts or ends with a dot or has two dots in a row")
            }
            EmailProblem::DomainSingleLabel => {
                f.write_str("the domain needs at least two labels, like example.com")
            }
            EmailProblem::DomainLabelTooLong => {
                write!(f, "a domain label is longer than {MAX_LABEL} characters")
            }
            EmailProblem::DomainLabelHyphen => {
                f.write_str("a domain label starts or ends with a hyphen")
            }
            EmailProblem::DomainCharacter(c) => {
                write!(f, "the domain contains {c:?}, which is not allowed")
            }
            EmailProblem::TopLevelDomain => f.write_str(
                "the top-level domain must be at least two letters (or an xn-- label), not digits",
            ),
        }
    }
}

/// validator.js counts the whole address in UTF-16 units (JavaScript `length`).
const MAX_ADDRESS: usize = 254;
/// validator.js checks the local part with `isByteLength` (UTF-8 bytes).
const MAX_LOCAL_BYTES: usize = 64;
/// validator.js `isFQDN` counts each label in UTF-16 units.
const MAX_LABEL: usize = 63;

pub(crate) fn check_email(address: &str) -> Result<(), EmailProblem> {
    if ascii_address_passes(address) {
        return Ok(());
    }
    check_fully(address)
}

/// Whether `check_fully` accepts `address`, for the common address (ASCII) by the same rule
/// functions without the scans that only serve the explanation: in ASCII, UTF-16 units are
/// bytes, and every space fails a character predicate as surely as the whitespace scan. False
/// for anything else, which `check_fully` then judges and explains.
fn ascii_address_passes(address: &str) -> bool {
    address.is_ascii()
        && address.len() <= MAX_ADDRESS
        && split_at_sign(address).is_ok_and(|(local, domain)| {
            check_local_part(local).is_ok() && check_domain(domain).is_ok()
        })
}

fn check_fully(address: &str) -> Result<(), EmailProblem> {
    if address.is_empty() {
        return Err(EmailProblem::Empty);
    }
    // For ASCII (nearly every address), `is_space` is exactly these bytes.
    let has_space = if address.is_ascii() {
        address.bytes().any(is_ascii_space)
    } else {
        address.chars().any(is_space)
    };
    if has_space {
        return Err(EmailProblem::Whitespace);
    }
    // UTF-16 units never outnumber UTF-8 bytes: only long addresses need counting.
    if address.len() > MAX_ADDRESS && address.encode_utf16().count() > MAX_ADDRESS {
        return Err(EmailProblem::TooLong);
    }
    let (local, domain) = split_at_sign(address)?;
    check_local_part(local)?;
    check_domain(domain)
}

/// `is_space` for an ASCII byte.
fn is_ascii_space(b: u8) -> bool {
    matches!(b, b'\t'..=b'\r' | b' ')
}

/// JavaScript's `\s` is wider than Rust's `char::is_whitespace` by the byte-order mark.
fn is_space(c: char) -> bool {
    c.is_whitespace() || c == '\u{FEFF}'
}

fn split_at_sign(address: &str) -> Result<(&str, &str), EmailProblem> {
    if address.starts_with('"') {
        return Err(EmailProblem::QuotedLocalPart);
    }
    // By bytes (`@` and `.` are ASCII, so every cut is a character boundary): `str`'s char
    // searchers cost more to set up than these short strings take to scan.
    let at = address
        .bytes()
        .position(|b| b == b'@')
        .ok_or(EmailProblem::NoAt)?;
    let (local, rest) = address.split_at(at);
    let domain = &rest[1..];
    if domain.bytes().any(|b| b == b'@') {
        return Err(EmailProblem::SeveralAts);
    }
    Ok((local, domain))
}

fn check_local_part(local: &str) -> Result<(), EmailProblem> {
    if local.is_empty() {
        return Err(EmailProblem::EmptyLocalPart);
    }
    if local.len() > MAX_LOCAL_BYTES {
        return Err(EmailProblem::LocalPartTooLong);
    }
    if local.starts_with('.')
        || local.ends_with('.')
        || local.as_bytes().windows(2).any(|pair| pair == b"..")
    {
        return Err(EmailProblem::LocalPartDots);
    }
    // Dots are placed right by now; the rest must be `atext`.
    const LOCAL_OR_DOT_ASCII: [bool; 128] = {
        let mut table = LOCAL_ASCII;
        table[b'.' as usize] = true;
        table
    };
    match first_refused(local, &LOCAL_OR_DOT_ASCII, |c| c == '.' || is_local_char(c)) {
        Some(c) => Err(EmailProblem::LocalPartCharacter(c)),
        None => Ok(()),
    }
}

/// RFC 5322 `atext` besides letters and digits.
const ATEXT_PUNCTUATION: &[u8] = b"!#$%&'*+-/=?^_`{|}~";

/// By ASCII byte, whether it is a letter, a digit or one of `extra`: the ASCII half of a
/// character predicate, looked up once a byte where the address is ASCII.
const fn alphanumeric_and(extra: &[u8]) -> [bool; 128] {
    let mut table = [false; 128];
    let mut b = 0;
    while b < 128 {
        table[b] = (b as u8).is_ascii_alphanumeric();
        b += 1;
    }
    let mut i = 0;
    while i < extra.len() {
        table[extra[i] as usize] = true;
        i += 1;
    }
    table
}

const LOCAL_ASCII: [bool; 128] = alphanumeric_and(ATEXT_PUNCTUATION);
const DOMAIN_ASCII: [bool; 128] = alphanumeric_and(b"-");

/// RFC 5322 `atext`, plus the non-ASCII ranges of validator.js `emailUserUtf8Part`
/// (`\u00A1-\uD7FF\uF900-\uFDCF\uFDF0-\uFFEF`: Basic Multilingual Plane only, so characters
/// outside it, which JavaScript sees as surrogate pairs, are rejected as they are there).
fn is_local_char(c: char) -> bool {
    match u8::try_from(c) {
        Ok(b) if b.is_ascii() => LOCAL_ASCII[usize::from(b)],
        _ => is_utf8_letter_range(c),
    }
}

/// The first character of `s` that `allowed` refuses, where `ascii` is what `allowed` says of
/// each ASCII byte: an ASCII string (nearly every address) is looked at byte by byte.
fn first_refused(s: &str, ascii: &[bool; 128], allowed: impl Fn(char) -> bool) -> Option<char> {
    if s.is_ascii() {
        s.bytes().find(|&b| !ascii[usize::from(b)]).map(char::from)
    } else {
        s.chars().find(|&c| !allowed(c))
    }
}

fn is_utf8_letter_range(c: char) -> bool {
    matches!(c, '\u{A1}'..='\u{D7FF}' | '\u{F900}'..='\u{FDCF}' | '\u{FDF0}'..='\u{FFEF}')
}

fn check_domain(domain: &str) -> Result<(), EmailProblem> {
    if domain.is_empty() {
        return Err(EmailProblem::EmptyDomain);
    }
    let mut labels = 0usize;
    let mut last = "";
    for label in super::split_ascii(domain, b'.') {
        check_domain_label(label)?;
        labels += 1;
        last = label;
    }
    if labels < 2 {
        return Err(EmailProblem::DomainSingleLabel);
    }
    if is_top_level_domain(last) {
        Ok(())
    } else {
        Err(EmailProblem::TopLevelDomain)
    }
}

fn check_domain_label(label: &str) -> Result<(), EmailProblem> {
    if label.is_empty() {
        return Err(EmailProblem::DomainEmptyLabel);
    }
    if label.len() > MAX_LABEL && label.encode_utf16().count() > MAX_LABEL {
        return Err(EmailProblem::DomainLabelTooLong);
    }
    if label.starts_with('-') || label.ends_with('-') {
        return Err(EmailProblem::DomainLabelHyphen);
    }
    match first_refused(label, &DOMAIN_ASCII, is_domain_char) {
        Some(c) => Err(EmailProblem::DomainCharacter(c)),
        None => Ok(()),
    }
}

/// Letters, digits and hyphens (no underscore), or any non-ASCII character (IDN labels) except
/// full-width ASCII look-alikes (U+FF01..U+FF5E), which validator.js `isFQDN` rejects.
fn is_domain_char(c: char) -> bool {
    match u8::try_from(c) {
        Ok(b) if b.is_ascii() => DOMAIN_ASCII[usize::from(b)],
        _ => c >= '\u{A1}' && !('\u{FF01}'..='\u{FF5E}').contains(&c),
    }
}

/// validator.js: `^([a-z\u00A1-\u00A8\u00AA-\uD7FF\uF900-\uFDCF\uFDF0-\uFFEF]{2,}|xn[a-z0-9-]{2,})$`i,
/// so a TLD of digits (an IP-like `1.2.3.4`) or of one letter is refused.
fn is_top_level_domain(tld: &str) -> bool {
    let lower = |b: u8| b.to_ascii_lowercase();
    let bytes = tld.as_bytes();
    let punycode = bytes.len() >= 4
        && lower(bytes[0]) == b'x'
        && lower(bytes[1]) == b'n'
        && bytes[2..]
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || b == b'-');
    let letter = |c: char| c.is_ascii_alphabetic() || (c != '\u{A9}' && is_utf8_letter_range(c));
    punycode
        || if tld.is_ascii() {
            // A byte a character, and the only ASCII letters are `is_ascii_alphabetic`'s.
            tld.len() >= 2 && tld.bytes().all(|b| b.is_ascii_alphabetic())
        } else {
            tld.chars().count() >= 2 && tld.chars().all(letter)
        }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ascii_space_is_is_space_on_ascii() {
        for b in 0u8..128 {
            assert_eq!(is_ascii_space(b), is_space(char::from(b)), "byte {b}");
        }
    }

    #[test]
    fn accepts_ordinary_and_international_addresses() {
        for ok in [
            "jane@example.com",
            "jane.doe+tag@sub.example.co.uk",
            "o'brien@example.ie",
            "x@a-b.io",
            "!#$%&'*+-/=?^_`{|}~@example.org",
            "josé@exemple.fr",
            "用户@例子.广告",
            "user@münchen.de",
            "user@example.xn--p1ai",
            "a@b.co",
        ] {
            assert_eq!(check_email(ok), Ok(()), "{ok}");
        }
    }

    #[test]
    fn rejects_with_the_specific_reason() {
        let cases = [
            ("", EmailProblem::Empty),
            ("jane doe@example.com", EmailProblem::Whitespace),
            ("jane@example.com\u{3000}", EmailProblem::Whitespace),
            ("jane.example.com", EmailProblem::NoAt),
            ("a@b@example.com", EmailProblem::SeveralAts),
            ("\"a@b\"@example.com", EmailProblem::QuotedLocalPart),
            ("@example.com", EmailProblem::EmptyLocalPart),
            (".jane@example.com", EmailProblem::LocalPartDots),
            ("jane.@example.com", EmailProblem::LocalPartDots),
            ("ja..ne@example.com", EmailProblem::LocalPartDots),
            ("ja(ne)@example.com", EmailProblem::LocalPartCharacter('(')),
            ("jane😀@example.com", EmailProblem::LocalPartCharacter('😀')),
            ("jane@", EmailProblem::EmptyDomain),
            ("jane@localhost", EmailProblem::DomainSingleLabel),
            ("jane@example..com", EmailProblem::DomainEmptyLabel),
            ("jane@example.com.", EmailProblem::DomainEmptyLabel),
            ("jane@-example.com", EmailProblem::DomainLabelHyphen),
            ("jane@example-.com", EmailProblem::DomainLabelHyphen),
            ("jane@ex_ample.com", EmailProblem::DomainCharacter('_')),
            ("jane@[192.168.0.1]", EmailProblem::DomainCharacter('[')),
            ("jane@ｅxample.com", EmailProblem::DomainCharacter('ｅ')),
            ("jane@192.168.0.1", EmailProblem::TopLevelDomain),
            ("jane@example.c", EmailProblem::TopLevelDomain),
            ("jane@example.c0m", EmailProblem::TopLevelDomain),
        ];
        for (address, problem) in cases {
            assert_eq!(check_email(address), Err(problem), "{address}");
        }
    }

    #[test]
    fn length_limits() {
        let local64 = "a".repeat(64);
        assert_eq!(check_email(&format!("{local64}@example.com")), Ok(()));
        assert_eq!(
            check_email(&format!("a{local64}@example.com")),
            Err(EmailProblem::LocalPartTooLong)
        );
        // 32 two-byte characters are 64 bytes; one more is 66.
        assert_eq!(
            check_email(&format!("{}@example.com", "é".repeat(32))),
            Ok(())
        );
        assert_eq!(
            check_email(&format!("{}@example.com", "é".repeat(33))),
            Err(EmailProblem::LocalPartTooLong)
        );
        let label63 = "b".repeat(63);
        assert_eq!(check_email(&format!("a@{label63}.com")), Ok(()));
        assert_eq!(
            check_email(&format!("a@b{label63}.com")),
            Err(EmailProblem::DomainLabelTooLong)
        );
        // 254 in total: a@ + 4 labels of 60 + dots + ".com" is built to land exactly on the limit.
        let domain = format!("{0}.{0}.{0}.{1}.com", "c".repeat(60), "c".repeat(63));
        let exact = format!("{}@{domain}", "a".repeat(254 - 1 - domain.len()));
        assert_eq!(exact.len(), 254);
        assert_eq!(check_email(&exact), Ok(()));
        assert_eq!(
            check_email(&format!("a{exact}")),
            Err(EmailProblem::TooLong)
        );
    }

    proptest::proptest! {
        /// The one-pass ASCII path accepts exactly the ASCII addresses the full check accepts.
        /// Addresses are built as local@domain from characters near every rule (dots, hyphens,
        /// quotes, spaces, a second @, digits-only and one-letter TLDs, non-ASCII), with runs
        /// long enough to cross the length limits.
        #[test]
        fn the_ascii_path_agrees_with_the_full_check(
            local in "[a-z.+_\"\\- é@]{0,3}(a{0,62}|[a-z.]{0,5})[a-z.\\- ]{0,3}",
            labels in proptest::collection::vec("(-?[a-z0-9]{0,4}|b{60,64}|[a-zé_ -]{0,3})-?", 0..6),
            tld in "(com|x|12|xn--p1ai|Ab|é|c-m|)",
            at in "(@|@@|)",
        ) {
            let mut domain = labels.join(".");
            if !tld.is_empty() {
                domain = if domain.is_empty() { tld } else { format!("{domain}.{tld}") };
            }
            let address = format!("{local}{at}{domain}");
            let full = address.is_ascii() && check_fully(&address).is_ok();
            proptest::prop_assert_eq!(ascii_address_passes(&address), full, "{}", address);
        }
    }

    proptest::proptest! {
        /// The byte tables say of each ASCII string what the character predicates say.
        #[test]
        fn ascii_tables_agree_with_the_predicates(s in "[ -~]{0,12}", wide in "[ -~é😀ｅ]{0,6}") {
            for text in [s.as_str(), wide.as_str()] {
                proptest::prop_assert_eq!(
                    first_refused(text, &LOCAL_ASCII, is_local_char),
                    text.chars().find(|&c| !is_local_char(c))
                );
                proptest::prop_assert_eq!(
                    first_refused(text, &DOMAIN_ASCII, is_domain_char),
                    text.chars().find(|&c| !is_domain_char(c))
                );
            }
        }
    }

    #[test]
    fn ascii_tables_hold_letters_digits_and_the_listed_punctuation() {
        for b in 0u8..128 {
            let c = char::from(b);
            assert_eq!(
                is_local_char(c),
                c.is_ascii_alphanumeric() || "!#$%&'*+-/=?^_`{|}~".contains(c),
                "{c:?}"
            );
            assert_eq!(
                is_domain_char(c),
                c.is_ascii_alphanumeric() || c == '-',
                "{c:?}"
            );
        }
    }

    #[test]
    fn the_ascii_path_takes_the_common_address_and_leaves_the_rest() {
        assert!(ascii_address_passes("jane.doe+tag@sub.example.co.uk"));
        for left in [
            "josé@exemple.fr",
            "jane@localhost",
            "a..b@example.com",
            "a@b@c.com",
            "",
        ] {
            assert!(!ascii_address_passes(left), "{left}");
        }
    }

    #[test]
    fn messages_never_echo_the_address() {
        let problem = check_email("secret.person@localhost").unwrap_err();
        assert!(!problem.to_string().contains("secret.person"));
    }
}
