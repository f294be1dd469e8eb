//! Compact JSON straight from the bytes as written: insignificant whitespace outside strings is
//! dropped in one pass, so a record nobody changed need not be re-serialised from its parsed value.

use crate::rules::node::ObjectNode;
use simd_scan::{Block, BlockKernel, Lanes, Scanner, Strings, BLOCK};

/// Appends `json` to `out` without insignificant whitespace, and returns how many objects and
/// arrays it opens (a bound on how deep it nests). For JSON that parses, strings (escapes
/// included) are copied verbatim, so the result is the same value, not necessarily serde_json's
/// spelling; for JSON that does not, the result means nothing.
pub fn strip_whitespace(json: &[u8], out: &mut Vec<u8>) -> usize {
    out.reserve(json.len());
    let mut strings = Strings::default();
    let mut containers = 0;
    for piece in json.chunks(BLOCK) {
        let block = Block::new(piece);
        let inside = strings.inside(&block);
        let opens = (block.eq(b'{') | block.eq(b'[')) & !inside & block.valid();
        containers += opens.count_ones() as usize;
        // Outside strings of valid JSON, a byte at or below ' ' is whitespace.
        let drop = block.at_most(b' ') & !inside & block.valid();
        Lanes::gather(&block, block.valid() & !drop, [0; 2], out);
    }
    containers
}

/// Where the strings and the removed whitespace of a compact text are, one bit a byte (bit `i`
/// of word `i / 64` is byte `i`): what `strip_marked` knows of the text it wrote, so that a
/// reader of the compact text need not look for a string's end one byte at a time.
#[derive(Debug, Default)]
pub(crate) struct Marks {
    /// The quotes that open or close a string (not the escaped ones inside).
    quotes: Vec<u64>,
    /// The bytes that followed whitespace in the input.
    gaps: Vec<u64>,
    /// Whether a string holds a backslash.
    pub(crate) escapes: bool,
}

impl Marks {
    /// The first string quote at or after byte `from`.
    #[inline]
    pub(crate) fn next_quote(&self, from: usize) -> Option<usize> {
        let mut word = from / 64;
        let mut bits = self.quotes.get(word)? & (!0u64 << (from % 64));
        while bits == 0 {
            word += 1;
            bits = *self.quotes.get(word)?;
        }
        Some(word * 64 + bits.trailing_zeros() as usize)
    }

    /// Whether whitespace was taken out from between two of the bytes `from..to`: such bytes
    /// read as one number or literal (`1 2`, `t rue`) only once it is gone.
    #[inline]
    pub(crate) fn gap_within(&self, from: usize, to: usize) -> bool {
        let mut at = from + 1;
        while at < to {
            let word = at / 64;
            let Some(&bits) = self.gaps.get(word) else {
                return false;
            };
            let end = to.min(word * 64 + 64);
            // Bits `at % 64 ..` up to `end`, within this word.
            let span = (end - at) as u32;
            let wanted = (u64::MAX >> (64 - span)) << (at % 64);
            if bits & wanted != 0 {
                return true;
            }
            at = end;
        }
        false
    }

    fn clear(&mut self) {
        self.quotes.clear();
        self.gaps.clear();
        self.escapes = false;
    }
}

/// Appends the low `n` bits of `bits` to a bit string `len` bits long (its unused high bits 0).
#[inline]
fn append_bits(words: &mut Vec<u64>, len: usize, bits: u64, n: usize) {
    // A block of whitespace alone appends nothing: a word pushed for it would put the next
    // block's bits a word too far.
    if n == 0 {
        return;
    }
    let shift = len % 64;
    if shift == 0 {
        words.push(bits);
        return;
    }
    if let Some(last) = words.last_mut() {
        *last |= bits << shift;
    }
    if shift + n > 64 {
        words.push(bits >> (64 - shift));
    }
}

/// `strip_whitespace` for a reader of the compact text: appends `json` to `out` without the
/// whitespace outside its strings, and fills `marks` for the text it appended. `false` when the
/// compact text would hide a fault the input has: a byte under ' ' in a string, or outside one
/// where it is not JSON whitespace (tab, newline, return), or a string still open at the end.
/// Whitespace between two bytes of one number or literal is marked, not refused (`gap_within`).
pub(crate) fn strip_marked(json: &[u8], out: &mut Vec<u8>, marks: &mut Marks) -> bool {
    strip_marked_with(Scanner::detect(), json, out, marks)
}

/// `strip_marked` with the given kind of block (tests hold the CPU's against the plain one).
pub(crate) fn strip_marked_with(
    scanner: Scanner,
    json: &[u8],
    out: &mut Vec<u8>,
    marks: &mut Marks,
) -> bool {
    scanner.run(StripMarked { json, out, marks })
}

/// `strip_marked_in` as a kernel the scanner compiles for the CPU's kind of block.
struct StripMarked<'a> {
    json: &'a [u8],
    out: &'a mut Vec<u8>,
    marks: &'a mut Marks,
}

impl BlockKernel for StripMarked<'_> {
    type Output = bool;

    #[inline(always)]
    fn run<B: Lanes>(self, cpu: B::Cpu) -> bool {
        strip_marked_in::<B>(cpu, self.json, self.out, self.marks)
    }
}

#[inline(always)]
fn strip_marked_in<B: Lanes>(
    cpu: B::Cpu,
    json: &[u8],
    out: &mut Vec<u8>,
    marks: &mut Marks,
) -> bool {
    marks.clear();
    out.reserve(json.len());
    let start = out.len();
    let mut strings = Strings::default();
    // The last byte of the previous block was inside a string (its opening quote included).
    let mut was_inside = 0u64;
    // The previous block ended with whitespace taken out.
    let mut after_drop = 0u64;
    for piece in json.chunks(BLOCK) {
        let block = B::load(cpu, piece);
        let valid = block.valid();
        let backslashes = block.eq(b'\\');
        marks.escapes |= backslashes != 0;
        let inside = strings.inside_of(piece.len(), block.eq(b'"'), backslashes, || block.bytes());
        // A string's bytes run from its opening quote to before its closing one: each quote
        // that delimits one is where the mask changes.
        let quotes = (inside ^ (inside << 1 | was_inside)) & valid;
        was_inside = inside >> 63;
        let low = block.at_most(0x1f);
        if low != 0 {
            let whitespace = block.eq(b'\t') | block.eq(b'\n') | block.eq(b'\r');
            if low & !(whitespace & !inside) != 0 {
                return false;
            }
        }
        let drop = (block.eq(b' ') | low) & !inside;
        let keep = valid & !drop;
        // The bytes kept right after dropped ones: the gaps.
        let gaps = keep & (drop << 1 | after_drop);
        let at = out.len() - start;
        let (kept, [kept_quotes, kept_gaps]) = block.gather(keep, [quotes, gaps], out);
        append_bits(&mut marks.quotes, at, kept_quotes, kept);
        append_bits(&mut marks.gaps, at, kept_gaps, kept);
        after_drop = drop >> (piece.len() - 1) & 1;
    }
    !strings.open()
}

/// Whether any object in `value` names the same key twice. Such a record cannot be taken from its
/// raw bytes: Auth0 (JavaScript's `JSON.parse`) keeps the last copy of a repeated key, while the
/// parsed value here keeps both; split re-reads it with last-copy-wins semantics instead.
pub fn has_repeated_keys(value: &sonic_rs::Value) -> bool {
    use sonic_rs::JsonContainerTrait;
    if let Some(object) = value.as_object() {
        repeated_key(object).is_some() || object.iter().any(|(_, member)| has_repeated_keys(member))
    } else if let Some(items) = value.as_array() {
        items.iter().any(has_repeated_keys)
    } else {
        false
    }
}

/// The first key `object` holds more than once, if any (the first in the object's order that
/// appears again later). Records' objects are small (a dozen keys): their keys are gathered on
/// the stack and compared in pairs, which beats building a set. A larger object (free-form
/// metadata can hold thousands of keys) has its keys sorted instead, so the cost stays
/// O(n log n) whatever the input.
pub(crate) fn repeated_key<'a>(object: impl ObjectNode<'a>) -> Option<&'a str> {
    const ON_STACK: usize = 32;
    if object.len() > ON_STACK {
        let mut keys: Vec<(&str, usize)> = object
            .members()
            .enumerate()
            .map(|(i, (key, _))| (key, i))
            .collect();
        // By key, then position: each run of one key starts at its first occurrence.
        keys.sort_unstable();
        return keys
            .chunk_by(|a, b| a.0 == b.0)
            .filter(|run| run.len() > 1)
            .map(|run| run[0])
            .min_by_key(|&(_, first)| first)
            .map(|(key, _)| key);
    }
    let mut stack = [""; ON_STACK];
    let keys = &mut stack[..object.len()];
    for (slot, (key, _)) in keys.iter_mut().zip(object.members()) {
        *slot = key;
    }
    keys.iter()
        .enumerate()
        .find(|(i, key)| keys[i + 1..].contains(key))
        .map(|(_, key)| *key)
}

/// Compaction checked against byte-by-byte walks, for the unit tests and the fuzz targets
/// (`crate::fuzzing`): the block loop with the CPU's kind of block and with the plain kind.
#[cfg(any(test, feature = "fuzzing"))]
pub(crate) mod differential {
    use super::*;

    /// The pass byte by byte, the obvious way: the oracle for the block-wise one.
    pub(crate) fn strip_reference(json: &[u8]) -> Vec<u8> {
        let (mut in_string, mut escaped) = (false, false);
        let mut out = Vec::new();
        for &b in json {
            if in_string {
                if escaped {
                    escaped = false;
                } else if b == b'\\' {
                    escaped = true;
                } else if b == b'"' {
                    in_string = false;
                }
            } else if b == b'"' {
                in_string = true;
            } else if matches!(b, b' ' | b'\t' | b'\n' | b'\r') {
                continue;
            }
            out.push(b);
        }
        out
    }

    /// A compact text and its marks: by byte of the text, whether it is a delimiting quote and
    /// whether it follows whitespace; and whether a backslash was seen.
    pub(crate) type MarkedText = (Vec<u8>, Vec<bool>, Vec<bool>, bool);

    /// What `strip_marked` should give, byte by byte: `None` where it must refuse.
    pub(crate) fn marked_reference(json: &[u8]) -> Option<MarkedText> {
        let (mut in_string, mut escaped, mut after_drop, mut escapes) =
            (false, false, false, false);
        let (mut out, mut quotes, mut gaps) = (Vec::new(), Vec::new(), Vec::new());
        for &b in json {
            let mut quote = false;
            if in_string {
                if b < 0x20 {
                    return None;
                }
                if escaped {
                    escaped = false;
                } else if b == b'\\' {
                    escaped = true;
                    escapes = true;
                } else if b == b'"' {
                    in_string = false;
                    quote = true;
                }
            } else if matches!(b, b' ' | b'\t' | b'\n' | b'\r') {
                after_drop = true;
                continue;
            } else if b < 0x20 {
                return None;
            } else if b == b'"' {
                in_string = true;
                quote = true;
            } else if b == b'\\' {
                // Outside a string a backslash is kept (and refused by any reader).
                escapes = true;
            }
            out.push(b);
            quotes.push(quote);
            gaps.push(after_drop);
            after_drop = false;
        }
        (!in_string).then_some((out, quotes, gaps, escapes))
    }

    /// The marks as one flag per byte of a text `len` bytes long.
    pub(crate) fn flags(words: &[u64], len: usize) -> Vec<bool> {
        (0..len)
            .map(|i| words.get(i / 64).is_some_and(|w| w >> (i % 64) & 1 == 1))
            .collect()
    }

    /// Runs one way of marking, returning what it wrote after what `out` held.
    pub(crate) fn run_marked(
        strip: fn(&[u8], &mut Vec<u8>, &mut Marks) -> bool,
        json: &[u8],
    ) -> Option<MarkedText> {
        let mut out = b"held".to_vec();
        // Marks left from an earlier record must not leak into this one.
        let mut marks = Marks::default();
        strip(b"\"x\"  :  \"\\\"\"", &mut Vec::new(), &mut marks);
        if !strip(json, &mut out, &mut marks) {
            return None;
        }
        assert!(out.starts_with(b"held"));
        let text = out.split_off(4);
        let (quotes, gaps) = (
            flags(&marks.quotes, text.len()),
            flags(&marks.gaps, text.len()),
        );
        // Nothing is marked past the text's end.
        assert_eq!(
            flags(&marks.quotes, text.len() + 64)[text.len()..]
                .iter()
                .filter(|b| **b)
                .count(),
            0
        );
        Some((text, quotes, gaps, marks.escapes))
    }

    /// Both kinds of block compact `json` as the byte-by-byte walks do: the same text, marks and
    /// refusals from `strip_marked`, the same text from `strip_whitespace`.
    pub(crate) fn marks_agree(json: &[u8]) -> Result<(), String> {
        let expected = marked_reference(json);
        let plain: fn(&[u8], &mut Vec<u8>, &mut Marks) -> bool =
            |json, out, marks| strip_marked_with(Scanner::portable(), json, out, marks);
        for (kind, strip) in [("the plain kind", plain), ("this CPU's kind", strip_marked)] {
            let got = run_marked(strip, json);
            if got != expected {
                return Err(format!(
                    "{kind} of block marked {got:?}, the byte-by-byte walk {expected:?}"
                ));
            }
        }
        // `strip_whitespace` promises nothing for input `strip_marked` refuses.
        if expected.is_none() {
            return Ok(());
        }
        let mut out = Vec::new();
        strip_whitespace(json, &mut out);
        let walked = strip_reference(json);
        if out != walked {
            return Err(format!(
                "strip_whitespace wrote {:?}, the byte-by-byte walk {:?}",
                String::from_utf8_lossy(&out),
                String::from_utf8_lossy(&walked)
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::differential::*;
    use super::*;
    use proptest::prelude::*;
    use serde_json::Value;

    /// Objects and arrays in a value, nested ones included.
    fn count_containers(value: &Value) -> usize {
        match value {
            Value::Object(map) => 1 + map.values().map(count_containers).sum::<usize>(),
            Value::Array(items) => 1 + items.iter().map(count_containers).sum::<usize>(),
            _ => 0,
        }
    }

    fn strip(s: &str) -> String {
        let mut out = Vec::new();
        strip_whitespace(s.as_bytes(), &mut out);
        String::from_utf8(out).unwrap()
    }

    /// True when `s` has no whitespace outside its strings.
    fn is_compact(s: &[u8]) -> bool {
        strip_reference(s) == s
    }

    /// Texts made of JSON's kinds of tokens in any order (whitespace runs, strings with escapes
    /// and spaces, atoms, structural characters), so that most are accepted and their strings
    /// and whitespace fall anywhere across 64-byte blocks; now and then a fault to refuse.
    fn json_soup() -> impl Strategy<Value = Vec<u8>> {
        let piece = prop_oneof![
            4 => proptest::collection::vec(
                prop_oneof![4 => Just(b' '), 1 => Just(b'\t'), 1 => Just(b'\n'), 1 => Just(b'\r')],
                1..4,
            ),
            4 => proptest::collection::vec(
                prop_oneof![
                    4 => Just(&b"a"[..]),
                    2 => Just(&b" "[..]),
                    1 => Just(&b"\xc3\xa9"[..]),
                    1 => Just(&b"\\\""[..]),
                    1 => Just(&b"\\\\"[..]),
                    1 => Just(&b"\\n"[..]),
                ],
                0..12,
            )
            .prop_map(|parts| [&b"\""[..], &parts.concat(), b"\""].concat()),
            3 => prop_oneof![
                Just(&b"1"[..]),
                Just(&b"-0.5"[..]),
                Just(&b"true"[..]),
                Just(&b"e"[..]),
                Just(&b"0"[..]),
            ]
            .prop_map(|atom: &[u8]| atom.to_vec()),
            3 => prop_oneof![Just(b'{'), Just(b'}'), Just(b'['), Just(b']'), Just(b':'), Just(b',')]
                .prop_map(|b| vec![b]),
            1 => prop_oneof![
                Just(&b"\x01"[..]),
                Just(&b"\x0c"[..]),
                Just(&b"\""[..]),
                Just(&b"\\"[..]),
                Just(&b"\"\x1f\""[..]),
            ]
            .prop_map(|fault: &[u8]| fault.to_vec()),
        ];
        proptest::collection::vec(piece, 0..120).prop_map(|pieces| pieces.concat())
    }

    proptest! {
        /// Both ways of marking (the block loop, and AVX-512 where this CPU has it) agree
        /// with a byte-by-byte walk: the same text, marks and refusals.
        #[test]
        fn marks_match_a_byte_by_byte_walk(json in json_soup()) {
            marks_agree(&json).map_err(TestCaseError::fail)?;
        }

        /// Where the text is accepted, `next_quote` and `gap_within` read the marks exactly.
        #[test]
        fn mark_lookups_match_the_flags(json in json_soup(), from in 0usize..420, to in 0usize..420) {
            let mut out = Vec::new();
            let mut marks = Marks::default();
            if strip_marked(&json, &mut out, &mut marks) {
                let quotes = flags(&marks.quotes, out.len());
                let gaps = flags(&marks.gaps, out.len());
                let next = (from..out.len()).find(|&i| quotes[i]);
                prop_assert_eq!(marks.next_quote(from), next);
                let within = (from + 1..to.min(out.len())).any(|i| gaps[i]);
                prop_assert_eq!(marks.gap_within(from, to.min(out.len())), within);
            }
        }
    }

    /// Found by the `fast_path` fuzz target: 64 bytes of whitespace, a whole block dropped,
    /// where the text written so far filled whole words, pushed the later marks a word on.
    #[test]
    fn a_block_of_whitespace_alone_leaves_the_marks_in_place() {
        for before in [0, 64, 128] {
            // `before` bytes kept, then a block of whitespace, then a string.
            let mut json = [vec![b'1'; before], vec![b'\r'; 64]].concat();
            json.extend_from_slice(b"{\"a\": \"b\"}");
            marks_agree(&json).unwrap();
            let mut out = Vec::new();
            let mut marks = Marks::default();
            assert!(strip_marked(&json, &mut out, &mut marks));
            let first = out.len() - b"{\"a\":\"b\"}".len() + 1;
            assert_eq!(marks.next_quote(first), Some(first), "{before}");
        }
    }

    #[test]
    fn marks_tell_strings_and_merged_tokens() {
        let mut out = Vec::new();
        let mut marks = Marks::default();
        assert!(strip_marked(
            b"{ \"a b\" : [1 2, \"\\\"\"] }",
            &mut out,
            &mut marks
        ));
        assert_eq!(out, b"{\"a b\":[12,\"\\\"\"]}");
        // The string's quotes, not the escaped one inside the second string.
        assert_eq!(marks.next_quote(0), Some(1));
        assert_eq!(marks.next_quote(2), Some(5));
        assert_eq!(marks.next_quote(12), Some(14));
        assert!(marks.escapes);
        // `1 2` reads as one number only without its space.
        assert!(marks.gap_within(8, 10));
        assert!(!marks.gap_within(7, 9));
        for refused in [&b"{\"a\x01\":1}"[..], b"{\"a\":1}\x0c", b"{\"a\":\"open}"] {
            assert!(!strip_marked(refused, &mut Vec::new(), &mut marks));
        }
    }

    #[test]
    fn keeps_strings_and_escapes_drops_the_rest() {
        let out =
            strip("{ \"a b\" : [ 1 ,\t2.5e3 ],\r\n \"q\\\" :\" : \"x\\\\\" , \"u\":\"\\u00e9 \" }");
        assert_eq!(
            out,
            "{\"a b\":[1,2.5e3],\"q\\\" :\":\"x\\\\\",\"u\":\"\\u00e9 \"}"
        );
    }

    proptest! {
        /// Small objects are compared in pairs, large ones sorted: both name the first key in
        /// the object's order that appears again later.
        #[test]
        fn the_first_repeated_key_is_found_in_objects_of_any_size(
            keys in proptest::collection::vec(0u16..400, 0..200),
        ) {
            let text = format!(
                "{{{}}}",
                keys.iter().map(|k| format!("\"k{k}\":0")).collect::<Vec<_>>().join(",")
            );
            let value: sonic_rs::Value = sonic_rs::from_str(&text).unwrap();
            let object = sonic_rs::JsonContainerTrait::as_object(&value).unwrap();
            let expected = keys
                .iter()
                .enumerate()
                .find(|(i, k)| keys[i + 1..].contains(k))
                .map(|(_, k)| format!("k{k}"));
            prop_assert_eq!(repeated_key(object).map(str::to_string), expected);
        }
    }

    #[test]
    fn repeated_keys_are_found_at_any_depth_and_only_within_one_object() {
        let repeated = |raw: &str| has_repeated_keys(&sonic_rs::from_str(raw).unwrap());
        assert!(repeated(r#"{"a":1,"a":2}"#));
        assert!(repeated(r#"{"a":{"b":[{"c":1,"d":2,"c":3}]}}"#));
        assert!(!repeated(r#"{"a":{"a":{"a":1}},"b":[{"a":1},{"a":2}]}"#));
        assert!(!repeated(r#"[{"a":1},{"b":2}]"#));
        assert!(!repeated(r#""a""#));
    }

    fn json_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            any::<f64>()
                .prop_filter("finite", |f| f.is_finite())
                .prop_map(Value::from),
            "[ -~\\t\\n\"\\\\éß\u{1F600}\u{7}]{0,12}".prop_map(Value::String),
        ];
        leaf.prop_recursive(4, 48, 6, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                proptest::collection::vec(("[ -~\\t\"\\\\é]{0,6}", inner), 0..6)
                    .prop_map(|kv| Value::Object(kv.into_iter().collect())),
            ]
        })
    }

    /// Spreads random whitespace between the tokens of a pretty-printed rendering (before each
    /// structural character or string; never inside a number or literal).
    fn loosen(pretty: &str, seed: u64) -> String {
        let mut out = String::new();
        let mut in_string = false;
        let mut escaped = false;
        let mut r = seed | 1;
        for c in pretty.chars() {
            if !in_string && "{}[],:\"".contains(c) {
                r ^= r << 13;
                r ^= r >> 7;
                r ^= r << 17;
                out.push_str([" ", "", "\t", "\r\n", "", "  \n"][(r % 6) as usize]);
            }
            out.push(c);
            if in_string {
                if escaped {
                    escaped = false;
                } else if c == '\\' {
                    escaped = true;
                } else if c == '"' {
                    in_string = false;
                }
            } else if c == '"' {
                in_string = true;
            }
        }
        out
    }

    proptest! {
        #[test]
        fn stripped_bytes_are_the_same_value_and_compact(value in json_value(), seed in any::<u64>()) {
            let raw = loosen(&serde_json::to_string_pretty(&value).unwrap(), seed);
            let mut out = Vec::new();
            let containers = strip_whitespace(raw.as_bytes(), &mut out);
            prop_assert_eq!(&out, &strip_reference(raw.as_bytes()));
            // Compared with what the parser makes of the input (serde_json's float parsing is
            // not always exact, so `value` itself may differ in the last digit).
            let parsed: Value = serde_json::from_str(&raw).unwrap();
            prop_assert_eq!(containers, count_containers(&parsed));
            let back: Value = serde_json::from_slice(&out).unwrap();
            prop_assert_eq!(&back, &parsed);
            prop_assert!(is_compact(&out), "{}", String::from_utf8_lossy(&out));
            // Generated from a map, the value has no repeated keys: nor has its parsed text.
            prop_assert!(!has_repeated_keys(&sonic_rs::from_slice(&out).unwrap()));
            // serde_json's own compact form is already stripped: the pass leaves it alone.
            let compact = serde_json::to_vec(&value).unwrap();
            let mut again = Vec::new();
            strip_whitespace(&compact, &mut again);
            prop_assert_eq!(again, compact);
        }
    }
}
