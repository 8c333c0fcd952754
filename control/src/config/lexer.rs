//! Splits config text into lines of whitespace-separated tokens, each with
//! its column, and redacts key material for every later display.
//!
//! IOS config is line oriented: one command per line, `!` lines are
//! comments (and `#` lines, as in the other Unix config files an operator
//! keeps beside this one), indentation marks sub-mode commands in `show running-config`
//! output (but IOS itself does not need it; see `parser`). Tokens carry
//! 1-based character columns so diagnostics can put a caret under them.

use zeroize::Zeroizing;

use super::error::Span;

/// One token of a line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Token<'a> {
    pub text: &'a str,
    /// 1-based character column of the first character.
    pub col: u32,
    /// Byte offset in the line, so a command can take "the rest of the
    /// line" verbatim (`description`).
    pub byte: usize,
    pub secret: bool,
}

impl Token<'_> {
    pub fn span(&self, line: u32) -> Span {
        Span::new(line, self.col, self.text.chars().count() as u32)
    }
}

/// One line of the file.
#[derive(Debug, Clone)]
pub struct Line<'a> {
    /// 1-based line number.
    pub number: u32,
    pub raw: &'a str,
    /// Leading whitespace, in characters.
    pub indent: u32,
    pub tokens: Vec<Token<'a>>,
    /// The line with every secret token replaced by `*`s of equal width:
    /// the only form of the line that diagnostics may show.
    pub redacted: String,
}

impl<'a> Line<'a> {
    /// A blank line or a `!` or `#` comment: nothing for the parser.
    pub fn is_empty_or_comment(&self) -> bool {
        self.tokens
            .first()
            .is_none_or(|t| t.text.starts_with('!') || t.text.starts_with('#'))
    }

    /// The tokens lower-cased, for matching keywords; key material is left
    /// out (empty strings) so no plain copy of a key outlives the line.
    pub fn keywords(&self) -> Vec<String> {
        self.tokens
            .iter()
            .map(|t| {
                if t.secret {
                    String::new()
                } else {
                    t.text.to_ascii_lowercase()
                }
            })
            .collect()
    }

    /// Whether the line holds key material (a session key, a pre-shared
    /// key, a password).
    pub fn has_secret(&self) -> bool {
        self.tokens.iter().any(|t| t.secret)
    }

    /// The raw text from token `i` to the end of the line, trimmed
    /// (`description` takes free text).
    pub fn rest_from(&self, i: usize) -> &'a str {
        match self.tokens.get(i) {
            Some(t) => self.raw[t.byte..].trim_end(),
            None => "",
        }
    }

    /// Span just past the last token: where a missing argument belongs.
    pub fn end_span(&self) -> Span {
        let col = self.raw.trim_end().chars().count() as u32 + 2;
        Span::new(self.number, col, 1)
    }
}

/// Splits `src` into lines and tokens.
pub fn lex(src: &str) -> Vec<Line<'_>> {
    src.split('\n')
        .enumerate()
        .map(|(i, raw)| lex_line(i as u32 + 1, raw.strip_suffix('\r').unwrap_or(raw)))
        .collect()
}

fn lex_line(number: u32, raw: &str) -> Line<'_> {
    let mut tokens = Vec::new();
    let mut start: Option<(usize, u32)> = None;
    let mut col = 0u32;
    for (byte, ch) in raw.char_indices() {
        col += 1;
        if ch.is_whitespace() {
            if let Some((b, c)) = start.take() {
                tokens.push(token(&raw[b..byte], c, b));
            }
        } else if start.is_none() {
            start = Some((byte, col));
        }
    }
    if let Some((b, c)) = start {
        tokens.push(token(&raw[b..], c, b));
    }
    let indent = raw.chars().take_while(|c| c.is_whitespace()).count() as u32;
    mark_secrets(&mut tokens);
    let redacted = redact(raw, &tokens);
    Line {
        number,
        raw,
        indent,
        tokens,
        redacted,
    }
}

fn token(text: &str, col: u32, byte: usize) -> Token<'_> {
    Token {
        text,
        col,
        byte,
        secret: false,
    }
}

/// Marks the tokens that are key material, from the command's shape alone
/// (the lexer runs before the parser, and even a line that fails to parse
/// must not leak its key into an error message).
fn mark_secrets(tokens: &mut [Token<'_>]) {
    // Zeroizing: these copies hold the keys too until the secrets are known.
    let words: Vec<Zeroizing<String>> = tokens
        .iter()
        .map(|t| Zeroizing::new(t.text.to_ascii_lowercase()))
        .collect();
    let w = |i: usize| words.get(i).map(|s| s.as_str()).unwrap_or("");
    let mut secret = vec![false; words.len()];
    for i in 0..words.len() {
        match w(i) {
            // set session-key ... cipher HEX authenticator HEX
            "cipher" | "authenticator" | "key-string" if i + 1 < words.len() => {
                secret[i + 1] = true;
            }
            // Everything after: pre-shared-key [local|remote] [0|6] KEY,
            // enable secret 5 HASH, username U password 0 PW.
            "pre-shared-key" | "password" | "secret" => {
                for (j, s) in secret.iter_mut().enumerate().skip(i + 1) {
                    if !matches!(w(j), "local" | "remote") {
                        *s = true;
                    }
                }
            }
            _ => {}
        }
    }
    // set session-key inbound|outbound ah SPI HEX
    if w(1) == "session-key" && w(3) == "ah" && words.len() > 5 {
        secret[5] = true;
    }
    // crypto isakmp key [0|6] KEY address|hostname ...
    if w(0) == "crypto" && w(1) == "isakmp" && w(2) == "key" {
        for (j, s) in secret.iter_mut().enumerate().skip(3) {
            if matches!(w(j), "address" | "hostname") {
                break;
            }
            *s = true;
        }
    }
    for (t, s) in tokens.iter_mut().zip(secret) {
        t.secret = s;
    }
}

fn redact(raw: &str, tokens: &[Token<'_>]) -> String {
    if !tokens.iter().any(|t| t.secret) {
        return raw.to_string();
    }
    let mut out = String::with_capacity(raw.len());
    let mut at = 0;
    for t in tokens.iter().filter(|t| t.secret) {
        out.push_str(&raw[at..t.byte]);
        out.extend(std::iter::repeat_n('*', t.text.chars().count()));
        at = t.byte + t.text.len();
    }
    out.push_str(&raw[at..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_carry_one_based_character_columns_and_indent() {
        let lines = lex(" set peer 198.18.1.1\r\n\n! comment\n  # another");
        let l = &lines[0];
        assert_eq!(l.indent, 1);
        let t: Vec<(&str, u32)> = l.tokens.iter().map(|t| (t.text, t.col)).collect();
        assert_eq!(t, [("set", 2), ("peer", 6), ("198.18.1.1", 11)]);
        assert!(lines[1].is_empty_or_comment());
        assert!(lines[2].is_empty_or_comment());
        assert_eq!(lines[2].number, 3);
        assert!(lines[3].is_empty_or_comment());
    }

    #[test]
    fn columns_count_characters_not_bytes() {
        let l = &lex("description 東京 uplink")[0];
        assert_eq!(l.tokens[2].col, 16);
        assert_eq!(l.rest_from(1), "東京 uplink");
    }

    #[test]
    fn session_keys_are_redacted_with_equal_width() {
        let src = " set session-key inbound esp 256 cipher 0011aabb authenticator ffee";
        let l = &lex(src)[0];
        assert!(l.has_secret());
        assert_eq!(
            l.redacted,
            " set session-key inbound esp 256 cipher ******** authenticator ****"
        );
        assert_eq!(l.redacted.chars().count(), src.chars().count());
    }

    #[test]
    fn pre_shared_keys_and_passwords_are_redacted() {
        let l = &lex("crypto isakmp key cisco123 address 0.0.0.0 0.0.0.0")[0];
        assert_eq!(
            l.redacted,
            "crypto isakmp key ******** address 0.0.0.0 0.0.0.0"
        );
        let l = &lex(" pre-shared-key local cisco")[0];
        assert_eq!(l.redacted, " pre-shared-key local *****");
        let l = &lex("enable password cisco")[0];
        assert_eq!(l.redacted, "enable password *****");
        assert!(!lex("crypto map M 10 ipsec-manual")[0].has_secret());
    }
}
