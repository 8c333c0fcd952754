//! Tests across the config's command families: parsing per family,
//! diagnostics (line, column, caret, redaction), compilation to exact
//! dataplane tables, the seeds' configs, and a property test that no input
//! makes the parser panic.

mod compile;
mod errors;
mod fuzz;
mod ikev2;
mod parse;
mod seeds;

use super::{parse, Config, ConfigError};

/// Parses `src`, failing the test with the rendered errors if it does not.
pub fn parse_ok(src: &str) -> Config {
    match parse(src) {
        Ok(c) => c,
        Err(e) => panic!("config did not parse:\n{}", super::render_errors(&e)),
    }
}

/// The errors `src` gives; fails the test if it parses.
pub fn parse_errs(src: &str) -> Vec<ConfigError> {
    match parse(src) {
        Ok(_) => panic!("config parsed but errors were expected:\n{src}"),
        Err(e) => e,
    }
}
