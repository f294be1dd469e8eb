//! A starting mapping guessed from a CSV header (`mapping init`): the obvious columns (email,
//! verified, username, names, phone, password hash) mapped, every other one listed in a comment.

use std::fmt::Write as _;
use std::io::{BufRead as _, Read};

use super::SourceFormat;
use crate::input::{classify_io, open_stream, InputError};

/// Header names (lowercased, only letters and digits kept) → the field and what to add.
const GUESSES: &[(&[&str], &str, &str)] = &[
    (
        &["email", "emailaddress", "mail", "useremail", "emailid"],
        "email",
        "lowercase = true\ntrim = true\n",
    ),
    (
        &[
            "emailverified",
            "emailconfirmed",
            "verified",
            "isverified",
            "isemailverified",
        ],
        "email_verified",
        "type = \"bool\"\n",
    ),
    (
        &[
            "emailconfirmedat",
            "emailverifiedat",
            "confirmedat",
            "verifiedat",
        ],
        "email_verified",
        "type = \"present\"\n",
    ),
    (
        &["username", "login", "loginname", "userlogin", "user"],
        "username",
        "",
    ),
    (
        &["firstname", "givenname", "fname", "first", "forename"],
        "given_name",
        "",
    ),
    (
        &["lastname", "familyname", "surname", "lname", "last"],
        "family_name",
        "",
    ),
    (&["name", "fullname", "displayname"], "name", ""),
    (
        &[
            "phone",
            "phonenumber",
            "mobile",
            "mobilephone",
            "telephone",
            "tel",
        ],
        "phone_number",
        "",
    ),
    (
        &[
            "phoneverified",
            "phoneconfirmed",
            "phonenumberverified",
            "phonenumberconfirmed",
        ],
        "phone_verified",
        "type = \"bool\"\n",
    ),
];

const HASH_COLUMNS: &[&str] = &[
    "password",
    "passwordhash",
    "hash",
    "encryptedpassword",
    "hashedpassword",
    "passhash",
    "pwd",
    "passwd",
    "pwhash",
];

fn normalise(name: &str) -> String {
    name.chars()
        .filter(char::is_ascii_alphanumeric)
        .map(|c| c.to_ascii_lowercase())
        .collect()
}

/// The header of a CSV (or TSV: a tab and no comma in it), gzip and BOM taken off.
pub fn read_header<R: Read + Send + 'static>(
    input: R,
) -> Result<(SourceFormat, Vec<String>), InputError> {
    read_head(input).map(|head| (head.format, head.header))
}

/// The start of a CSV: its format, header and first row (a sample for telling the hash format).
pub struct Head {
    pub format: SourceFormat,
    pub header: Vec<String>,
    pub first_row: Vec<String>,
}

pub fn read_head<R: Read + Send + 'static>(input: R) -> Result<Head, InputError> {
    let (mut inner, _) = open_stream(input)?;
    let mut first = Vec::new();
    // The header and first row's lines (up to 1 MiB): a sample, not a parse of the file.
    let mut lines = 0;
    loop {
        let buf = inner.fill_buf().map_err(classify_io(0))?;
        if buf.is_empty() {
            break;
        }
        let (take, newline) = match memchr::memchr(b'\n', buf) {
            Some(i) => (i + 1, true),
            None => (buf.len(), false),
        };
        first.extend_from_slice(&buf[..take]);
        inner.consume(take);
        lines += usize::from(newline);
        if lines == 2 || first.len() > 1 << 20 {
            break;
        }
    }
    let text = String::from_utf8_lossy(&first);
    let text = text.trim_start_matches('\u{feff}');
    let line = text.lines().next().unwrap_or("").trim_end_matches('\r');
    let format = if line.contains('\t') && !line.contains(',') {
        SourceFormat::Tsv
    } else {
        SourceFormat::Csv
    };
    let delimiter = if format == SourceFormat::Tsv {
        b'\t'
    } else {
        b','
    };
    let mut reader = csv::ReaderBuilder::new()
        .delimiter(delimiter)
        .has_headers(false)
        .flexible(true)
        .from_reader(text.as_bytes());
    let mut rows = reader.records();
    let mut row = || -> Vec<String> {
        match rows.next() {
            Some(Ok(record)) => record.iter().map(|h| h.trim().to_string()).collect(),
            _ => Vec::new(),
        }
    };
    let header = row();
    let first_row = row();
    Ok(Head {
        format,
        header,
        first_row,
    })
}

/// The converter format a stored hash looks written in (`bcrypt` when nothing tells).
pub fn hash_format_of(sample: &str) -> &'static str {
    const DJANGO: [&str; 8] = [
        "pbkdf2_sha256$",
        "pbkdf2_sha1$",
        "argon2$",
        "bcrypt$",
        "bcrypt_sha256$",
        "scrypt$",
        "md5$",
        "sha1$",
    ];
    let s = sample.trim();
    if DJANGO.iter().any(|p| s.starts_with(p)) {
        "django"
    } else if s.starts_with("pbkdf2:") || s.starts_with("scrypt:") {
        "werkzeug"
    } else if s.starts_with("$pbkdf2") {
        "passlib"
    } else if s.starts_with("$argon2") {
        "php"
    } else if s.starts_with('{') && s.contains("secretData") {
        "keycloak"
    } else if s.starts_with('{') {
        "ldap"
    } else if s.starts_with("$P$") || s.starts_with("$H$") {
        "phpass"
    } else if s.starts_with("$S$") {
        "drupal7"
    } else if s.starts_with("AQAAAA") || (s.starts_with("AA") && s.len() == 68) {
        // ASP.NET Identity: base64 of a 0x01 (v3) or 0x00 (v2) marker byte and its layout.
        "aspnet-identity"
    } else {
        "bcrypt"
    }
}

/// The text of a starting mapping for `header`; `sample`, a first row, tells the hash format.
pub fn starting_mapping(format: SourceFormat, header: &[String], sample: &[String]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# A starting mapping guessed from the header: check every entry, then run\n\
         #   auth0-s3-import split FILE --mapping THIS --out run/\n\
         # Types: string (default), bool, integer, json, present. Targets: Auth0's user fields,\n\
         # or user_metadata.<name> / app_metadata.<name>.\n\
         version = 1\nformat = \"{}\"\n",
        match format {
            SourceFormat::Tsv => "tsv",
            _ => "csv",
        }
    );
    let mut taken: Vec<&str> = Vec::new();
    let mut unmapped = Vec::new();
    let mut password = None;
    for (i, column) in header.iter().enumerate() {
        let key = normalise(column);
        let guess = GUESSES
            .iter()
            .find(|(names, to, _)| names.contains(&key.as_str()) && !taken.contains(to));
        if let Some((_, to, extra)) = guess {
            taken.push(to);
            let _ = writeln!(
                out,
                "[[field]]\nfrom = {}\nto = \"{to}\"\n{extra}",
                toml_string(column)
            );
        } else if password.is_none() && HASH_COLUMNS.contains(&key.as_str()) {
            let seen = sample.get(i).map_or("", String::as_str);
            password = Some((column.clone(), hash_format_of(seen)));
        } else {
            unmapped.push(column.clone());
        }
    }
    if !taken.contains(&"email") {
        let _ = writeln!(
            out,
            "# No column looks like the e-mail address, which Auth0 needs: name it here.\n\
             [[field]]\nfrom = \"EMAIL_COLUMN\"\nto = \"email\"\nlowercase = true\n"
        );
    }
    for column in &unmapped {
        let _ = writeln!(
            out,
            "# [[field]]\n# from = {}\n# to = \"user_metadata.{}\"\n",
            toml_string(column),
            normalise(column)
        );
    }
    match password {
        Some((column, hash_format)) => {
            let names: Vec<&str> = auth0_password_hash::LegacyFormat::ALL
                .iter()
                .map(|f| f.name())
                .collect();
            let _ = writeln!(
                out,
                "# The stored hash: set format to how it is written, one of {}, or\n\
                 # \"digest\" with algorithm = \"sha256\" (a bare digest; salt_from = \"<column>\",\n\
                 # salt_encoding = \"hex\", salt_position = \"prefix\" for a salt in its own column).\n\
                 [password]\nfrom = {}\nformat = \"{hash_format}\"   # told from the first row",
                names.join(", "),
                toml_string(&column)
            );
        }
        None => {
            let _ = writeln!(
                out,
                "# No column looks like a password hash: users are imported without one and must\n\
                 # reset it. If there is one, add:\n# [password]\n# from = \"<column>\"\n# format = \"bcrypt\""
            );
        }
    }
    out
}

/// A TOML basic string (the JSON escaping is valid TOML for what headers hold).
fn toml_string(text: &str) -> String {
    serde_json::to_string(text).unwrap_or_else(|_| "\"\"".into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mapping::Mapping;

    #[test]
    fn the_obvious_columns_are_mapped_and_the_result_checks() {
        let data = "\u{feff}ID,E-Mail,Email Verified,First Name,Surname,Mobile,Password_Hash,Shoe Size\r\n1,a@x.io,1,A,B,+1,h,9\r\n";
        let head = read_head(std::io::Cursor::new(data.as_bytes().to_vec())).unwrap();
        let (format, header) = (head.format, head.header);
        assert_eq!(format, SourceFormat::Csv);
        assert_eq!(header[1], "E-Mail");
        assert_eq!(head.first_row[1], "a@x.io");
        let text = starting_mapping(format, &header, &head.first_row);
        let mapping = Mapping::from_toml(&text).unwrap();
        let targets: Vec<String> = mapping.fields.iter().map(|f| f.to.join(".")).collect();
        assert_eq!(
            targets,
            [
                "email",
                "email_verified",
                "given_name",
                "family_name",
                "phone_number"
            ]
        );
        assert!(mapping.password.is_some());
        assert!(text.contains("# from = \"Shoe Size\""), "{text}");
    }

    #[test]
    fn a_header_without_email_says_so() {
        let text = starting_mapping(SourceFormat::Tsv, &["login".into(), "pw".into()], &[]);
        assert!(text.contains("format = \"tsv\""));
        assert!(text.contains("No column looks like the e-mail"));
        assert!(text.contains("No column looks like a password hash"));
    }

    #[test]
    fn the_hash_format_is_told_from_a_sample() {
        for (sample, format) in [
            ("pbkdf2_sha256$870000$salt$aGFzaA==", "django"),
            ("$2b$10$abcdefghijklmnopqrstuv", "bcrypt"),
            ("AQAAAAEAACcQAAAAE", "aspnet-identity"),
            ("pbkdf2:sha256:600000$salt$hex", "werkzeug"),
            ("{SSHA}abc", "ldap"),
            ("$P$Babcdefgh", "phpass"),
        ] {
            assert_eq!(hash_format_of(sample), format, "{sample}");
        }
    }
}
