//! Compact JSON straight from the bytes as written: insignificant whitespace outside strings is
//! dropped in one pass, so a record nobody changed need not be re-serialised from its parsed value.

use crate::rules::node::ObjectNode;
use crate::scan::{Block, Strings, BLOCK};

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
        let mut drop = block.at_most(b' ') & !inside & block.valid();
        if drop == 0 {
            out.extend_from_slice(piece);
            continue;
        }
        // The runs between dropped bytes are short: each is copied 16 bytes at a time into a
        // staging buffer (spilling past its end, where the next run lands), and the block goes
        // to `out` in one copy, rather than a memcpy call per run.
        let mut source = [0u8; BLOCK + 16];
        source[..BLOCK].copy_from_slice(block.bytes());
        let mut staged = [0u8; BLOCK + 16];
        let mut len = 0;
        let mut run = 0;
        let mut stage = |from: usize, to: usize| {
            let mut k = 0;
            while k < to - from {
                staged[len + k..len + k + 16].copy_from_slice(&source[from + k..from + k + 16]);
                k += 16;
            }
            len += to - from;
        };
        while drop != 0 {
            let at = drop.trailing_zeros() as usize;
            stage(run, at);
            run = at + 1;
            drop &= drop - 1;
        }
        stage(run, piece.len());
        out.extend_from_slice(&staged[..len]);
    }
    containers
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

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::Value;

    /// The pass byte by byte, the obvious way: the oracle for the block-wise one.
    fn strip_reference(json: &[u8]) -> Vec<u8> {
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
