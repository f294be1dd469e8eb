//! The rules applied straight to a record's text, for the common record: one pass over the bytes
//! checks JSON syntax, the schema and the prose rules together, building no tree for the flat part.
//!
//! This is a fast acceptor, not a second implementation of the rules: it answers "passes" only
//! when it is sure, and `None` for everything else (a violation, an escape where a rule reads the
//! value, an exponent, a repeated key, anything unusual). `None` sends the record to the path that
//! parses it and says what is wrong, so a record it cannot judge costs time, never a verdict.
//! Every judgement it makes is one of the rules' own (`check_string`, the metadata and `user_id`
//! predicates, `password_hash`'s pattern); the two nested structures (`custom_password_hash`,
//! `mfa_factors`) are read into a small tree on the way (`Slot`) and handed to the schema walker
//! and `check_record_rules`, which read it through `node::Node` as they read a parsed value.

use std::cell::Cell;

use sonic_rs::JsonType;

use super::node::{ArrayNode, Node, ObjectNode};
use super::schema::{self, Kind, USER, USER_INDEX};
use super::{check_record_rules, hash, metadata, profile, Members, Path};
use crate::compact::{self, Marks};
use crate::duplicates::IdentityKind;
use crate::export::{self, Reshaped, AUTH0_ID_PREFIX};

/// Bounds this module's recursion: a value nested deeper is left to the full path. The limit
/// that decides a verdict is the caller's (`pipeline`'s count of containers, under the 128
/// levels `serde_json` refuses).
const MAX_DEPTH: usize = 128;

/// `USER`'s properties fit a `u32` of "seen" bits and a fixed array of values.
const MAX_PROPERTIES: usize = 32;

/// What the rules read from an accepted record: its compact text and its top-level strings, by
/// `USER` property.
pub(crate) struct Passed<'a> {
    /// The record as `compact::strip_whitespace` makes it (before any reshaping).
    pub(crate) text: &'a [u8],
    strings: [Option<&'a str>; MAX_PROPERTIES],
    /// Objects and arrays the record opens, itself included.
    pub(crate) containers: usize,
    /// The reshaping the record needs before import (the rules judged it reshaped).
    pub(crate) reshaped: Reshaped,
}

impl<'a> Passed<'a> {
    /// The top-level string `field` as imported: as written (an accepted record's strings hold
    /// no escapes), and for `user_id` without an `auth0|` prefix.
    #[cfg(test)]
    pub(crate) fn str(&self, field: &str) -> Option<&'a str> {
        self.strings[USER_INDEX.get(field)?]
    }

    /// The top-level string of an identity's field as imported (as `str` gives it), found at
    /// its place in `USER`, known when compiled, rather than by its name.
    pub(crate) fn identity(&self, kind: IdentityKind) -> Option<&'a str> {
        self.strings[IDENTITY_AT[kind as usize]]
    }
}

thread_local! {
    /// The marks of the record being read, kept between records for their memory.
    static MARKS: Cell<Marks> = Cell::new(Marks::default());
}

/// `Some` when `record` (one user object, as written in the input) is JSON that passes every
/// rule `check_user` applies once reshaped for import: its `user_id` without an `auth0|` prefix
/// and, when `drop_fields` (a run of Auth0's export), without the export-only members, whose
/// values need only be JSON. `None` when it does not or this pass cannot tell. It appends the
/// record to `compact` without its insignificant whitespace (what `compact::strip_whitespace`
/// makes of it), then reads that text; after `None`, what it appended means nothing.
pub(crate) fn passes<'a>(
    record: &[u8],
    drop_fields: bool,
    compact: &'a mut Vec<u8>,
) -> Option<Passed<'a>> {
    if USER.properties.len() > MAX_PROPERTIES {
        return None;
    }
    let mut marks = MARKS.take();
    let start = compact.len();
    let stripped = compact::strip_marked(record, compact, &mut marks);
    let compact: &'a Vec<u8> = compact;
    let passed = if stripped {
        read(&compact[start..], &marks, drop_fields)
    } else {
        None
    };
    MARKS.set(marks);
    passed
}

/// `passes` on the record's compact text, `marks` its marks.
fn read<'a>(text: &'a [u8], marks: &Marks, drop_fields: bool) -> Option<Passed<'a>> {
    // One check for the whole record (taking out ASCII whitespace between tokens leaves the
    // input's UTF-8 as it was, and anything else outside a string is refused below); strings
    // are then sliced at quotes, which are ASCII and so always character boundaries.
    let text = simdutf8::basic::from_utf8(text).ok()?;
    let mut cursor = Cursor {
        text,
        at: 0,
        marks,
        containers: 0,
    };
    let mut passed = Passed {
        text: text.as_bytes(),
        strings: [None; MAX_PROPERTIES],
        containers: 0,
        reshaped: Reshaped::default(),
    };
    let mut seen = 0u32;
    cursor.container(0, b'{', b'}', |cursor| {
        let (name, escaped) = cursor.key()?;
        if escaped {
            return None;
        }
        let dropped = if drop_fields {
            export::export_fields_in(|field| field == name)
        } else {
            0
        };
        if dropped != 0 {
            // Dropped unread; a repeat is left to the parsing path, like any other.
            if passed.reshaped.fields_dropped & dropped != 0 {
                return None;
            }
            passed.reshaped.fields_dropped |= dropped;
            return cursor.value(1);
        }
        let index = USER_INDEX.get(name)?;
        if seen & (1 << index) != 0 {
            return None;
        }
        seen |= 1 << index;
        passed.strings[index] = cursor.property(index, &mut passed.reshaped)?;
        Some(())
    })?;
    if cursor.at != text.len() {
        return None;
    }
    passed.containers = cursor.containers;
    let has = |name: &str| {
        USER_INDEX
            .get(name)
            .is_some_and(|index| seen & (1 << index) != 0)
    };
    // The schema's `required`, and the one prose rule that looks at two fields at once.
    if !USER.required.iter().all(|name| has(name))
        || (has("password_hash") && has("custom_password_hash"))
    {
        return None;
    }
    Some(passed)
}

/// Positions in `USER` of the properties the text pass treats apart.
const USER_ID: usize = USER_INDEX.position("user_id");
const PASSWORD_HASH: usize = USER_INDEX.position("password_hash");
const APP_METADATA: usize = USER_INDEX.position("app_metadata");

/// Where each identity's field is in `USER`, by `IdentityKind` (`kind as usize`): its name,
/// `IdentityKind::field`, looked up once, when compiled.
const IDENTITY_AT: [usize; IdentityKind::ALL.len()] = {
    let mut at = [0; IdentityKind::ALL.len()];
    let mut i = 0;
    while i < at.len() {
        // `kind as usize` indexes this table only while `ALL` lists the kinds in their order.
        assert!(IdentityKind::ALL[i] as usize == i);
        at[i] = USER_INDEX.position(IdentityKind::ALL[i].field());
        i += 1;
    }
    at
};

/// The schema's string rule plus the prose rules on a top-level string, `USER`'s property
/// `index`.
fn top_level_string_passes(index: usize, rule: &schema::StringRule, value: &str) -> bool {
    let mut out = Vec::new();
    let name = USER.properties[index].name;
    schema::check_string(rule, value, &Path::Root.key(name), &mut out);
    out.is_empty()
        && match index {
            PASSWORD_HASH => hash::matches_password_hash_pattern(value),
            USER_ID => profile::user_id_passes(value),
            _ => true,
        }
}

/// A nested property (`custom_password_hash`, `mfa_factors`) read on its own: the schema
/// walker and every record rule see it as the only member of the record, which is exact for
/// them all but the hash fields' exclusivity, checked by `passes`.
fn structure_passes<'t>(name: &'t str, kind: &Kind, value: impl Node<'t>) -> bool {
    structure_violations(name, kind, value).is_empty()
}

fn structure_violations<'t>(
    name: &'t str,
    kind: &Kind,
    value: impl Node<'t>,
) -> Vec<crate::violation::Violation> {
    let mut out = Vec::new();
    schema::check_value(kind, value, &Path::Root.key(name), &mut out);
    check_record_rules(&Members::from_pairs(vec![(name, value)]), &mut out);
    out
}

/// A nested structure as the rules read it (`node::Node`), built from its text on the way
/// through: values in document order, each knowing where the values inside it end. It holds
/// only what it reads exactly as a parser would: strings without escapes and integers of up to
/// 18 digits (a record with anything else there goes to the parsing paths).
#[derive(Debug, Clone, Copy)]
struct Slot<'a> {
    /// The member's key in an object; empty for an array item and the structure itself.
    key: &'a str,
    item: Item<'a>,
    /// One past the last slot of this value and the values inside it.
    end: usize,
}

#[derive(Debug, Clone, Copy)]
enum Item<'a> {
    Null,
    Boolean,
    Integer(u64),
    String(&'a str),
    /// With its member count.
    Object(usize),
    /// With its item count.
    Array(usize),
}

/// A value of a `Slot` list: the slot at `index`, the ones after it inside it.
#[derive(Debug, Clone, Copy)]
struct At<'t, 'a> {
    slots: &'t [Slot<'a>],
    index: usize,
}

impl<'t, 'a: 't> At<'t, 'a> {
    fn item(self) -> Item<'a> {
        self.slots[self.index].item
    }

    /// The values directly inside this one, `count` of them: keys and values.
    fn children(self, count: usize) -> impl Iterator<Item = (&'t str, At<'t, 'a>)> {
        let slots = self.slots;
        let mut next = self.index + 1;
        (0..count).map(move |_| {
            let child = At { slots, index: next };
            next = slots[next].end;
            (slots[child.index].key, child)
        })
    }

    fn count(self) -> usize {
        match self.item() {
            Item::Object(count) | Item::Array(count) => count,
            _ => 0,
        }
    }
}

impl<'t, 'a: 't> Node<'t> for At<'t, 'a> {
    type Object = At<'t, 'a>;
    type Array = At<'t, 'a>;

    fn json_type(self) -> JsonType {
        match self.item() {
            Item::Null => JsonType::Null,
            Item::Boolean => JsonType::Boolean,
            Item::Integer(_) => JsonType::Number,
            Item::String(_) => JsonType::String,
            Item::Object(_) => JsonType::Object,
            Item::Array(_) => JsonType::Array,
        }
    }

    fn as_str(self) -> Option<&'t str> {
        match self.item() {
            Item::String(s) => Some(s),
            _ => None,
        }
    }

    fn is_boolean(self) -> bool {
        matches!(self.item(), Item::Boolean)
    }

    fn is_i64(self) -> bool {
        self.as_i64().is_some()
    }

    fn is_u64(self) -> bool {
        self.as_u64().is_some()
    }

    fn as_i64(self) -> Option<i64> {
        self.as_u64().and_then(|n| i64::try_from(n).ok())
    }

    fn as_u64(self) -> Option<u64> {
        match self.item() {
            Item::Integer(n) => Some(n),
            _ => None,
        }
    }

    fn as_f64(self) -> Option<f64> {
        // As sonic-rs and serde_json read an integer as a double: `n as f64`, rounded the same
        // way past 2^53 (the rules that care, like `integer_param`, read it as an integer first).
        self.as_u64().map(|n| n as f64)
    }

    fn as_object(self) -> Option<Self::Object> {
        matches!(self.item(), Item::Object(_)).then_some(self)
    }

    fn as_array(self) -> Option<Self::Array> {
        matches!(self.item(), Item::Array(_)).then_some(self)
    }
}

impl<'t, 'a: 't> ObjectNode<'t> for At<'t, 'a> {
    type Node = At<'t, 'a>;

    fn len(self) -> usize {
        self.count()
    }

    fn get(self, key: &str) -> Option<Self::Node> {
        self.members()
            .find(|(name, _)| *name == key)
            .map(|(_, value)| value)
    }

    fn members(self) -> impl Iterator<Item = (&'t str, Self::Node)> {
        self.children(self.count())
    }
}

impl<'t, 'a: 't> ArrayNode<'t> for At<'t, 'a> {
    type Node = At<'t, 'a>;

    fn len(self) -> usize {
        self.count()
    }

    fn items(self) -> impl Iterator<Item = Self::Node> {
        self.children(self.count()).map(|(_, item)| item)
    }
}

/// Whether a string's contents (between its quotes) hold an escape; `None` if one of them is not
/// JSON's.
#[inline(never)]
fn check_escapes(contents: &[u8]) -> Option<bool> {
    let mut rest = contents;
    let mut escaped = false;
    while let Some(at) = memchr::memchr(b'\\', rest) {
        escaped = true;
        rest = &rest[at..];
        rest = &rest[escape_len(rest)?..];
    }
    Some(escaped)
}

/// How long the escape at the start of `text` (on its backslash) is; `None` for one JSON does
/// not have. A `\\u` naming a surrogate is left to the full path, whichever way it pairs.
fn escape_len(text: &[u8]) -> Option<usize> {
    match *text.get(1)? {
        b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => Some(2),
        b'u' => {
            let hex = std::str::from_utf8(text.get(2..6)?).ok()?;
            let code = u32::from_str_radix(hex, 16).ok()?;
            if !hex.bytes().all(|b| b.is_ascii_hexdigit()) || (0xD800..0xE000).contains(&code) {
                return None;
            }
            Some(6)
        }
        _ => None,
    }
}

/// A reader of a record's compact text: JSON's grammar without whitespace, which
/// `compact::strip_marked` took out (and whose marks find where each string ends).
struct Cursor<'a, 'm> {
    text: &'a str,
    at: usize,
    marks: &'m Marks,
    containers: usize,
}

impl<'a> Cursor<'a, '_> {
    #[inline]
    fn peek(&self) -> Option<u8> {
        self.text.as_bytes().get(self.at).copied()
    }

    #[inline]
    fn eat(&mut self, byte: u8) -> bool {
        let found = self.peek() == Some(byte);
        self.at += usize::from(found);
        found
    }

    #[inline]
    fn expect(&mut self, byte: u8) -> Option<()> {
        self.eat(byte).then_some(())
    }

    /// A member's key at the cursor and the colon after it: the key as written, and whether it
    /// holds an escape.
    #[inline]
    fn key(&mut self) -> Option<(&'a str, bool)> {
        let key = self.string()?;
        self.expect(b':')?;
        Some(key)
    }

    /// A string at the cursor: its contents as written, and whether they hold an escape. Read
    /// outside any string, a quote opens one (the marks agree), and the next marked quote
    /// closes it.
    #[inline]
    fn string(&mut self) -> Option<(&'a str, bool)> {
        self.expect(b'"')?;
        let start = self.at;
        let end = self.marks.next_quote(start)?;
        let contents = self.text.get(start..end)?;
        self.at = end + 1;
        let escaped = self.marks.escapes && check_escapes(contents.as_bytes())?;
        Some((contents, escaped))
    }

    fn literal(&mut self, word: &str) -> Option<()> {
        let found = self
            .text
            .as_bytes()
            .get(self.at..)?
            .starts_with(word.as_bytes());
        if !found || self.marks.gap_within(self.at, self.at + word.len()) {
            return None;
        }
        self.at += word.len();
        Some(())
    }

    fn boolean(&mut self) -> Option<()> {
        match self.peek()? {
            b't' => self.literal("true"),
            b'f' => self.literal("false"),
            _ => None,
        }
    }

    /// A number without an exponent and with at most 32 digits: any parser reads those the same
    /// way; the rest (huge or tiny values) are left to the full path.
    fn number(&mut self) -> Option<()> {
        let bytes = self.text.as_bytes();
        let start = self.at;
        self.eat(b'-');
        let digits = |at: usize| {
            bytes.get(at..).map_or(0, |rest| {
                rest.iter().take_while(|b| b.is_ascii_digit()).count()
            })
        };
        let whole = digits(self.at);
        if whole == 0 || (whole > 1 && bytes[self.at] == b'0') {
            return None;
        }
        self.at += whole;
        let mut fraction = 0;
        if self.eat(b'.') {
            fraction = digits(self.at);
            if fraction == 0 {
                return None;
            }
            self.at += fraction;
        }
        if matches!(self.peek(), Some(b'e' | b'E'))
            || whole + fraction > 32
            || self.marks.gap_within(start, self.at)
        {
            return None;
        }
        Some(())
    }

    /// Any JSON value, checked for syntax only; `depth` counts the containers it sits in (one
    /// opened deeper than `MAX_DEPTH` is refused). Values no rule reads (free-form metadata)
    /// are most of a record's tokens: they are read in one loop, with a bit a level for the
    /// containers open (set for an object), not a call a token.
    fn value(&mut self, depth: usize) -> Option<()> {
        let mut objects = [0u64; (MAX_DEPTH + 2).div_ceil(64)];
        let mut open = 0usize;
        loop {
            // A value at the cursor.
            match self.peek()? {
                open_byte @ (b'{' | b'[') => {
                    if depth + open > MAX_DEPTH {
                        return None;
                    }
                    self.at += 1;
                    self.containers += 1;
                    let object = open_byte == b'{';
                    if self.eat(if object { b'}' } else { b']' }) {
                        // Empty: a whole value, as a scalar is.
                    } else {
                        let (word, bit) = (open / 64, 1u64 << (open % 64));
                        objects[word] = if object {
                            objects[word] | bit
                        } else {
                            objects[word] & !bit
                        };
                        open += 1;
                        if object {
                            self.skip_key()?;
                        }
                        continue;
                    }
                }
                b'"' => self.skip_string()?,
                b't' => self.literal("true")?,
                b'f' => self.literal("false")?,
                b'n' => self.literal("null")?,
                b'-' | b'0'..=b'9' => self.number()?,
                _ => return None,
            }
            // After a value: the containers it ends, then a comma before the next one.
            loop {
                if open == 0 {
                    return Some(());
                }
                let object = objects[(open - 1) / 64] >> ((open - 1) % 64) & 1 == 1;
                match self.peek()? {
                    b',' => {
                        self.at += 1;
                        if object {
                            self.skip_key()?;
                        }
                        break;
                    }
                    b'}' if object => open -= 1,
                    b']' if !object => open -= 1,
                    _ => return None,
                }
                self.at += 1;
            }
        }
    }

    /// A string no rule reads, at the cursor: checked as `string` checks it, without slicing
    /// it out.
    #[inline(always)]
    fn skip_string(&mut self) -> Option<()> {
        if self.peek()? != b'"' {
            return None;
        }
        let end = self.marks.next_quote(self.at + 1)?;
        if self.marks.escapes {
            check_escapes(self.text.as_bytes().get(self.at + 1..end)?)?;
        }
        self.at = end + 1;
        Some(())
    }

    /// A member's key no rule reads, and its colon.
    #[inline]
    fn skip_key(&mut self) -> Option<()> {
        self.skip_string()?;
        self.expect(b':')
    }

    /// A container at the cursor, `depth` deep: `open`, items separated by commas, `close`.
    /// `item` reads one item.
    fn container(
        &mut self,
        depth: usize,
        open: u8,
        close: u8,
        mut item: impl FnMut(&mut Self) -> Option<()>,
    ) -> Option<()> {
        if depth > MAX_DEPTH {
            return None;
        }
        self.expect(open)?;
        self.containers += 1;
        if self.eat(close) {
            return Some(());
        }
        loop {
            item(self)?;
            if self.eat(close) {
                return Some(());
            }
            self.expect(b',')?;
        }
    }

    /// The value of a top-level property, judged by the property's kind; for a string, the
    /// string as imported (`user_id` without its prefix, which `reshaped` then notes).
    fn property(&mut self, index: usize, reshaped: &mut Reshaped) -> Option<Option<&'a str>> {
        let property = &USER.properties[index];
        match &property.kind {
            Kind::Boolean => self.boolean()?,
            Kind::String(rule) => {
                let (mut value, escaped) = self.string()?;
                if escaped {
                    return None;
                }
                if index == USER_ID && export::has_id_prefix(Some(value)) {
                    value = &value[AUTH0_ID_PREFIX.len()..];
                    reshaped.prefix_stripped = true;
                    // `auth0|auth0|…` is left to the parsed paths, which take such an id only
                    // from the full path.
                    if export::has_id_prefix(Some(value)) {
                        return None;
                    }
                }
                if !top_level_string_passes(index, rule, value) {
                    return None;
                }
                return Some(Some(value));
            }
            Kind::Object(shape) if shape.is_free_form() => self.metadata(index == APP_METADATA)?,
            kind => {
                let mut slots = Vec::with_capacity(16);
                self.tree(1, "", &mut slots)?;
                let value = At {
                    slots: &slots,
                    index: 0,
                };
                if !structure_passes(property.name, kind, value) {
                    return None;
                }
            }
        }
        Some(None)
    }

    /// Any JSON value, checked for syntax as `value` checks it, appended to `slots` (under
    /// `key`); `None` also for what a `Slot` does not hold.
    fn tree(&mut self, depth: usize, key: &'a str, slots: &mut Vec<Slot<'a>>) -> Option<()> {
        let at = slots.len();
        slots.push(Slot {
            key,
            item: Item::Null,
            end: 0,
        });
        let item = match self.peek()? {
            b'{' => {
                let mut count = 0;
                self.container(depth, b'{', b'}', |cursor| {
                    let (name, escaped) = cursor.key()?;
                    if escaped {
                        return None;
                    }
                    count += 1;
                    cursor.tree(depth + 1, name, slots)
                })?;
                Item::Object(count)
            }
            b'[' => {
                let mut count = 0;
                self.container(depth, b'[', b']', |cursor| {
                    count += 1;
                    cursor.tree(depth + 1, "", slots)
                })?;
                Item::Array(count)
            }
            b'"' => match self.string()? {
                (s, false) => Item::String(s),
                (_, true) => return None,
            },
            b't' | b'f' => {
                self.boolean()?;
                Item::Boolean
            }
            b'n' => {
                self.literal("null")?;
                Item::Null
            }
            b'0'..=b'9' => {
                let start = self.at;
                self.number()?;
                let digits = &self.text[start..self.at];
                if digits.len() > 18 || !digits.bytes().all(|b| b.is_ascii_digit()) {
                    return None;
                }
                Item::Integer(digits.parse().ok()?)
            }
            _ => return None,
        };
        slots[at] = Slot {
            key,
            item,
            end: slots.len(),
        };
        Some(())
    }

    /// `app_metadata` (`app`) or `user_metadata`: an object whose own key names pass the metadata
    /// rules. Nested keys are not read by any rule (and may repeat, as Auth0's `JSON.parse`
    /// allows).
    fn metadata(&mut self, app: bool) -> Option<()> {
        self.container(1, b'{', b'}', |cursor| {
            let (key, escaped) = cursor.key()?;
            if escaped || !metadata::key_passes(app, key) {
                return None;
            }
            cursor.value(2)
        })
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{json, Value};

    use super::super::testkit::{check, published_examples, with};
    use super::*;
    use crate::compact::strip_whitespace;

    /// What `passes` makes of `text`: `Some(compact text)` when it accepts.
    fn taken(text: &str) -> Option<Vec<u8>> {
        let mut compact = b"kept".to_vec();
        let passed = passes(text.as_bytes(), false, &mut compact)?;
        assert_eq!(passed.reshaped, Reshaped::default());
        let read = passed.text.to_vec();
        assert!(
            compact.starts_with(b"kept"),
            "appends, keeps what was there"
        );
        assert_eq!(compact[4..], read, "the text read is the text appended");
        Some(compact.split_off(4))
    }

    #[test]
    fn published_examples_pass_from_their_text_compacted_as_strip_whitespace_does() {
        for user in published_examples() {
            assert!(check(&user).is_empty(), "{user}");
            for text in [
                serde_json::to_string(&user).unwrap(),
                serde_json::to_string_pretty(&user).unwrap(),
                serde_json::to_string_pretty(&user)
                    .unwrap()
                    .replace('\n', "\r\n\t"),
            ] {
                let mut expected = Vec::new();
                strip_whitespace(text.as_bytes(), &mut expected);
                assert_eq!(taken(&text), Some(expected), "{text}");
            }
        }
    }

    #[test]
    fn the_strings_read_by_rules_are_handed_back_as_written() {
        let text = r#"{"email":"Ann@Example.com","username":"ann","user_id":"42","phone_number":"+1 555","name":"A B"}"#;
        let mut compact = Vec::new();
        let passed = passes(text.as_bytes(), false, &mut compact).expect("passes");
        assert_eq!(passed.str("email"), Some("Ann@Example.com"));
        assert_eq!(passed.str("username"), Some("ann"));
        assert_eq!(passed.str("user_id"), Some("42"));
        assert_eq!(passed.str("phone_number"), Some("+1 555"));
        assert_eq!(passed.str("nickname"), None);
        assert_eq!(passed.str("not a field"), None);
        assert_eq!(passed.containers, 1);
        // By identity, each is the field of that name.
        for kind in IdentityKind::ALL {
            assert_eq!(passed.identity(kind), passed.str(kind.field()), "{kind:?}");
        }
        let text = r#"{"username":"bob","email":"b@example.com"}"#;
        let passed = passes(text.as_bytes(), false, &mut compact).expect("passes");
        let found: Vec<_> = IdentityKind::ALL.map(|kind| passed.identity(kind)).into();
        assert_eq!(found, [Some("b@example.com"), Some("bob"), None, None]);
    }

    #[test]
    fn each_rule_class_is_refused() {
        // One violation each, of every kind of rule the text pass applies itself or hands on.
        let cases = [
            with("email", json!("not an email")),
            json!({ "username": "no-email" }),
            with("email_verified", json!("yes")),
            with("blocked", json!(null)),
            with("given_name", json!(7)),
            with("nickname_typo", json!("x")),
            with("user_id", json!("has space")),
            with("user_id", json!("")),
            with("password_hash", json!("$2y$12$abc")),
            with("app_metadata", json!({ "blocked": true })),
            with("app_metadata", json!({ "a.b": 1 })),
            with("user_metadata", json!({ "$set": 1 })),
            with("user_metadata", json!([1])),
            with("mfa_factors", json!([])),
            with("mfa_factors", json!([{}])),
            with("mfa_factors", json!([{ "totp": { "secret": "lower" } }])),
            with(
                "custom_password_hash",
                json!({ "algorithm": "argon2", "hash": { "value": "x" } }),
            ),
            with(
                "custom_password_hash",
                json!({ "algorithm": "md5", "hash": { "value": "00", "encoding": "hex" } }),
            ),
        ];
        for user in cases {
            assert!(!check(&user).is_empty(), "the rules refuse {user}");
            assert_eq!(taken(&user.to_string()), None, "{user}");
        }
        // Both hash fields, each valid on its own.
        let mut both = published_examples()[1].clone();
        let cph = published_examples()[3]["custom_password_hash"].clone();
        both["custom_password_hash"] = cph;
        assert!(!check(&both).is_empty());
        assert_eq!(taken(&both.to_string()), None);
    }

    #[test]
    fn text_that_is_json_only_once_whitespace_is_gone_is_refused() {
        // Each would be valid JSON with its whitespace stripped, which is how chunks are written.
        for text in [
            r#"{"email":"a@example.com","user_metadata":{"n":[1 2]}}"#,
            r#"{"email":"a@example.com","user_metadata":{"n":t rue}}"#,
            r#"{"email":"a@example.com","user_metadata":{"n":- 1}}"#,
            r#"{"email":"a@example.com","user_metadata":{"n":1 .5}}"#,
            "{\"email\":\"a@example.com\",\u{c}\"blocked\":true}",
            "{\"email\":\"a@example.com\",\"blocked\":true}\u{b}",
        ] {
            assert_eq!(taken(text), None, "{text}");
        }
    }

    #[test]
    fn unusual_text_is_left_to_the_parsing_path() {
        for text in [
            // Escapes at the top level (in a value or a key) and in a metadata key.
            r#"{"email":"a\u0040example.com"}"#,
            r#"{"email":"a@example.com","name":"A\"B"}"#,
            r#"{"em\u0061il":"a@example.com"}"#,
            r#"{"email":"a@example.com","user_metadata":{"\u0024set":1}}"#,
            // Numbers any two parsers might read differently, and surrogate escapes.
            r#"{"email":"a@example.com","user_metadata":{"n":1e400}}"#,
            r#"{"email":"a@example.com","user_metadata":{"n":1234567890123456789012345678901234567890}}"#,
            r#"{"email":"a@example.com","user_metadata":{"s":"\ud83d\ude00"}}"#,
            // A repeated top-level key, trailing bytes, a control character, bad UTF-8.
            r#"{"email":"a@example.com","email":"b@example.com"}"#,
            r#"{"email":"a@example.com"}x"#,
            "{\"email\":\"a@example.com\",\"name\":\"a\u{1}b\"}",
        ] {
            assert_eq!(taken(text), None, "{text}");
        }
        assert!(passes(
            b"{\"email\":\"a@example.com\",\"name\":\"\xff\"}",
            false,
            &mut Vec::new()
        )
        .is_none());
        // Escapes elsewhere are read as JSON and kept as written.
        let text = r#"{"email":"a@example.com","user_metadata":{"s":"\u00e9\"\\\/\b\f\n\r\t","o":{"\u00e9":[]}}}"#;
        assert_eq!(taken(text), Some(text.as_bytes().to_vec()));
    }

    #[test]
    fn reshaping_is_judged_and_noted_not_done() {
        // The rules read the id without its prefix; the text is left for the caller to reshape.
        let text = r#"{"email":"a@example.com","user_id":"auth0|42","created_at":{"x":[1]}}"#;
        for (drop_fields, fields_dropped) in [(true, 1), (false, 0)] {
            let mut compact = Vec::new();
            let passed = passes(text.as_bytes(), drop_fields, &mut compact);
            if !drop_fields {
                // Outside an export, an export-only member is an unknown property.
                assert!(passed.is_none());
                continue;
            }
            let passed = passed.expect("passes once reshaped");
            assert_eq!(passed.str("user_id"), Some("42"));
            let wanted = Reshaped {
                fields_dropped,
                prefix_stripped: true,
            };
            assert_eq!(passed.reshaped, wanted);
            assert_eq!(compact, text.as_bytes());
        }
        let mut compact = Vec::new();
        let text = r#"{"email":"a@example.com","user_id":"auth0|42"}"#;
        let passed = passes(text.as_bytes(), false, &mut compact).expect("an import may strip");
        assert!(passed.reshaped.prefix_stripped);
        for text in [
            // What is left of the id breaks its rule.
            r#"{"email":"a@example.com","user_id":"auth0|"}"#,
            // A dropped member must still be JSON, and a repeated one is left to the parser.
            r#"{"email":"a@example.com","identities":[tru]}"#,
            r#"{"email":"a@example.com","logins_count":1,"logins_count":2}"#,
        ] {
            assert!(
                passes(text.as_bytes(), true, &mut Vec::new()).is_none(),
                "{text}"
            );
        }
    }

    #[test]
    fn depth_is_bounded_and_containers_counted() {
        let nested = |depth: usize| {
            format!(
                r#"{{"email":"a@example.com","user_metadata":{{"x":{}{}}}}}"#,
                "[".repeat(depth),
                "]".repeat(depth)
            )
        };
        let mut compact = Vec::new();
        let text = nested(10);
        let passed = passes(text.as_bytes(), false, &mut compact).expect("shallow enough");
        assert_eq!(passed.containers, 12);
        assert_eq!(taken(&nested(100_000)), None);
    }

    /// Reads `text` (one JSON value) into `slots` as the text pass reads a nested structure.
    fn read_tree<'a>(text: &'a str, slots: &mut Vec<Slot<'a>>) -> Option<()> {
        let (mut stripped, mut marks) = (Vec::new(), Marks::default());
        assert!(compact::strip_marked(
            text.as_bytes(),
            &mut stripped,
            &mut marks
        ));
        assert_eq!(stripped, text.as_bytes(), "compact text only: {text}");
        let mut cursor = Cursor {
            text,
            at: 0,
            marks: &marks,
            containers: 0,
        };
        cursor.tree(1, "", slots)?;
        (cursor.at == text.len()).then_some(())
    }

    /// `value` with one member (at any depth) removed or given another value, as text; and a
    /// few edits only text can make (a repeated key, an escape, a number spelled otherwise).
    fn variants(value: &Value) -> Vec<String> {
        let replacements = [
            json!(null),
            json!(true),
            json!(0),
            json!(16384),
            json!(8.0),
            json!(-1),
            json!(u64::MAX),
            json!(1.5),
            json!("x"),
            json!("hex"),
            json!("sha256"),
            json!({}),
            json!([]),
            json!([{}]),
            json!({ "value": "abc", "encoding": "base64" }),
        ];
        fn edit(value: &Value, replacements: &[Value], out: &mut Vec<Value>) {
            match value {
                Value::Object(map) => {
                    for key in map.keys() {
                        let mut removed = map.clone();
                        removed.remove(key);
                        out.push(Value::Object(removed));
                        for replacement in replacements {
                            let mut changed = map.clone();
                            changed.insert(key.clone(), replacement.clone());
                            out.push(Value::Object(changed));
                        }
                        let mut inner = Vec::new();
                        edit(&map[key], replacements, &mut inner);
                        for member in inner {
                            let mut changed = map.clone();
                            changed.insert(key.clone(), member);
                            out.push(Value::Object(changed));
                        }
                    }
                }
                Value::Array(items) => {
                    for (index, item) in items.iter().enumerate() {
                        let mut inner = Vec::new();
                        edit(item, replacements, &mut inner);
                        for changed_item in inner {
                            let mut changed = items.clone();
                            changed[index] = changed_item;
                            out.push(Value::Array(changed));
                        }
                    }
                    let mut extra = items.clone();
                    extra.push(json!({}));
                    out.push(Value::Array(extra));
                }
                _ => {}
            }
        }
        let mut values = vec![value.clone()];
        edit(value, &replacements, &mut values);
        let mut texts: Vec<String> = values.iter().map(Value::to_string).collect();
        let text = value.to_string();
        if let Some(rest) = text.strip_prefix('{') {
            texts.push(format!(r#"{{"algorithm":"md5",{rest}"#));
            texts.push(format!(r#"{{"\u0061lgorithm":"md5",{rest}"#));
        }
        texts.push(text.replace("16384", "16384.0").replace(":64", ":6.4e1"));
        texts.push(text.replace("\"utf8\"", "\"utf\\u0038\""));
        texts
    }

    #[test]
    fn nested_structures_read_from_their_text_get_the_violations_a_parsed_value_gets() {
        let (mut built, mut refused, mut checked) = (0, 0, 0);
        for user in published_examples() {
            for property in USER.properties {
                let Some(value) = user.get(property.name) else {
                    continue;
                };
                if !matches!(property.kind, Kind::Object(_) | Kind::Array(_))
                    || matches!(property.kind, Kind::Object(shape) if shape.is_free_form())
                {
                    continue;
                }
                let mut slots = Vec::new();
                assert!(
                    read_tree(&value.to_string(), &mut slots).is_some(),
                    "an example's {} reads into a tree",
                    property.name
                );
                for text in variants(value) {
                    checked += 1;
                    let parsed: sonic_rs::Value = sonic_rs::from_str(&text).unwrap();
                    let expected = structure_violations(property.name, &property.kind, &parsed);
                    let mut slots = Vec::new();
                    if read_tree(&text, &mut slots).is_none() {
                        continue;
                    }
                    built += 1;
                    let tree = At {
                        slots: &slots,
                        index: 0,
                    };
                    let got = structure_violations(property.name, &property.kind, tree);
                    assert_eq!(got, expected, "{text}");
                    refused += usize::from(!got.is_empty());
                }
            }
        }
        // Most variants read into a tree, and many of those break a rule: the comparison is
        // made on both verdicts.
        assert!(built * 3 > checked * 2, "{built} of {checked} read");
        assert!(refused * 2 > built, "{refused} of {built} refused");
    }

    #[test]
    fn every_record_rule_is_applied_here() {
        // `passes` applies the rules on top-level strings itself and hands each nested property
        // to all of `check_record_rules`; a rule reading two members at once (like the hash fields'
        // exclusivity) needs its own check in `passes`. Adding a rule means reading this module.
        assert_eq!(
            super::super::RECORD_RULE_COUNT,
            7,
            "a record rule was added or removed"
        );
        assert!(USER.properties.len() <= MAX_PROPERTIES);
    }

    #[test]
    fn numbers_follow_json_grammar() {
        for (number, valid) in [
            ("0", true),
            ("-0", true),
            ("197.82", true),
            ("-12.5", true),
            ("01", false),
            ("1.", false),
            (".5", false),
            ("+1", false),
            ("-", false),
            ("1.2.3", false),
        ] {
            let text = format!(r#"{{"email":"a@example.com","app_metadata":{{"n":{number}}}}}"#);
            let parses = serde_json::from_str::<Value>(&text).is_ok();
            assert_eq!(parses, valid, "{number}");
            assert_eq!(taken(&text).is_some(), valid, "{number}");
        }
        // Up to 32 digits are read here; more are left to the parsers.
        for (whole, taken_here) in [(16, true), (17, false)] {
            let number = format!("-{}.{}", "1".repeat(whole), "2".repeat(16));
            let text = format!(r#"{{"email":"a@example.com","app_metadata":{{"n":{number}}}}}"#);
            assert!(serde_json::from_str::<Value>(&text).is_ok());
            assert_eq!(taken(&text).is_some(), taken_here, "{number}");
        }
    }
}
