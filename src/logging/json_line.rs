//! One JSON object written straight into a byte buffer, for the audit line. Keys are the program's own
//! identifiers and go in as they are; string values are escaped by `serde_json`, except that a value
//! needing no escape (nearly all of them: ids, scopes, codes) is found by one vectorised scan and copied
//! whole. Serde's derived serializer escapes every key and value byte by byte, which was a fifth of the
//! audit line's cost at the broker's request rate.

use serde_json::value::RawValue;

pub struct JsonLine<'a> {
    out: &'a mut Vec<u8>,
    first: bool,
}

impl<'a> JsonLine<'a> {
    pub fn begin(out: &'a mut Vec<u8>) -> Self {
        out.push(b'{');
        Self { out, first: true }
    }

    pub fn str(&mut self, key: &'static str, value: &str) -> &mut Self {
        self.key(key);
        write_string(self.out, value);
        self
    }

    /// A JSON value already encoded (a pre-escaped string, say).
    pub fn raw(&mut self, key: &'static str, value: &RawValue) -> &mut Self {
        self.key(key);
        self.out.extend_from_slice(value.get().as_bytes());
        self
    }

    pub fn u64(&mut self, key: &'static str, value: u64) -> &mut Self {
        self.key(key);
        self.out
            .extend_from_slice(itoa::Buffer::new().format(value).as_bytes());
        self
    }

    pub fn bool(&mut self, key: &'static str, value: bool) -> &mut Self {
        self.key(key);
        self.out
            .extend_from_slice(if value { b"true" } else { b"false" });
        self
    }

    /// Closes the object and ends the line.
    pub fn end(&mut self) {
        self.out.extend_from_slice(b"}\n");
    }

    fn key(&mut self, key: &'static str) {
        debug_assert!(needs_no_escape(key), "keys are plain identifiers");
        if !self.first {
            self.out.push(b',');
        }
        self.first = false;
        self.out.push(b'"');
        self.out.extend_from_slice(key.as_bytes());
        self.out.extend_from_slice(b"\":");
    }
}

fn write_string(out: &mut Vec<u8>, value: &str) {
    if needs_no_escape(value) {
        out.push(b'"');
        out.extend_from_slice(value.as_bytes());
        out.push(b'"');
    } else if serde_json::to_writer(&mut *out, value).is_err() {
        // Writing a string into a Vec cannot fail; keep the line valid JSON regardless.
        out.extend_from_slice(b"null");
    }
}

/// Whether JSON carries `value` verbatim: no control character, quote or backslash. One pass without
/// early exits, so it vectorises.
fn needs_no_escape(value: &str) -> bool {
    value.bytes().fold(true, |plain, b| {
        plain & (b >= 0x20) & (b != b'"') & (b != b'\\')
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(build: impl FnOnce(&mut JsonLine<'_>)) -> serde_json::Value {
        let mut out = Vec::new();
        build(&mut JsonLine::begin(&mut out));
        assert_eq!(out.pop(), Some(b'\n'));
        serde_json::from_slice(&out).unwrap()
    }

    #[test]
    fn writes_a_valid_object_with_every_kind_of_value() {
        let raw = RawValue::from_string(r#""pre \"escaped\"""#.to_owned()).unwrap();
        let value = line(|l| {
            l.str("plain", "https://database.windows.net/.default")
                .str("hostile", "a\"b\\c\nd\u{1}é")
                .raw("raw", &raw)
                .u64("n", 18_446_744_073_709_551_615)
                .bool("yes", true)
                .bool("no", false)
                .end()
        });
        assert_eq!(
            value,
            serde_json::json!({
                "plain": "https://database.windows.net/.default",
                "hostile": "a\"b\\c\nd\u{1}é",
                "raw": "pre \"escaped\"",
                "n": 18_446_744_073_709_551_615u64,
                "yes": true,
                "no": false,
            })
        );
    }

    #[test]
    fn an_empty_object_is_valid() {
        assert_eq!(line(|l| l.end()), serde_json::json!({}));
    }

    #[test]
    fn escape_detection_matches_json_rules() {
        assert!(needs_no_escape("ana@contoso.com /x é"));
        for hostile in ["\"", "\\", "\n", "\u{0}", "\u{1f}", "tab\t"] {
            assert!(!needs_no_escape(hostile), "{hostile:?}");
        }
        assert!(needs_no_escape("\u{7f}"), "DEL is legal in JSON strings");
    }
}
