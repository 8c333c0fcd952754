//! Diagnostics: where in the file something is wrong, and how to say it.
//!
//! A network engineer reads these at the console, so they look like
//! compiler output: the position, a message that names what was expected,
//! the offending line and a caret under the offending token. Key material
//! never appears: the lines kept for diagnostics are already redacted by the
//! lexer (secret tokens become `*`s of the same width, so carets still line
//! up).

use std::fmt;

use thiserror::Error;

/// A place in the config text. Lines and columns count from 1; columns
/// count characters (Unicode scalar values), not bytes, so a caret lines up
/// under the token in a terminal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Span {
    pub line: u32,
    pub col: u32,
    /// Width in characters of what the span covers (at least 1 when shown).
    pub len: u32,
}

impl Span {
    pub const fn new(line: u32, col: u32, len: u32) -> Span {
        Span { line, col, len }
    }
}

/// A value from the config together with where it was written, so checks
/// made long after parsing (an undefined ACL, a key of the wrong length)
/// can still point at the token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Spanned<T> {
    pub value: T,
    pub span: Span,
}

impl<T> Spanned<T> {
    pub fn new(value: T, span: Span) -> Spanned<T> {
        Spanned { value, span }
    }
}

/// What kind of problem an error is, for callers and tests that branch on
/// it; the message says the rest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// A command no mode knows.
    UnknownCommand,
    /// A known command with a missing, extra or malformed argument.
    Syntax,
    /// A value of the right shape that is not acceptable (a non-contiguous
    /// wildcard, an SPI below 256, a key of the wrong length).
    InvalidValue,
    /// Valid IOS that Espada does not implement yet (IKE, `neq` ports, ...).
    NotSupportedYet,
    /// A name that refers to nothing (`match address 199` without ACL 199).
    Undefined,
    /// Something defined twice that must be unique (an inbound SPI).
    Duplicate,
    /// A required part is missing (`set peer` in a crypto map entry).
    Missing,
    /// The config asks for something this machine does not have (an
    /// interface unknown to the kernel, or one without an address).
    Environment,
}

/// One problem in a config file, with its position and the offending token.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub struct ConfigError {
    pub kind: ErrorKind,
    pub span: Span,
    /// The offending token as written (`""` when the problem is a missing
    /// token at the end of the line; `*`s when the token is a key).
    pub token: String,
    pub message: String,
    /// The offending line, redacted, for the caret display.
    pub source_line: String,
}

impl ConfigError {
    /// The line this error points at (1-based).
    pub fn line(&self) -> u32 {
        self.span.line
    }

    /// The column this error points at (1-based, in characters).
    pub fn col(&self) -> u32 {
        self.span.col
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "line {}, column {}: {}",
            self.span.line, self.span.col, self.message
        )?;
        render_source(f, self.span, &self.source_line)
    }
}

/// Something legal but worth a second look (DES, ignored commands, config
/// addresses the kernel disagrees with). Never stops a config from loading.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warning {
    pub span: Span,
    pub message: String,
    pub source_line: String,
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "warning: line {}, column {}: {}",
            self.span.line, self.span.col, self.message
        )?;
        render_source(f, self.span, &self.source_line)
    }
}

/// The `  12 | text` / `     |    ^^^` pair under a message.
fn render_source(f: &mut fmt::Formatter<'_>, span: Span, line: &str) -> fmt::Result {
    if span.line == 0 {
        return Ok(());
    }
    let num = span.line.to_string();
    let pad = " ".repeat(num.len());
    write!(f, "\n {num} | {line}\n {pad} | ")?;
    let lead: String = line
        .chars()
        .take(span.col.saturating_sub(1) as usize)
        .map(|c| if c == '\t' { '\t' } else { ' ' })
        .collect();
    write!(f, "{lead}{}", "^".repeat(span.len.max(1) as usize))
}

/// Renders a list of errors for the console, one block per error.
pub fn render_errors(errors: &[ConfigError]) -> String {
    let mut out = String::new();
    for e in errors {
        out.push_str("error: ");
        out.push_str(&e.to_string());
        out.push_str("\n\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_display_shows_position_line_and_caret_under_the_token() {
        let e = ConfigError {
            kind: ErrorKind::InvalidValue,
            span: Span::new(12, 31, 11),
            token: "esp-aes-256".into(),
            message: "unknown transform \"esp-aes-256\"".into(),
            source_line: "crypto ipsec transform-set T1 esp-aes-256 esp-sha-hmac".into(),
        };
        let s = e.to_string();
        let lines: Vec<&str> = s.lines().collect();
        assert_eq!(
            lines[0],
            "line 12, column 31: unknown transform \"esp-aes-256\""
        );
        assert_eq!(
            lines[1],
            " 12 | crypto ipsec transform-set T1 esp-aes-256 esp-sha-hmac"
        );
        let caret = lines[2].find('^').unwrap();
        let text = lines[1].find("esp-aes-256").unwrap();
        assert_eq!(caret, text);
        assert!(lines[2].ends_with("^^^^^^^^^^^"));
    }

    #[test]
    fn warning_display_is_prefixed() {
        let w = Warning {
            span: Span::new(3, 1, 4),
            message: "DES is insecure".into(),
            source_line: "crypto ipsec transform-set T esp-des esp-md5-hmac".into(),
        };
        assert!(w
            .to_string()
            .starts_with("warning: line 3, column 1: DES is insecure\n 3 | crypto"));
    }
}
