//! A cursor over one command's tokens with the small parsers every command
//! family shares (keywords, numbers, addresses, end of line), each of which
//! turns a bad or missing token into a [`ConfigError`] that says what was
//! expected.
//!
//! Keywords match case-insensitively, as in IOS; names (ACLs, maps,
//! transform sets) are case-sensitive, as in IOS.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::ops::RangeInclusive;

use super::error::{ConfigError, ErrorKind, Span, Spanned};
use super::lexer::{Line, Token};

pub type PResult<T> = Result<T, ConfigError>;

/// The tokens of one command and how far parsing has got.
pub struct Cmd<'l, 'a> {
    pub line: &'l Line<'a>,
    pub pos: usize,
}

impl<'l, 'a> Cmd<'l, 'a> {
    pub fn new(line: &'l Line<'a>) -> Cmd<'l, 'a> {
        Cmd { line, pos: 0 }
    }

    pub fn peek(&self) -> Option<Token<'a>> {
        self.line.tokens.get(self.pos).copied()
    }

    /// The next token, lower-cased, for keyword tests.
    pub fn peek_kw(&self) -> Option<String> {
        self.peek().map(|t| t.text.to_ascii_lowercase())
    }

    pub fn at_end(&self) -> bool {
        self.pos >= self.line.tokens.len()
    }

    pub fn span_of(&self, t: &Token<'_>) -> Span {
        t.span(self.line.number)
    }

    /// Span of the token about to be read, or just past the line's end.
    pub fn here(&self) -> Span {
        match self.peek() {
            Some(t) => self.span_of(&t),
            None => self.line.end_span(),
        }
    }

    /// The span of the whole line's text.
    pub fn line_span(&self) -> Span {
        let first = self.line.tokens.first().map(|t| t.col).unwrap_or(1);
        let end = self.line.raw.trim_end().chars().count() as u32 + 1;
        Span::new(self.line.number, first, end.saturating_sub(first).max(1))
    }

    /// An error pointing at `t`.
    pub fn err_at(&self, t: &Token<'_>, kind: ErrorKind, msg: impl Into<String>) -> ConfigError {
        ConfigError {
            kind,
            span: self.span_of(t),
            token: if t.secret {
                "*".repeat(t.text.chars().count())
            } else {
                t.text.to_string()
            },
            message: msg.into(),
            source_line: self.line.redacted.clone(),
        }
    }

    /// An error pointing at the next token (or the end of the line).
    pub fn err_here(&self, kind: ErrorKind, msg: impl Into<String>) -> ConfigError {
        match self.peek() {
            Some(t) => self.err_at(&t, kind, msg),
            None => ConfigError {
                kind,
                span: self.line.end_span(),
                token: String::new(),
                message: msg.into(),
                source_line: self.line.redacted.clone(),
            },
        }
    }

    /// The next token, whatever it is; `what` names it in the error when
    /// the line ends early.
    pub fn word(&mut self, what: &str) -> PResult<Token<'a>> {
        match self.peek() {
            Some(t) => {
                self.pos += 1;
                Ok(t)
            }
            None => Err(self.err_here(ErrorKind::Syntax, format!("expected {what}"))),
        }
    }

    /// A name (ACL, map, transform set ...), case preserved.
    pub fn name(&mut self, what: &str) -> PResult<Spanned<String>> {
        let t = self.word(what)?;
        Ok(Spanned::new(t.text.to_string(), self.span_of(&t)))
    }

    /// Consumes the next token if it is keyword `kw`.
    pub fn eat(&mut self, kw: &str) -> bool {
        match self.peek() {
            Some(t) if t.text.eq_ignore_ascii_case(kw) => {
                self.pos += 1;
                true
            }
            _ => false,
        }
    }

    /// One of `options` (returned in its canonical lower-case spelling).
    pub fn keyword(&mut self, options: &[&'static str]) -> PResult<&'static str> {
        let found = self
            .peek()
            .and_then(|t| options.iter().find(|o| t.text.eq_ignore_ascii_case(o)));
        match found {
            Some(o) => {
                self.pos += 1;
                Ok(o)
            }
            None => Err(self.expected(options)),
        }
    }

    /// "expected one of a, b, c" at the next token.
    pub fn expected(&self, options: &[&str]) -> ConfigError {
        let list = one_of(options);
        match self.peek() {
            Some(t) => self.err_at(
                &t,
                ErrorKind::Syntax,
                format!("unexpected \"{}\"; expected {list}", t.text),
            ),
            None => self.err_here(ErrorKind::Syntax, format!("expected {list}")),
        }
    }

    /// A decimal number (or `0x` hex) in `range`.
    pub fn number(&mut self, what: &str, range: RangeInclusive<u64>) -> PResult<Spanned<u64>> {
        let t = self.word(what)?;
        let parsed = parse_number(t.text);
        match parsed {
            Some(n) if range.contains(&n) => Ok(Spanned::new(n, self.span_of(&t))),
            Some(_) => Err(self.err_at(
                &t,
                ErrorKind::InvalidValue,
                format!(
                    "{what} {} is out of range; expected {}..{}",
                    t.text,
                    range.start(),
                    range.end()
                ),
            )),
            None => Err(self.err_at(
                &t,
                ErrorKind::Syntax,
                format!("expected {what} (a number), found \"{}\"", t.text),
            )),
        }
    }

    pub fn u32_in(&mut self, what: &str, range: RangeInclusive<u32>) -> PResult<Spanned<u32>> {
        let n = self.number(what, u64::from(*range.start())..=u64::from(*range.end()))?;
        Ok(Spanned::new(n.value as u32, n.span))
    }

    pub fn ipv4(&mut self, what: &str) -> PResult<Spanned<Ipv4Addr>> {
        let t = self.word(what)?;
        match t.text.parse() {
            Ok(a) => Ok(Spanned::new(a, self.span_of(&t))),
            Err(_) => Err(self.err_at(
                &t,
                ErrorKind::Syntax,
                format!("expected {what} (an IPv4 address), found \"{}\"", t.text),
            )),
        }
    }

    pub fn ipv6(&mut self, what: &str) -> PResult<Spanned<Ipv6Addr>> {
        let t = self.word(what)?;
        match t.text.parse() {
            Ok(a) => Ok(Spanned::new(a, self.span_of(&t))),
            Err(_) => Err(self.err_at(
                &t,
                ErrorKind::Syntax,
                format!("expected {what} (an IPv6 address), found \"{}\"", t.text),
            )),
        }
    }

    pub fn ip(&mut self, what: &str) -> PResult<Spanned<IpAddr>> {
        let t = self.word(what)?;
        match t.text.parse() {
            Ok(a) => Ok(Spanned::new(a, self.span_of(&t))),
            Err(_) => Err(self.err_at(
                &t,
                ErrorKind::Syntax,
                format!("expected {what} (an IP address), found \"{}\"", t.text),
            )),
        }
    }

    /// An IPv4 subnet mask (`255.255.255.0`) as a prefix length.
    pub fn netmask(&mut self, what: &str) -> PResult<Spanned<u8>> {
        let m = self.ipv4(what)?;
        let bits = u32::from(m.value);
        if bits.leading_ones() + bits.trailing_zeros() != 32 {
            return Err(ConfigError {
                kind: ErrorKind::InvalidValue,
                span: m.span,
                token: m.value.to_string(),
                message: format!(
                    "{} is not a contiguous subnet mask (ones then zeros, like 255.255.255.0)",
                    m.value
                ),
                source_line: self.line.redacted.clone(),
            });
        }
        Ok(Spanned::new(bits.leading_ones() as u8, m.span))
    }

    /// Nothing may follow.
    pub fn end(&self) -> PResult<()> {
        match self.peek() {
            None => Ok(()),
            Some(t) => Err(self.err_at(
                &t,
                ErrorKind::Syntax,
                format!("unexpected \"{}\" at the end of the command", t.text),
            )),
        }
    }

    /// An error at `span` on this line.
    pub fn err_span(
        &self,
        span: Span,
        token: &str,
        kind: ErrorKind,
        msg: impl Into<String>,
    ) -> ConfigError {
        ConfigError {
            kind,
            span,
            token: token.to_string(),
            message: msg.into(),
            source_line: self.line.redacted.clone(),
        }
    }
}

/// Decimal, or hexadecimal with a `0x` prefix.
pub fn parse_number(s: &str) -> Option<u64> {
    match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(h) if !h.is_empty() => u64::from_str_radix(h, 16).ok(),
        Some(_) => None,
        None if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) => s.parse().ok(),
        None => None,
    }
}

/// `a`, `a or b`, `one of a, b, c`.
pub fn one_of(options: &[&str]) -> String {
    match options {
        [] => "nothing".into(),
        [a] => a.to_string(),
        [a, b] => format!("{a} or {b}"),
        _ => format!("one of {}", options.join(", ")),
    }
}
