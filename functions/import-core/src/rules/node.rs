//! What the rules read of a JSON value. Each rule is written once, against these traits, and
//! serves both readers: sonic-rs's parsed values (every path that parses a record) and the small
//! tree the text pass builds for a record's nested structures (`text`'s `Slot` list, read through
//! `At`), which costs a fraction of a parse.

use sonic_rs::{JsonContainerTrait, JsonType, JsonValueTrait};

/// A JSON value, held by reference (`Copy`): its strings and keys live as long as `'a`.
pub(crate) trait Node<'a>: Copy {
    type Object: ObjectNode<'a, Node = Self>;
    type Array: ArrayNode<'a, Node = Self>;

    fn json_type(self) -> JsonType;
    fn as_str(self) -> Option<&'a str>;
    fn is_boolean(self) -> bool;
    /// An integer that fits `i64` (as sonic-rs and serde_json read it).
    fn is_i64(self) -> bool;
    /// An integer that fits `u64`.
    fn is_u64(self) -> bool;
    fn as_i64(self) -> Option<i64>;
    fn as_u64(self) -> Option<u64>;
    /// Any number, as a double.
    fn as_f64(self) -> Option<f64>;
    fn as_object(self) -> Option<Self::Object>;
    fn as_array(self) -> Option<Self::Array>;

    fn is_number(self) -> bool {
        self.json_type() == JsonType::Number
    }
}

/// A JSON object: its members in the order written, repeated keys included.
pub(crate) trait ObjectNode<'a>: Copy {
    type Node: Node<'a>;

    fn len(self) -> usize;
    /// The first member named `key`.
    fn get(self, key: &str) -> Option<Self::Node>;
    fn members(self) -> impl Iterator<Item = (&'a str, Self::Node)>;

    fn is_empty(self) -> bool {
        self.len() == 0
    }

    fn contains_key(self, key: &str) -> bool {
        self.get(key).is_some()
    }
}

/// A JSON array.
pub(crate) trait ArrayNode<'a>: Copy {
    type Node: Node<'a>;

    fn len(self) -> usize;
    fn items(self) -> impl Iterator<Item = Self::Node>;
}

impl<'a> Node<'a> for &'a sonic_rs::Value {
    type Object = &'a sonic_rs::Object;
    type Array = &'a sonic_rs::Array;

    fn json_type(self) -> JsonType {
        JsonValueTrait::get_type(self)
    }

    fn as_str(self) -> Option<&'a str> {
        JsonValueTrait::as_str(self)
    }

    fn is_boolean(self) -> bool {
        JsonValueTrait::is_boolean(self)
    }

    fn is_i64(self) -> bool {
        JsonValueTrait::is_i64(self)
    }

    fn is_u64(self) -> bool {
        JsonValueTrait::is_u64(self)
    }

    fn as_i64(self) -> Option<i64> {
        JsonValueTrait::as_i64(self)
    }

    fn as_u64(self) -> Option<u64> {
        JsonValueTrait::as_u64(self)
    }

    fn as_f64(self) -> Option<f64> {
        JsonValueTrait::as_f64(self)
    }

    fn as_object(self) -> Option<Self::Object> {
        JsonContainerTrait::as_object(self)
    }

    fn as_array(self) -> Option<Self::Array> {
        JsonContainerTrait::as_array(self)
    }
}

impl<'a> ObjectNode<'a> for &'a sonic_rs::Object {
    type Node = &'a sonic_rs::Value;

    fn len(self) -> usize {
        sonic_rs::Object::len(self)
    }

    fn get(self, key: &str) -> Option<Self::Node> {
        sonic_rs::Object::get(self, &key)
    }

    fn members(self) -> impl Iterator<Item = (&'a str, Self::Node)> {
        sonic_rs::Object::iter(self)
    }
}

impl<'a> ArrayNode<'a> for &'a sonic_rs::Array {
    type Node = &'a sonic_rs::Value;

    fn len(self) -> usize {
        sonic_rs::Array::len(self)
    }

    fn items(self) -> impl Iterator<Item = Self::Node> {
        self.iter()
    }
}
