//! Config errors that point at the line and column, compiler style.

use std::fmt;

/// One problem in a config file. Displayed as
/// `line 12, column 30: unknown transform "esp-aes-256"` followed by the
/// source line and a caret under the offending word.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub line: usize,
    pub column: usize,
    pub message: String,
    /// The source line, for the caret display (empty when not known).
    pub source_line: String,
    /// Length of the offending word, for the caret display.
    pub width: usize,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "line {}, column {}: {}",
            self.line, self.column, self.message
        )?;
        if !self.source_line.is_empty() {
            write!(
                f,
                "\n  {}\n  {}{}",
                self.source_line,
                " ".repeat(self.column.saturating_sub(1)),
                "^".repeat(self.width.max(1))
            )?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigError {}

/// Not an error, but something an operator should hear about (DES, NULL
/// encryption, an `ip route` the kernel already decides).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warning {
    pub line: usize,
    pub message: String,
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: warning: {}", self.line, self.message)
    }
}

/// A list of errors, shown one after the other.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}
