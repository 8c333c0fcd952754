//! The `--flag value` walk every subcommand does over its arguments, so a
//! flag without its value reads the same everywhere and says where the
//! usage is.

use anyhow::{anyhow, Result};

/// A subcommand's arguments, taken one flag (and its value) at a time.
pub struct Flags<'a> {
    args: std::slice::Iter<'a, String>,
    /// What follows "--x needs a value": the usage text or where it is.
    hint: String,
}

impl<'a> Flags<'a> {
    pub fn new(args: &'a [String], hint: impl Into<String>) -> Flags<'a> {
        Flags {
            args: args.iter(),
            hint: hint.into(),
        }
    }

    /// The next flag, or None when the arguments are done.
    pub fn next_flag(&mut self) -> Option<&'a str> {
        self.args.next().map(String::as_str)
    }

    /// The argument after `flag`: its value.
    pub fn value(&mut self, flag: &str) -> Result<String> {
        self.args
            .next()
            .cloned()
            .ok_or_else(|| anyhow!("{flag} needs a value{}", self.hint))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_and_values_in_order_and_a_missing_value_names_its_flag() {
        let args: Vec<String> = ["--rate", "max", "--quick", "--size"]
            .map(String::from)
            .to_vec();
        let mut f = Flags::new(&args, "\nusage: x");
        assert_eq!(f.next_flag(), Some("--rate"));
        assert_eq!(f.value("--rate").unwrap(), "max");
        assert_eq!(f.next_flag(), Some("--quick"));
        assert_eq!(f.next_flag(), Some("--size"));
        let e = f.value("--size").unwrap_err().to_string();
        assert_eq!(e, "--size needs a value\nusage: x");
        assert_eq!(f.next_flag(), None);
    }
}
