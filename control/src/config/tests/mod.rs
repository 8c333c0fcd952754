//! Cross-family tests of the config parser and compiler.
