//! The strict JSON a JOSE header or JWT payload must be: valid UTF-8 (escapes included: no lone
//! surrogates), one JSON object, every member name unique at every level (RFC 7515 §5.2 and RFC 7519 §4:
//! a parser that keeps the last duplicate and one that keeps the first would disagree about the token),
//! and nested no deeper than a limit. serde_json validates strings it reads but skips the ones a struct
//! ignores, so every value is walked here first.

use std::collections::HashSet;
use std::fmt;

use serde::de::{DeserializeSeed, Deserializer, Error as _, MapAccess, SeqAccess, Visitor};

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum StrictJsonError {
    #[error("not one UTF-8 JSON value with unique member names, nested within the limit")]
    Invalid,
    #[error("not a JSON object")]
    NotAnObject,
}

/// The member names of the object in `bytes`, after checking the whole value is strict JSON nested at
/// most `max_depth` objects and arrays deep.
pub fn object_member_names(bytes: &[u8], max_depth: usize) -> Result<Vec<String>, StrictJsonError> {
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let names = Strict {
        depth: 0,
        max_depth,
    }
    .deserialize(&mut deserializer)
    .map_err(|_| StrictJsonError::Invalid)?;
    deserializer.end().map_err(|_| StrictJsonError::Invalid)?;
    names.ok_or(StrictJsonError::NotAnObject)
}

/// One value at `depth`; yields the member names when the value is an object.
#[derive(Clone, Copy)]
struct Strict {
    depth: usize,
    max_depth: usize,
}

impl Strict {
    fn nested<E: serde::de::Error>(self) -> Result<Self, E> {
        if self.depth >= self.max_depth {
            return Err(E::custom("nested too deeply"));
        }
        Ok(Self {
            depth: self.depth + 1,
            ..self
        })
    }
}

impl<'de> DeserializeSeed<'de> for Strict {
    type Value = Option<Vec<String>>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Strict {
    type Value = Option<Vec<String>>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_str<E>(self, _: &str) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let inner = self.nested()?;
        while seq.next_element_seed(inner)?.is_some() {}
        Ok(None)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let inner = self.nested()?;
        let mut seen = HashSet::new();
        let mut names = Vec::new();
        while let Some(name) = map.next_key::<String>()? {
            if !seen.insert(name.clone()) {
                return Err(A::Error::custom("duplicate member name"));
            }
            map.next_value_seed(inner)?;
            names.push(name);
        }
        Ok(Some(names))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_strict_object_yields_its_member_names() {
        let names = object_member_names(br#"{"a":1,"b":{"c":[true,null,"\u00e9"]},"d":-1.5e3}"#, 4);
        assert_eq!(
            names,
            Ok(vec!["a".to_owned(), "b".to_owned(), "d".to_owned()])
        );
    }

    #[test]
    fn duplicate_member_names_are_refused_at_any_depth() {
        for json in [
            r#"{"a":1,"a":1}"#,
            r#"{"a":{"b":1,"b":2}}"#,
            r#"{"a":[{"b":1,"b":2}]}"#,
            r#"{"a":1,"\u0061":2}"#,
        ] {
            assert_eq!(
                object_member_names(json.as_bytes(), 8),
                Err(StrictJsonError::Invalid),
                "{json}"
            );
        }
    }

    #[test]
    fn invalid_utf8_and_lone_surrogates_are_refused_even_in_values_nobody_reads() {
        let cases: [&[u8]; 4] = [
            b"{\"x\":\"\xff\"}",
            b"{\"x\":\"\xc3\"}",
            br#"{"x":"\ud800"}"#,
            b"{\"\xed\xa0\x80\":1}",
        ];
        for json in cases {
            assert_eq!(
                object_member_names(json, 8),
                Err(StrictJsonError::Invalid),
                "{json:?}"
            );
        }
        assert!(object_member_names(br#"{"x":"\ud83d\ude00"}"#, 8).is_ok());
    }

    #[test]
    fn depth_trailing_bytes_and_non_objects_are_refused() {
        assert!(object_member_names(br#"{"a":[[1]]}"#, 3).is_ok());
        assert_eq!(
            object_member_names(br#"{"a":[[[1]]]}"#, 3),
            Err(StrictJsonError::Invalid)
        );
        assert_eq!(
            object_member_names(br#"{"a":1} x"#, 3),
            Err(StrictJsonError::Invalid)
        );
        assert_eq!(
            object_member_names(b"[1]", 3),
            Err(StrictJsonError::NotAnObject)
        );
    }
}
