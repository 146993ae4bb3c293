//! Showing text that came from someone else (a trust server's error body or `Location` header,
//! a certificate's subject, an attestation's fields) to the operator without letting it steer
//! the terminal or the reader.
//!
//! Terminal escape sequences (ESC, the 8-bit CSI U+009B, ...) can recolour, hide or rewrite
//! what is already on the screen, a newline can fake a line of rootkeeper's own output, and the
//! Unicode bidi controls can make `example.com` read as something else. In a witnessed ceremony
//! each of these could make the operator read aloud what is not there, so text from outside is
//! shown through [`escape_untrusted`]: every such character becomes a visible escape, and the
//! length is bounded.

use std::fmt::Write as _;

/// How many characters [`escape_untrusted`] and [`escape_untrusted_bytes`] show at most,
/// counting each escape as the characters it is shown with.
pub const MAX_UNTRUSTED_CHARS: usize = 512;

/// Format and invisible characters escaped even where the standard library's notion of
/// "printable" might one day differ: the bidi embeddings, overrides, isolates and marks (U+061C,
/// U+200E, U+200F, U+202A..U+202E, U+2066..U+2069), zero-width characters and joiners, the line
/// and paragraph separators, invisible fillers, the byte-order mark, interlinear annotations and
/// the tag characters.
const INVISIBLE: &[(char, char)] = &[
    ('\u{00ad}', '\u{00ad}'),
    ('\u{034f}', '\u{034f}'),
    ('\u{061c}', '\u{061c}'),
    ('\u{115f}', '\u{1160}'),
    ('\u{17b4}', '\u{17b5}'),
    ('\u{180b}', '\u{180f}'),
    ('\u{200b}', '\u{200f}'),
    ('\u{2028}', '\u{202e}'),
    ('\u{2060}', '\u{206f}'),
    ('\u{3164}', '\u{3164}'),
    ('\u{fe00}', '\u{fe0f}'),
    ('\u{feff}', '\u{feff}'),
    ('\u{ffa0}', '\u{ffa0}'),
    ('\u{fff9}', '\u{fffb}'),
    ('\u{e0000}', '\u{e0fff}'),
];

/// Whether `c` is shown as an escape rather than as itself.
fn hidden(c: char) -> bool {
    c.is_control()
        || INVISIBLE.iter().any(|&(lo, hi)| (lo..=hi).contains(&c))
        // What the standard library does not print as itself (unassigned and private-use code
        // points, spaces other than ' ', combining marks), apart from the quotes it escapes.
        || (!matches!(c, '\'' | '"') && c.escape_debug().next() == Some('\\'))
}

/// `text` made safe to show: see [`escape_untrusted_bytes`].
pub fn escape_untrusted(text: &str) -> String {
    escape_untrusted_bytes(text.as_bytes())
}

/// `bytes` (text from outside, UTF-8 or not) made safe to show on a terminal or in a report,
/// on one line, at most [`MAX_UNTRUSTED_CHARS`] characters plus a note saying it was cut.
///
/// - `\` is shown as `\\`, so that an escape in the output always means an escaped character;
/// - newline, carriage return and tab as `\n`, `\r`, `\t`; other C0 controls and DEL as `\xNN`
///   (ESC is `\x1b`);
/// - C1 controls, bidi controls, zero-width and other invisible, private-use or unassigned
///   characters, and spaces other than U+0020 as `\u{NNNN}` (U+202E is `\u{202e}`);
/// - combining marks likewise (an accent written as a character of its own, the vowel signs of
///   scripts such as Devanagari), so that nothing is drawn over a neighbour: `e\u{301}` and
///   `é` stay told apart;
/// - bytes that are not UTF-8 as `\xNN` (always 80 or above, so never confused with a control).
///
/// Everything else, the letters of any script (precomposed `é`, `東`, `Ω`) and emoji
/// included, is shown as it is.
pub fn escape_untrusted_bytes(bytes: &[u8]) -> String {
    escape_untrusted_max(bytes, MAX_UNTRUSTED_CHARS)
}

/// Like [`escape_untrusted_bytes`], but showing at most `max_chars` characters before the note
/// that the rest was cut.
pub fn escape_untrusted_max(bytes: &[u8], max_chars: usize) -> String {
    let mut out = String::new();
    let mut shown: usize = 0;
    let mut piece = String::new();
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            piece.clear();
            escape_char(&mut piece, c);
            if !push_piece(&mut out, &mut shown, &piece, max_chars) {
                return cut(out, bytes.len());
            }
        }
        for byte in chunk.invalid() {
            piece.clear();
            let _ = write!(piece, "\\x{byte:02x}");
            if !push_piece(&mut out, &mut shown, &piece, max_chars) {
                return cut(out, bytes.len());
            }
        }
    }
    out
}

/// Appends `piece` when it fits within `max` shown characters; `false` when it does not.
fn push_piece(out: &mut String, shown: &mut usize, piece: &str, max: usize) -> bool {
    let after = shown.saturating_add(piece.chars().count());
    if after > max {
        return false;
    }
    out.push_str(piece);
    *shown = after;
    true
}

fn cut(mut out: String, total: usize) -> String {
    let _ = write!(out, "\u{2026} (cut; {total} bytes in all)");
    out
}

fn escape_char(out: &mut String, c: char) {
    match c {
        '\\' => out.push_str("\\\\"),
        '\n' => out.push_str("\\n"),
        '\r' => out.push_str("\\r"),
        '\t' => out.push_str("\\t"),
        '\0'..='\u{1f}' | '\u{7f}' => {
            let _ = write!(out, "\\x{:02x}", u32::from(c));
        }
        c if hidden(c) => {
            let _ = write!(out, "\\u{{{:x}}}", u32::from(c));
        }
        c => out.push(c),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_text_is_shown_as_it_is() {
        let text =
            "INVALID_UPDATE: new root has the wrong version (Zoë, 東京, Ελλάδα, Ω, 🔑) 'x' \"y\"";
        assert_eq!(escape_untrusted(text), text);
    }

    #[test]
    fn controls_are_escaped() {
        assert_eq!(
            escape_untrusted("a\x1b[2Jb\x07c\nd\re\tf\x7fg\\h"),
            "a\\x1b[2Jb\\x07c\\nd\\re\\tf\\x7fg\\\\h"
        );
        assert_eq!(escape_untrusted("\u{9b}31m"), "\\u{9b}31m");
        assert_eq!(escape_untrusted("\0"), "\\x00");
    }

    #[test]
    fn bidi_and_invisible_characters_are_escaped() {
        for (c, shown) in [
            ('\u{202a}', "\\u{202a}"),
            ('\u{202b}', "\\u{202b}"),
            ('\u{202c}', "\\u{202c}"),
            ('\u{202d}', "\\u{202d}"),
            ('\u{202e}', "\\u{202e}"),
            ('\u{2066}', "\\u{2066}"),
            ('\u{2067}', "\\u{2067}"),
            ('\u{2068}', "\\u{2068}"),
            ('\u{2069}', "\\u{2069}"),
            ('\u{200e}', "\\u{200e}"),
            ('\u{200f}', "\\u{200f}"),
            ('\u{061c}', "\\u{61c}"),
            ('\u{200b}', "\\u{200b}"),
            ('\u{2028}', "\\u{2028}"),
            ('\u{2029}', "\\u{2029}"),
            ('\u{feff}', "\\u{feff}"),
            ('\u{e0041}', "\\u{e0041}"),
            ('\u{a0}', "\\u{a0}"),
            ('\u{301}', "\\u{301}"),
        ] {
            assert_eq!(escape_untrusted(&format!("x{c}y")), format!("x{shown}y"));
        }
    }

    #[test]
    fn invalid_utf8_is_shown_as_bytes() {
        assert_eq!(
            escape_untrusted_bytes(b"ok\xff\xfe!\xc3"),
            "ok\\xff\\xfe!\\xc3"
        );
    }

    #[test]
    fn long_text_is_cut_between_escapes() {
        let long = "\x1b".repeat(1000);
        let shown = escape_untrusted(&long);
        assert!(
            shown.ends_with("\u{2026} (cut; 1000 bytes in all)"),
            "{shown}"
        );
        let body = shown.trim_end_matches("\u{2026} (cut; 1000 bytes in all)");
        assert_eq!(body, "\\x1b".repeat(MAX_UNTRUSTED_CHARS / 4));
        assert_eq!(
            escape_untrusted_max(b"abcdef", 3),
            "abc\u{2026} (cut; 6 bytes in all)"
        );
        assert_eq!(escape_untrusted_max(b"abc", 3), "abc");
        assert_eq!(escape_untrusted_max(b"", 0), "");
    }

    #[test]
    fn output_never_holds_a_control_or_bidi_character() {
        let all: String = (0u32..0x3_0000).filter_map(char::from_u32).collect();
        let shown = escape_untrusted_max(all.as_bytes(), usize::MAX);
        for c in shown.chars() {
            assert!(!c.is_control(), "{:x}", u32::from(c));
            assert!(!INVISIBLE.iter().any(|&(lo, hi)| (lo..=hi).contains(&c)));
        }
    }
}
