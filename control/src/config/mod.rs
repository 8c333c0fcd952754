//! The IOS crypto dialect: lexing into indented blocks, parsing each
//! command family into [`model::Config`], and compiling that into the SAs,
//! SPD and NAT rules the dataplane installs. Errors carry line and column;
//! unknown or unsupported commands are errors, never skipped. The
//! reference of every command is `docs/configuration.md`.

pub mod compile;
pub mod error;
pub mod lexer;
pub mod model;
pub mod parse;
pub mod resolver;

#[cfg(test)]
mod tests;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use thiserror::Error;

pub use compile::{compile, ConfigOnly, InterfaceResolver};
pub use error::{ConfigError, ConfigErrors, Warning};
pub use model::Config;
pub use parse::parse;

use crate::daemon::Deployment;

/// Why a config file could not be used.
#[derive(Debug, Error)]
pub enum LoadError {
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "{path} holds keys and is readable or writable by every user (mode {mode:o}): \
         run `chmod 600 {path}`"
    )]
    WorldAccessible { path: String, mode: u32 },
    #[error("{path}:\n{errors}")]
    Invalid { path: String, errors: ConfigErrors },
}

/// A config compiled and ready to install.
#[derive(Debug)]
pub struct Loaded {
    pub deployment: Deployment,
    pub warnings: Vec<Warning>,
    pub acl_rules: usize,
}

/// Whether a config has key material (session keys now, pre-shared keys
/// once IKE lands): such files must not be world-accessible.
fn has_keys(src: &str) -> bool {
    src.lines().any(|l| {
        let l = l.trim_start();
        l.starts_with("set session-key")
            || l.starts_with("crypto isakmp key")
            || l.contains("pre-shared-key")
    })
}

/// Reads, permission-checks, parses and compiles a config file.
pub fn load(path: &Path, resolver: &dyn InterfaceResolver) -> Result<Loaded, LoadError> {
    let shown = path.display().to_string();
    let io = |source| LoadError::Io {
        path: shown.clone(),
        source,
    };
    let src = std::fs::read_to_string(path).map_err(io)?;
    let mode = std::fs::metadata(path).map_err(io)?.permissions().mode();
    if has_keys(&src) && mode & 0o006 != 0 {
        return Err(LoadError::WorldAccessible {
            path: shown,
            mode: mode & 0o7777,
        });
    }
    check(&src, resolver).map_err(|errors| LoadError::Invalid {
        path: shown,
        errors,
    })
}

/// Parses and compiles config text.
pub fn check(src: &str, resolver: &dyn InterfaceResolver) -> Result<Loaded, ConfigErrors> {
    let with_source = |mut errors: Vec<ConfigError>| {
        let lines: Vec<&str> = src.lines().collect();
        for e in &mut errors {
            if e.source_line.is_empty() && e.line > 0 {
                e.source_line = lines.get(e.line - 1).unwrap_or(&"").to_string();
            }
        }
        errors.sort_by_key(|e| (e.line, e.column));
        ConfigErrors(errors)
    };
    let (cfg, mut warnings) = parse(src).map_err(with_source)?;
    let (deployment, w2) = compile(&cfg, resolver).map_err(with_source)?;
    warnings.extend(w2);
    warnings.sort_by_key(|w| w.line);
    let acl_rules = cfg.acls.iter().map(|a| a.entries.len()).sum();
    Ok(Loaded {
        deployment,
        warnings,
        acl_rules,
    })
}
