//! The `--flag value` walk every subcommand does over its arguments, so a
//! flag without its value reads the same everywhere and says where the
//! usage is.

use std::fmt::Display;
use std::str::FromStr;
use std::time::Duration;

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

    /// The argument after `flag` as seconds within `min..=max`, with the
    /// one-line error every subcommand gives for a bad duration.
    pub fn seconds(&mut self, flag: &str, min: f64, max: f64) -> Result<Duration> {
        let v = self.value(flag)?;
        let secs: f64 = v
            .parse()
            .map_err(|_| anyhow!("{flag} {v:?}: give seconds, {min} to {max}"))?;
        if !(min..=max).contains(&secs) {
            return Err(anyhow!("{flag} {secs}: give {min} to {max} seconds"));
        }
        Ok(Duration::from_secs_f64(secs))
    }

    /// The argument after `flag` as a `T`; a bad one reads "FLAG takes
    /// WHAT: why", the same for every subcommand.
    pub fn parsed<T>(&mut self, flag: &str, what: &str) -> Result<T>
    where
        T: FromStr,
        T::Err: Display,
    {
        let v = self.value(flag)?;
        v.parse().map_err(|e| anyhow!("{flag} takes {what}: {e}"))
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

    #[test]
    fn a_parsed_value_or_what_the_flag_takes() {
        let args: Vec<String> = ["--batch", "32", "--batch", "lots"]
            .map(String::from)
            .to_vec();
        let mut f = Flags::new(&args, "");
        f.next_flag();
        assert_eq!(f.parsed::<usize>("--batch", "packets").unwrap(), 32);
        f.next_flag();
        let e = f.parsed::<usize>("--batch", "packets").unwrap_err();
        assert_eq!(
            e.to_string(),
            "--batch takes packets: invalid digit found in string"
        );
    }

    #[test]
    fn seconds_are_bounded_and_a_bad_value_says_what_to_give() {
        let args: Vec<String> = ["--duration", "2.5", "--duration", "0", "--duration", "soon"]
            .map(String::from)
            .to_vec();
        let mut f = Flags::new(&args, "");
        f.next_flag();
        assert_eq!(
            f.seconds("--duration", 0.01, 600.0).unwrap(),
            Duration::from_millis(2500)
        );
        f.next_flag();
        let e = f
            .seconds("--duration", 0.01, 600.0)
            .unwrap_err()
            .to_string();
        assert_eq!(e, "--duration 0: give 0.01 to 600 seconds");
        f.next_flag();
        let e = f.seconds("--duration", 0.0, 60.0).unwrap_err().to_string();
        assert_eq!(e, "--duration \"soon\": give seconds, 0 to 60");
    }
}
