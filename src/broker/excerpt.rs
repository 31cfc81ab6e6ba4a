//! Outside text (a policy document's keys and values, a setting, a command-line argument, a parser's
//! message) made safe to print: every character that is not printable is written as an escape, so no
//! control sequence reaches a terminal or a log raw, and the result is cut short, so a huge input
//! cannot make an error huge. Every error that shows such text prepares it here.

/// Marks an excerpt that was cut.
pub const CUT: char = '…';

/// Longest quoted value, in characters of its escaped text.
pub const QUOTED_CHARS: usize = 64;

/// `text` with every character that is not printable (controls, format characters such as bidi
/// overrides, line separators), `\` and `"` written as Rust escapes (`\u{1b}`, `\n`, `\\`), cut after
/// `max_chars` characters of the escaped text (an escape is never split) and then marked with `…`.
pub fn escaped(text: &str, max_chars: usize) -> String {
    let mut out = String::new();
    let mut used = 0;
    for c in text.chars() {
        let escape = c.escape_debug();
        // An apostrophe needs no escape outside a Rust char literal.
        let width = if c == '\'' { 1 } else { escape.len() };
        used += width;
        if used > max_chars {
            out.push(CUT);
            return out;
        }
        if c == '\'' {
            out.push(c);
        } else {
            out.extend(escape);
        }
    }
    out
}

/// `text` escaped, cut to `QUOTED_CHARS` and put in double quotes: how an error quotes the value it is
/// about (`"no_such_alias" is not an alias ...`).
pub fn quoted(text: &str) -> String {
    format!("\"{}\"", escaped(text, QUOTED_CHARS))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn printable_text_is_kept_as_it_is() {
        assert_eq!(
            escaped("Ana O'Brien, Zürich ✓", 64),
            "Ana O'Brien, Zürich ✓"
        );
        assert_eq!(quoted("no_such_alias"), "\"no_such_alias\"");
    }

    #[test]
    fn control_and_invisible_characters_are_escaped() {
        assert_eq!(
            escaped("\u{1b}[2K\rvalid\n\t\u{7f}\u{9b}", 64),
            "\\u{1b}[2K\\rvalid\\n\\t\\u{7f}\\u{9b}"
        );
        // Bidi overrides and line separators would reorder or break a line on a terminal.
        assert_eq!(
            escaped("a\u{202e}b\u{2028}c\u{200b}", 64),
            "a\\u{202e}b\\u{2028}c\\u{200b}"
        );
        assert_eq!(quoted("say \"hi\" \\"), "\"say \\\"hi\\\" \\\\\"");
        assert!(
            !escaped("\u{1b}]0;title\u{7}", 64)
                .chars()
                .any(char::is_control)
        );
    }

    #[test]
    fn long_text_is_cut_and_marked_without_splitting_an_escape() {
        let long = "x".repeat(200_000);
        let cut = escaped(&long, 10);
        assert_eq!(cut, format!("{}…", "x".repeat(10)));
        assert_eq!(quoted(&long).chars().count(), QUOTED_CHARS + 3);
        assert_eq!(escaped("abcdefgh\u{1b}", 10), "abcdefgh…");
        assert_eq!(escaped("abcdef\u{1b}", 12), "abcdef\\u{1b}");
    }
}
