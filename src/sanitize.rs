//! Makes task text inert before it is pasted: nothing in it may act as a
//! keystroke or end the bracketed paste early.

/// Keeps printable text, newline and tab; turns CRLF and lone CR into LF;
/// drops ESC, every other C0 control, DEL and the C1 range.
pub fn paste_text(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\r' => {
                if chars.peek() != Some(&'\n') {
                    out.push('\n');
                }
            }
            '\n' | '\t' => out.push(c),
            c if (c as u32) < 0x20 || c == '\u{7f}' || ('\u{80}'..='\u{9f}').contains(&c) => {}
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_escape_sequences_and_bracket_end() {
        let s = paste_text("a\x1b[201~b\x1b]0;t\x07c\u{9b}d");
        assert_eq!(s, "a[201~b]0;tcd");
        assert!(!s.contains('\x1b'));
    }

    #[test]
    fn normalises_line_endings_and_keeps_tabs() {
        assert_eq!(paste_text("a\r\nb\rc\td\n"), "a\nb\nc\td\n");
    }

    #[test]
    fn printable_unicode_is_unchanged() {
        let s = "héllo ❯ 日本 $(rm -rf /) \"q\" 'x' -dash";
        assert_eq!(paste_text(s), s);
    }

    #[test]
    fn property_no_controls_survive() {
        // Exhaustive over every single char class boundary plus mixes.
        let mut all = String::new();
        for u in (0u32..0x250).chain([0x2028, 0x276f, 0xfeff]) {
            if let Some(c) = char::from_u32(u) {
                all.push(c);
                all.push('x');
            }
        }
        let out = paste_text(&all);
        for c in out.chars() {
            let u = c as u32;
            assert!(c == '\n' || c == '\t' || (u >= 0x20 && u != 0x7f && !(0x80..=0x9f).contains(&u)), "{u:#x}");
        }
        let printable: String = all.chars().filter(|c| !c.is_control()).collect();
        let kept: String = out.chars().filter(|c| !c.is_control()).collect();
        assert_eq!(printable, kept);
    }
}
