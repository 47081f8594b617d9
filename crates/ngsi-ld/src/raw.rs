//! JSON read without building a `serde_json::Value` tree: objects as member lists, strings
//! borrowed from the text where they hold no escapes.
//!
//! Why: a batch body of a thousand entities was read into `Value`s first, and building that tree
//! (a string allocated per key and per text value, an `IndexMap` hashed with SipHash per object)
//! cost more instructions than parsing the entities out of it. [`RawJson`] keeps the text's
//! structure as it is; [`crate::parse::parse_entity_raw`] reads the common entity shapes from
//! it and builds `Value`s only for what the model keeps (attribute values). Anything else is
//! turned into a `Value` ([`RawJson::to_value`], exactly what `serde_json` would have built) and
//! parsed as before.

use std::borrow::Cow;
use std::fmt;

use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};

/// A JSON value as written: an object is its members in the text's order, repeated keys
/// included; a string is borrowed from the text unless it had escapes.
#[derive(Debug, Clone, PartialEq)]
pub enum RawJson<'a> {
    Null,
    Bool(bool),
    Number(Number),
    String(Cow<'a, str>),
    Array(Vec<RawJson<'a>>),
    Object(Vec<(Cow<'a, str>, RawJson<'a>)>),
}

impl<'a> RawJson<'a> {
    /// The value of member `key` of an object (the last of that name, as `serde_json` keeps it;
    /// `None` for other kinds).
    pub fn get(&self, key: &str) -> Option<&RawJson<'a>> {
        match self {
            RawJson::Object(members) => member(members, key),
            _ => None,
        }
    }

    /// The text of a string.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            RawJson::String(s) => Some(s),
            _ => None,
        }
    }

    /// The `Value` `serde_json` reads from the same text: for a repeated key of an object, the
    /// last value at the first one's place.
    pub fn to_value(&self) -> Value {
        match self {
            RawJson::Null => Value::Null,
            RawJson::Bool(b) => Value::Bool(*b),
            RawJson::Number(n) => Value::Number(n.clone()),
            RawJson::String(s) => Value::String(s.as_ref().to_owned()),
            RawJson::Array(items) => Value::Array(items.iter().map(RawJson::to_value).collect()),
            RawJson::Object(members) => {
                let mut map = Map::with_capacity(members.len());
                for (key, value) in members {
                    map.insert(key.as_ref().to_owned(), value.to_value());
                }
                Value::Object(map)
            }
        }
    }
}

/// The value of the last member named `key` (the one `serde_json` keeps).
pub(crate) fn member<'m, 'a>(
    members: &'m [(Cow<'a, str>, RawJson<'a>)],
    key: &str,
) -> Option<&'m RawJson<'a>> {
    members.iter().rev().find(|(k, _)| k == key).map(|(_, v)| v)
}

/// True if two members share a key (`serde_json` keeps only the last of them).
pub(crate) fn has_repeated_keys(members: &[(Cow<'_, str>, RawJson<'_>)]) -> bool {
    members
        .iter()
        .enumerate()
        .any(|(n, (key, _))| members[..n].iter().any(|(k, _)| k == key))
}

impl<'de: 'a, 'a> Deserialize<'de> for RawJson<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(RawVisitor)
    }
}

struct RawVisitor;

// Numbers and strings as `serde_json::Value`'s own visitor takes them, so that `to_value`
// gives what it gives.
impl<'de> Visitor<'de> for RawVisitor {
    type Value = RawJson<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any valid JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Self::Value, E> {
        Ok(RawJson::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Self::Value, E> {
        Ok(RawJson::Number(v.into()))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Self::Value, E> {
        Ok(RawJson::Number(v.into()))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Self::Value, E> {
        Ok(Number::from_f64(v).map_or(RawJson::Null, RawJson::Number))
    }

    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(RawJson::String(Cow::Borrowed(v)))
    }

    fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
        Ok(RawJson::String(Cow::Owned(v.to_owned())))
    }

    fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
        Ok(RawJson::String(Cow::Owned(v)))
    }

    fn visit_none<E>(self) -> Result<Self::Value, E> {
        Ok(RawJson::Null)
    }

    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(RawJson::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        Deserialize::deserialize(d)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(4096));
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(RawJson::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut members = Vec::with_capacity(map.size_hint().unwrap_or(0).min(64));
        while let Some(RawKey(key)) = map.next_key()? {
            members.push((key, map.next_value()?));
        }
        Ok(RawJson::Object(members))
    }
}

/// An object key, borrowed where it can be (`Cow<str>`'s own `Deserialize` always copies).
struct RawKey<'a>(Cow<'a, str>);

impl<'de: 'a, 'a> Deserialize<'de> for RawKey<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl<'de> Visitor<'de> for KeyVisitor {
            type Value = RawKey<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string key")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(RawKey(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
                Ok(RawKey(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
                Ok(RawKey(Cow::Owned(v)))
            }
        }
        deserializer.deserialize_str(KeyVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Whatever the text, `to_value` is what `serde_json` reads, and errors are its errors.
    #[test]
    fn raw_json_turns_into_the_value_serde_json_reads() {
        let texts = [
            r#"{"a": 1, "b": [true, null, -2, 3.5, 1e300, 18446744073709551615], "c": {"d": "e"}}"#,
            r#"{"k": 1, "k": 2, "j": 3}"#,
            r#"{"esc\"aped": "line\nbreak \u00e9", "": ""}"#,
            r#"[1, "two", {"three": [3]}]"#,
            r#""text""#,
            "-0",
            "0.1",
            "-9223372036854775808",
            "1e400",
            r#"{"a": }"#,
            "[1, 2",
            "",
            r#"{"a": 1} x"#,
            r#"{1: 2}"#,
        ];
        for text in texts {
            let raw = serde_json::from_str::<RawJson<'_>>(text);
            let value = serde_json::from_str::<Value>(text);
            match (raw, value) {
                (Ok(raw), Ok(value)) => {
                    assert_eq!(raw.to_value(), value, "{text}");
                    // Compared as text too: `Value`'s equality does not see member order.
                    assert_eq!(raw.to_value().to_string(), value.to_string(), "{text}");
                }
                (Err(a), Err(b)) => assert_eq!(a.to_string(), b.to_string(), "{text}"),
                (a, b) => panic!("{text}: {a:?} and {b:?}"),
            }
        }
    }

    #[test]
    fn strings_without_escapes_are_borrowed() {
        let text = r#"{"plain": "text", "esc\\aped": "a\tb"}"#;
        let RawJson::Object(members) = serde_json::from_str::<RawJson<'_>>(text).unwrap() else {
            panic!("an object");
        };
        assert!(matches!(members[0].0, Cow::Borrowed("plain")));
        assert!(matches!(
            members[0].1,
            RawJson::String(Cow::Borrowed("text"))
        ));
        assert!(matches!(members[1].0, Cow::Owned(_)));
        assert!(matches!(members[1].1, RawJson::String(Cow::Owned(_))));
        let repeated = serde_json::from_str::<RawJson<'_>>(r#"{"k": 1, "k": 2}"#).unwrap();
        assert_eq!(
            repeated.get("k").map(RawJson::to_value),
            serde_json::from_str::<Value>(r#"{"k": 1, "k": 2}"#)
                .unwrap()
                .get("k")
                .cloned()
        );
        assert!(has_repeated_keys(&[
            ("a".into(), RawJson::Null),
            ("b".into(), RawJson::Null),
            ("a".into(), RawJson::Null)
        ]));
    }
}
