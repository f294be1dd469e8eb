//! Mappings: how the columns of a legacy CSV (or the members of another system's JSON export)
//! become Auth0 import records, as data read from TOML and checked whole before any record is read.
//!
//! A mapped record then goes through the same rules, chunking and reports as any other, so every
//! guarantee of the split stage holds for it. Conventions: a per-record error names the source
//! line, the column (or member) and the reason, never the value of the password column; a
//! mapping error names the entry of the mapping file at fault.

pub mod guess;
pub mod presets;
mod reader;

use std::collections::BTreeSet;

use auth0_password_hash::encoding::BinaryEncoding;
use auth0_password_hash::stored::SaltPosition;
use auth0_password_hash::{convert, convert_digest, BareSalt, LegacyFormat};
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::split::codes;
use crate::violation::Violation;

pub use reader::MappedReader;

/// The mapping file versions this tool reads.
pub const MAPPING_VERSION: u32 = 1;

/// How the source's records are laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SourceFormat {
    /// Comma-separated, RFC 4180, a header row.
    Csv,
    /// Tab-separated, a header row.
    Tsv,
    /// JSON records as the plain input takes them (array, NDJSON, or `{"users": [...]}`); `from`
    /// is a path into each record.
    Json,
}

/// How a cell becomes a JSON value. Every type takes an empty cell (or a JSON null) as "absent".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ValueType {
    #[default]
    String,
    /// true/false, yes/no, y/n, t/f, 1/0, on/off, in any case.
    Bool,
    Integer,
    /// The cell holds JSON (an object for `user_metadata`, say).
    Json,
    /// `true` when the cell holds anything, `false` when it is empty: a timestamp such as
    /// `email_confirmed_at` read as `email_verified`.
    Present,
}

impl ValueType {
    fn name(self) -> &'static str {
        match self {
            ValueType::String => "string",
            ValueType::Bool => "bool",
            ValueType::Integer => "integer",
            ValueType::Json => "json",
            ValueType::Present => "present",
        }
    }
}

// ---- the file, as written --------------------------------------------------------------------

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct MappingFile {
    /// Checked before the rest is read (`Mapping::from_toml`).
    #[serde(rename = "version")]
    _version: u32,
    format: SourceFormat,
    #[serde(default)]
    delimiter: Option<String>,
    #[serde(default, rename = "field")]
    fields: Vec<FieldSpec>,
    #[serde(default, rename = "constant")]
    constants: Vec<ConstantSpec>,
    #[serde(default, rename = "join")]
    joins: Vec<JoinSpec>,
    #[serde(default)]
    password: Option<PasswordSpec>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FieldSpec {
    from: String,
    to: String,
    #[serde(default, rename = "type")]
    value_type: ValueType,
    #[serde(default)]
    lowercase: bool,
    #[serde(default)]
    trim: bool,
    #[serde(default)]
    strip_prefix: Option<String>,
    /// The column may be missing from the header (the field is then left out); a preset's
    /// columns that some versions of the system do not export.
    #[serde(default)]
    optional: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConstantSpec {
    to: String,
    value: toml::Value,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct JoinSpec {
    from: Vec<String>,
    to: String,
    #[serde(default = "space")]
    separator: String,
}

fn space() -> String {
    " ".into()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PasswordSpec {
    from: String,
    /// A converter format (`django`, `bcrypt`, …) or `digest` (a bare hex/base64 digest).
    format: String,
    #[serde(default)]
    algorithm: Option<String>,
    #[serde(default)]
    salt_from: Option<String>,
    #[serde(default)]
    salt_encoding: Option<String>,
    #[serde(default)]
    salt_position: Option<String>,
}

// ---- the mapping, checked -------------------------------------------------------------------

/// Where a value is read: a CSV column by its header name, or a path into a JSON record
/// (`a.b`, `list.0`, `credentials[type=password]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selector {
    Column(String),
    Path { text: String, steps: Vec<Step> },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    Key(String),
    Index(usize),
    /// The first element of an array whose member `key` is the string `equals`.
    Where {
        key: String,
        equals: String,
    },
}

impl Selector {
    fn describe(&self) -> String {
        match self {
            Selector::Column(name) => format!("column {name:?}"),
            Selector::Path { text, .. } => format!("member {text:?}"),
        }
    }
}

#[derive(Debug, Clone)]
struct Field {
    from: Selector,
    to: Vec<String>,
    value_type: ValueType,
    lowercase: bool,
    trim: bool,
    strip_prefix: Option<String>,
    optional: bool,
}

#[derive(Debug, Clone)]
struct Join {
    from: Vec<Selector>,
    to: Vec<String>,
    separator: String,
}

#[derive(Debug, Clone)]
enum HashFormat {
    Legacy(LegacyFormat),
    Digest {
        algorithm: String,
        salt: Option<(Selector, BinaryEncoding, SaltPosition)>,
    },
}

#[derive(Debug, Clone)]
struct Password {
    from: Selector,
    format: HashFormat,
}

/// A mapping, checked: every target is a field Auth0 imports, no two write the same place, the
/// password format is one the converter knows.
#[derive(Debug, Clone)]
pub struct Mapping {
    format: SourceFormat,
    delimiter: u8,
    fields: Vec<Field>,
    constants: Vec<(Vec<String>, Value)>,
    joins: Vec<Join>,
    password: Option<Password>,
}

/// Why a mapping cannot be used. Found before any record is read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MappingError {
    #[error("the mapping is not valid TOML for a mapping: {0}")]
    Toml(String),
    #[error("the mapping is version {0}; this tool reads version {MAPPING_VERSION} (`version = {MAPPING_VERSION}`)")]
    Version(u32),
    #[error("{entry}: {why}")]
    Entry { entry: String, why: String },
    #[error("no entry maps to email: Auth0 imports no user without one")]
    NoEmail,
    #[error("{entry}: the column {column:?} is not in the header (the header has: {header})")]
    MissingColumn {
        entry: String,
        column: String,
        header: String,
    },
    #[error("the header names the column {0:?} twice, and the mapping reads it")]
    AmbiguousColumn(String),
    #[error("the header row is missing (the input is empty)")]
    NoHeader,
}

fn entry_error(entry: impl Into<String>, why: impl Into<String>) -> MappingError {
    MappingError::Entry {
        entry: entry.into(),
        why: why.into(),
    }
}

/// Fields the hash goes to: a mapping sets them through `[password]` only.
const HASH_FIELDS: [&str; 2] = ["password_hash", "custom_password_hash"];
/// The top-level fields whose insides a mapping may fill (`user_metadata.locale`).
const OBJECT_FIELDS: [&str; 2] = ["user_metadata", "app_metadata"];

impl Mapping {
    /// Reads and checks a mapping file.
    pub fn from_toml(text: &str) -> Result<Mapping, MappingError> {
        // The version is read first, alone, so a newer file is refused for its version and
        // not for a field this tool does not know.
        #[derive(Deserialize)]
        struct Versioned {
            version: Option<u32>,
        }
        let versioned: Versioned =
            toml::from_str(text).map_err(|e| MappingError::Toml(e.message().to_string()))?;
        match versioned.version {
            Some(MAPPING_VERSION) => {}
            Some(other) => return Err(MappingError::Version(other)),
            None => return Err(MappingError::Toml("missing `version = 1`".into())),
        }
        let file: MappingFile =
            toml::from_str(text).map_err(|e| MappingError::Toml(e.to_string()))?;
        Mapping::check(file)
    }

    fn check(file: MappingFile) -> Result<Mapping, MappingError> {
        let format = file.format;
        let delimiter = match (&file.delimiter, format) {
            (None, SourceFormat::Tsv) => b'\t',
            (None, _) => b',',
            (Some(d), SourceFormat::Csv | SourceFormat::Tsv) if d.len() == 1 => d.as_bytes()[0],
            (Some(_), SourceFormat::Json) => {
                return Err(entry_error("delimiter", "a JSON source has no delimiter"))
            }
            (Some(_), _) => {
                return Err(entry_error(
                    "delimiter",
                    "the delimiter is one ASCII character",
                ))
            }
        };
        let selector = |entry: &str, from: &str| parse_selector(format, entry, from);
        let mut targets: Vec<(String, Vec<String>)> = Vec::new();
        let mut fields = Vec::new();
        for (i, spec) in file.fields.into_iter().enumerate() {
            let entry = format!("field {} (to = {:?})", i + 1, spec.to);
            let to = parse_target(&entry, &spec.to)?;
            let texty = matches!(spec.value_type, ValueType::String);
            if !texty && (spec.lowercase || spec.strip_prefix.is_some()) {
                return Err(entry_error(
                    entry,
                    format!(
                        "lowercase and strip_prefix apply to strings, and the type is {}",
                        spec.value_type.name()
                    ),
                ));
            }
            check_type_fits(&entry, &to, spec.value_type)?;
            targets.push((entry.clone(), to.clone()));
            fields.push(Field {
                from: selector(&entry, &spec.from)?,
                to,
                value_type: spec.value_type,
                lowercase: spec.lowercase,
                trim: spec.trim,
                strip_prefix: spec.strip_prefix,
                optional: spec.optional,
            });
        }
        let mut constants = Vec::new();
        for (i, spec) in file.constants.into_iter().enumerate() {
            let entry = format!("constant {} (to = {:?})", i + 1, spec.to);
            let to = parse_target(&entry, &spec.to)?;
            let value = serde_json::to_value(&spec.value)
                .map_err(|e| entry_error(&entry, format!("the value is not JSON: {e}")))?;
            targets.push((entry, to.clone()));
            constants.push((to, value));
        }
        let mut joins = Vec::new();
        for (i, spec) in file.joins.into_iter().enumerate() {
            let entry = format!("join {} (to = {:?})", i + 1, spec.to);
            let to = parse_target(&entry, &spec.to)?;
            if spec.from.len() < 2 {
                return Err(entry_error(entry, "a join reads two or more columns"));
            }
            check_type_fits(&entry, &to, ValueType::String)?;
            let from = spec
                .from
                .iter()
                .map(|f| selector(&entry, f))
                .collect::<Result<Vec<_>, _>>()?;
            targets.push((entry, to.clone()));
            joins.push(Join {
                from,
                to,
                separator: spec.separator,
            });
        }
        let password = file
            .password
            .map(|spec| check_password(format, spec))
            .transpose()?;
        check_targets(&targets)?;
        if !targets.iter().any(|(_, to)| to == &["email"]) {
            return Err(MappingError::NoEmail);
        }
        Ok(Mapping {
            format,
            delimiter,
            fields,
            constants,
            joins,
            password,
        })
    }

    pub fn format(&self) -> SourceFormat {
        self.format
    }

    pub fn delimiter(&self) -> u8 {
        self.delimiter
    }

    /// Every selector the mapping reads, the entry it is for, and whether it may be missing
    /// (a join takes whichever of its columns are there), for binding columns to a header.
    pub(crate) fn selectors(&self) -> impl Iterator<Item = (&Selector, String, bool)> {
        let fields = self.fields.iter().map(|f| {
            (
                &f.from,
                format!("field to = {:?}", f.to.join(".")),
                f.optional,
            )
        });
        let joins = self.joins.iter().flat_map(|j| {
            j.from
                .iter()
                .map(move |s| (s, format!("join to = {:?}", j.to.join(".")), true))
        });
        let password = self.password.iter().flat_map(|p| {
            let salt = match &p.format {
                HashFormat::Digest {
                    salt: Some((s, _, _)),
                    ..
                } => Some((s, "password.salt_from".to_string(), false)),
                _ => None,
            };
            std::iter::once((&p.from, "password.from".to_string(), false)).chain(salt)
        });
        fields.chain(joins).chain(password)
    }

    /// The Auth0 record for one source row. `row` reads a selector's cell.
    pub fn map(&self, row: &dyn Row, line: u64) -> Result<Mapped, Vec<Violation>> {
        let mut user = Map::new();
        let mut problems = Vec::new();
        let fail = |problems: &mut Vec<Violation>, to: &[String], from: &Selector, why: String| {
            problems.push(Violation::new(
                codes::MAPPING,
                to.join("."),
                format!("line {line}, {}: {why}", from.describe()),
            ));
        };
        for (to, value) in &self.constants {
            set_path(&mut user, to, value.clone());
        }
        for field in &self.fields {
            let cell = row.cell(&field.from);
            match field.value(cell) {
                Ok(Some(value)) => set_path(&mut user, &field.to, value),
                Ok(None) => {}
                Err(why) => fail(&mut problems, &field.to, &field.from, why),
            }
        }
        for join in &self.joins {
            let mut parts = Vec::new();
            for from in &join.from {
                match row.cell(from).map(|c| c.text()) {
                    Some(Ok(text)) if !text.trim().is_empty() => {
                        parts.push(text.trim().to_string())
                    }
                    Some(Err(why)) => fail(&mut problems, &join.to, from, why),
                    _ => {}
                }
            }
            if !parts.is_empty() {
                set_path(
                    &mut user,
                    &join.to,
                    Value::String(parts.join(&join.separator)),
                );
            }
        }
        let mut without_password = true;
        if let Some(password) = &self.password {
            match password.fragment(row) {
                Ok(Some(fragment)) => {
                    fragment.merge_into(&mut user);
                    without_password = false;
                }
                Ok(None) => {}
                Err(why) => problems.push(Violation::new(
                    codes::PASSWORD_FORMAT,
                    "password_hash",
                    format!("line {line}, {}: {why}", password.from.describe()),
                )),
            }
        }
        if problems.is_empty() {
            Ok(Mapped {
                user,
                without_password,
            })
        } else {
            Err(problems)
        }
    }
}

/// One mapped user, and whether it goes in with no password (it will have to reset).
#[derive(Debug, Clone, PartialEq)]
pub struct Mapped {
    pub user: Map<String, Value>,
    pub without_password: bool,
}

/// A source row: what a selector reads in it (`None`: the column or member is absent).
pub trait Row {
    fn cell(&self, selector: &Selector) -> Option<Cell<'_>>;
}

/// A value as the source holds it: CSV text, or a JSON value.
#[derive(Debug, Clone, Copy)]
pub enum Cell<'a> {
    Text(&'a str),
    Json(&'a Value),
}

impl<'a> Cell<'a> {
    /// The cell as text: a JSON string's text, a number's or bool's spelling; an object or
    /// array is refused; null is empty.
    fn text(self) -> Result<std::borrow::Cow<'a, str>, String> {
        match self {
            Cell::Text(t) => Ok(t.into()),
            Cell::Json(Value::String(s)) => Ok(s.as_str().into()),
            Cell::Json(Value::Null) => Ok("".into()),
            Cell::Json(v @ (Value::Number(_) | Value::Bool(_))) => Ok(v.to_string().into()),
            Cell::Json(Value::Array(_)) => Err("an array, where text is expected".into()),
            Cell::Json(Value::Object(_)) => Err("an object, where text is expected".into()),
        }
    }
}

impl Field {
    fn value(&self, cell: Option<Cell<'_>>) -> Result<Option<Value>, String> {
        let Some(cell) = cell else {
            return Ok(match self.value_type {
                ValueType::Present => Some(Value::Bool(false)),
                _ => None,
            });
        };
        // A JSON source's typed values are taken as they are when they already fit.
        if let Cell::Json(v) = cell {
            match (self.value_type, v) {
                (ValueType::Json, Value::Null) => return Ok(None),
                // JSON held in a string (Firebase's customAttributes) is read below.
                (ValueType::Json, v) if !v.is_string() => return Ok(Some(v.clone())),
                (ValueType::Bool, Value::Bool(_)) => return Ok(Some(v.clone())),
                (ValueType::Integer, Value::Number(n)) if n.is_i64() || n.is_u64() => {
                    return Ok(Some(v.clone()))
                }
                (ValueType::Present, v) => {
                    let present = !(v.is_null() || v.as_str().is_some_and(str::is_empty));
                    return Ok(Some(Value::Bool(present)));
                }
                _ => {}
            }
        }
        let text = cell.text()?;
        let mut text: &str = &text;
        if self.trim {
            text = text.trim();
        }
        if text.is_empty() {
            return Ok(match self.value_type {
                ValueType::Present => Some(Value::Bool(false)),
                _ => None,
            });
        }
        match self.value_type {
            ValueType::String => {
                let mut text = text;
                if let Some(prefix) = &self.strip_prefix {
                    text = text.strip_prefix(prefix.as_str()).unwrap_or(text);
                }
                Ok(Some(Value::String(if self.lowercase {
                    text.to_lowercase()
                } else {
                    text.to_string()
                })))
            }
            ValueType::Bool => parse_bool(text)
                .map(|b| Some(Value::Bool(b)))
                .ok_or_else(|| {
                    "not a bool (true/false, yes/no, y/n, t/f, 1/0, on/off)".to_string()
                }),
            ValueType::Integer => text
                .trim()
                .parse::<i64>()
                .map(|n| Some(Value::from(n)))
                .map_err(|_| "not an integer".to_string()),
            ValueType::Json => serde_json::from_str::<Value>(text)
                .map(Some)
                .map_err(|e| format!("not JSON ({})", e.classify_name())),
            ValueType::Present => Ok(Some(Value::Bool(true))),
        }
    }
}

trait ClassifyName {
    fn classify_name(&self) -> &'static str;
}

impl ClassifyName for serde_json::Error {
    /// The kind of JSON error, without the text around it (which could be a secret's).
    fn classify_name(&self) -> &'static str {
        match self.classify() {
            serde_json::error::Category::Io => "unreadable",
            serde_json::error::Category::Syntax => "a syntax error",
            serde_json::error::Category::Data => "a value of the wrong type",
            serde_json::error::Category::Eof => "it ends too early",
        }
    }
}

/// The usual spellings of a bool in CSV exports.
pub fn parse_bool(text: &str) -> Option<bool> {
    const TRUE: [&str; 6] = ["true", "t", "yes", "y", "1", "on"];
    const FALSE: [&str; 6] = ["false", "f", "no", "n", "0", "off"];
    let text = text.trim();
    if TRUE.iter().any(|t| t.eq_ignore_ascii_case(text)) {
        Some(true)
    } else if FALSE.iter().any(|f| f.eq_ignore_ascii_case(text)) {
        Some(false)
    } else {
        None
    }
}

impl Password {
    /// The hash members for this row; `None` when the password cell is empty.
    fn fragment(&self, row: &dyn Row) -> Result<Option<auth0_password_hash::Fragment>, String> {
        let Some(cell) = row.cell(&self.from) else {
            return Ok(None);
        };
        // A Keycloak credential is an object in a realm export: the converter reads its text.
        let stored = match cell {
            Cell::Json(v @ Value::Object(_)) => v.to_string(),
            Cell::Json(Value::Array(_)) => return Err("an array, where a hash is expected".into()),
            other => other.text()?.trim().to_string(),
        };
        if stored.is_empty() {
            return Ok(None);
        }
        match &self.format {
            HashFormat::Legacy(format) => convert(*format, &stored)
                .map(Some)
                .map_err(|e| e.to_string()),
            HashFormat::Digest { algorithm, salt } => {
                let salt_text;
                let salt = match salt {
                    Some((from, encoding, position)) => {
                        salt_text = match row.cell(from) {
                            Some(cell) => cell.text()?.trim().to_string(),
                            None => String::new(),
                        };
                        Some(BareSalt {
                            value: &salt_text,
                            encoding: *encoding,
                            position: *position,
                        })
                    }
                    None => None,
                };
                convert_digest(algorithm, &stored, salt)
                    .map(Some)
                    .map_err(|e| e.to_string())
            }
        }
    }
}

fn check_password(format: SourceFormat, spec: PasswordSpec) -> Result<Password, MappingError> {
    let from = parse_selector(format, "password.from", &spec.from)?;
    let salt_given =
        spec.salt_from.is_some() || spec.salt_encoding.is_some() || spec.salt_position.is_some();
    let hash_format = if spec.format == "digest" {
        let algorithm = spec.algorithm.ok_or_else(|| {
            entry_error(
                "password",
                "format = \"digest\" needs algorithm = md4|md5|sha1|sha256|sha512",
            )
        })?;
        if auth0_password_hash::facts::plain_digest_algorithm(&algorithm).is_none() {
            return Err(entry_error(
                "password.algorithm",
                format!("{algorithm:?} is not one of md4, md5, sha1, sha256, sha512"),
            ));
        }
        let salt = match spec.salt_from {
            Some(salt_from) => {
                let encoding_name = spec.salt_encoding.as_deref().unwrap_or("utf8");
                let encoding = BinaryEncoding::parse(encoding_name).ok_or_else(|| {
                    entry_error(
                        "password.salt_encoding",
                        format!("{encoding_name:?} is not one of utf8, hex, base64"),
                    )
                })?;
                let position = match spec.salt_position.as_deref().unwrap_or("prefix") {
                    "prefix" => SaltPosition::Prefix,
                    "suffix" => SaltPosition::Suffix,
                    other => {
                        return Err(entry_error(
                            "password.salt_position",
                            format!("{other:?} is not prefix or suffix"),
                        ))
                    }
                };
                Some((
                    parse_selector(format, "password.salt_from", &salt_from)?,
                    encoding,
                    position,
                ))
            }
            None if salt_given => {
                return Err(entry_error(
                    "password",
                    "salt_encoding and salt_position need salt_from (the salt's column)",
                ))
            }
            None => None,
        };
        HashFormat::Digest { algorithm, salt }
    } else {
        let legacy = LegacyFormat::parse(&spec.format).ok_or_else(|| {
            let names: Vec<&str> = LegacyFormat::ALL.iter().map(|f| f.name()).collect();
            entry_error(
                "password.format",
                format!(
                    "{:?} is not a format: one of {}, or digest",
                    spec.format,
                    names.join(", ")
                ),
            )
        })?;
        if salt_given || spec.algorithm.is_some() {
            return Err(entry_error(
                "password",
                "algorithm and salt_* go with format = \"digest\"; the other formats carry their own",
            ));
        }
        HashFormat::Legacy(legacy)
    };
    Ok(Password {
        from,
        format: hash_format,
    })
}

fn parse_selector(format: SourceFormat, entry: &str, from: &str) -> Result<Selector, MappingError> {
    if from.is_empty() {
        return Err(entry_error(entry, "`from` is empty"));
    }
    if format != SourceFormat::Json {
        return Ok(Selector::Column(from.to_string()));
    }
    let mut steps = Vec::new();
    for part in from.split('.') {
        if part.is_empty() {
            return Err(entry_error(entry, format!("{from:?} has an empty step")));
        }
        if let Some((key, filter)) = part.split_once('[') {
            let (k, v) = filter
                .strip_suffix(']')
                .and_then(|f| f.split_once('='))
                .ok_or_else(|| {
                    entry_error(entry, format!("{part:?}: a filter is name[member=value]"))
                })?;
            steps.push(Step::Key(key.to_string()));
            steps.push(Step::Where {
                key: k.to_string(),
                equals: v.to_string(),
            });
        } else if let Ok(i) = part.parse::<usize>() {
            steps.push(Step::Index(i));
        } else {
            steps.push(Step::Key(part.to_string()));
        }
    }
    Ok(Selector::Path {
        text: from.to_string(),
        steps,
    })
}

/// Reads a path in a JSON record.
pub fn select<'a>(record: &'a Value, steps: &[Step]) -> Option<&'a Value> {
    let mut at = record;
    for step in steps {
        at = match step {
            Step::Key(k) => at.get(k)?,
            Step::Index(i) => at.get(*i)?,
            Step::Where { key, equals } => at
                .as_array()?
                .iter()
                .find(|e| e.get(key).and_then(Value::as_str) == Some(equals.as_str()))?,
        };
    }
    Some(at)
}

fn parse_target(entry: &str, to: &str) -> Result<Vec<String>, MappingError> {
    let path: Vec<String> = to.split('.').map(str::to_string).collect();
    if path.iter().any(String::is_empty) {
        return Err(entry_error(entry, format!("{to:?} has an empty step")));
    }
    let top = path[0].as_str();
    if HASH_FIELDS.contains(&top) {
        return Err(entry_error(
            entry,
            "the hash is set by [password] (from, format), which converts it to Auth0's shape",
        ));
    }
    if !crate::rules::user_fields().any(|f| f == top) {
        return Err(entry_error(
            entry,
            format!("{top:?} is not a field of Auth0's user import (a custom attribute goes under user_metadata. or app_metadata.)"),
        ));
    }
    if path.len() > 1 && !OBJECT_FIELDS.contains(&top) {
        return Err(entry_error(
            entry,
            format!("{top} is not an object: only user_metadata and app_metadata have members"),
        ));
    }
    Ok(path)
}

/// A type that cannot fit the Auth0 field is refused up front rather than on every record.
fn check_type_fits(entry: &str, to: &[String], value_type: ValueType) -> Result<(), MappingError> {
    if to.len() > 1 {
        return Ok(());
    }
    let wants = match to[0].as_str() {
        "email_verified" | "phone_verified" | "blocked" => {
            &[ValueType::Bool, ValueType::Present][..]
        }
        "user_metadata" | "app_metadata" | "mfa_factors" => &[ValueType::Json][..],
        _ => &[ValueType::String][..],
    };
    if wants.contains(&value_type) {
        Ok(())
    } else {
        let names: Vec<&str> = wants.iter().map(|t| t.name()).collect();
        Err(entry_error(
            entry,
            format!(
                "{} takes type {}, not {}",
                to[0],
                names.join(" or "),
                value_type.name()
            ),
        ))
    }
}

/// No two entries write the same place, nor one inside what another writes whole.
fn check_targets(targets: &[(String, Vec<String>)]) -> Result<(), MappingError> {
    let mut seen: BTreeSet<&[String]> = BTreeSet::new();
    for (entry, to) in targets {
        if !seen.insert(to) {
            return Err(entry_error(entry, "another entry writes the same field"));
        }
    }
    for (entry, to) in targets {
        for (_, other) in targets {
            if other.len() < to.len() && to.starts_with(other) {
                return Err(entry_error(
                    entry,
                    format!("another entry writes all of {}", other.join(".")),
                ));
            }
        }
    }
    Ok(())
}

fn set_path(user: &mut Map<String, Value>, path: &[String], value: Value) {
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    let mut at = user;
    for key in parents {
        let slot = at
            .entry(key.clone())
            .or_insert_with(|| Value::Object(Map::new()));
        if !slot.is_object() {
            *slot = Value::Object(Map::new());
        }
        let Value::Object(map) = slot else {
            return;
        };
        at = map;
    }
    at.insert(last.clone(), value);
}

#[cfg(test)]
mod tests;
