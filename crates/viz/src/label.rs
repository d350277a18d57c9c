//! Turning token texts into labels that show up on a figure.

use std::fmt::Write as _;

/// What an empty token is drawn as.
pub const EMPTY_TOKEN: &str = "∅";

/// The visible label of a token text.
///
/// Ordinary tokens are kept as they are, leading space included (as ROME
/// shows them). Tokens that would draw nothing are made visible:
/// - control characters are escaped: `"\n"` becomes `\n`, `"\t"` `\t`,
///   `"\r"` `\r`, others `\u{1b}` and so on;
/// - a token made only of whitespace has each whitespace character drawn
///   as `␣`;
/// - the empty token is drawn as [`EMPTY_TOKEN`].
pub fn token_label(token: &str) -> String {
    if token.is_empty() {
        return EMPTY_TOKEN.to_string();
    }
    if token.chars().all(|c| c.is_whitespace() && !c.is_control()) {
        return token.chars().map(|_| '␣').collect();
    }
    let mut out = String::with_capacity(token.len());
    for c in token.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() || is_invisible_format(c) => {
                let _ = write!(out, "\\u{{{:x}}}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out
}

/// Zero-width and format characters that draw nothing.
fn is_invisible_format(c: char) -> bool {
    matches!(
        c,
        '\u{200b}'..='\u{200f}' | '\u{2028}'..='\u{202e}' | '\u{2060}'..='\u{2064}' | '\u{feff}'
    )
}

/// Makes free text (titles, axis labels, series names) safe to draw:
/// control characters other than newline become `\u{..}` escapes.
pub(crate) fn clean_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_control() {
            let _ = write!(out, "\\u{{{:x}}}", u32::from(c));
        } else {
            out.push(c);
        }
    }
    out
}

/// The lines of a title: split at newlines, each cleaned, empty ones dropped.
pub(crate) fn title_lines(title: &str) -> Vec<String> {
    title
        .split('\n')
        .map(|l| clean_text(l.trim_end_matches('\r')))
        .filter(|l| !l.trim().is_empty())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordinary_tokens_are_kept() {
        assert_eq!(token_label(" Paris"), " Paris");
        assert_eq!(token_label("The"), "The");
    }

    #[test]
    fn invisible_tokens_are_made_visible() {
        assert_eq!(token_label(""), "∅");
        assert_eq!(token_label(" "), "␣");
        assert_eq!(token_label("  "), "␣␣");
        assert_eq!(token_label("\n"), "\\n");
        assert_eq!(token_label("\n\n"), "\\n\\n");
        assert_eq!(token_label(" \t"), " \\t");
        assert_eq!(token_label("\u{1b}"), "\\u{1b}");
        assert_eq!(token_label("\u{200b}"), "\\u{200b}");
    }

    #[test]
    fn titles_split_into_lines() {
        assert_eq!(
            title_lines("Impact\nanswer \" Paris\"\n"),
            vec!["Impact".to_string(), "answer \" Paris\"".to_string()]
        );
        assert!(title_lines("").is_empty());
        assert_eq!(clean_text("a\u{7}b"), "a\\u{7}b");
    }
}
