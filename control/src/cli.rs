//! The `espada` command line: which subcommand to run, and the
//! `config check` subcommand itself.
//!
//! A small hand-written parser: the command set is small and fixed, and it
//! keeps the binary free of a derive-macro dependency. `run` and `show`
//! are parsed already so their syntax is settled; their implementations
//! arrive with the daemon.

use std::io::{self, Write};
use std::path::{Path, PathBuf};

use thiserror::Error;

use crate::config::{self, ConfigAddresses, KernelInterfaces, LoadError};

/// What the user asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// `espada --version`
    Version,
    /// `espada help`, `-h`, `--help`
    Help,
    /// `espada run -c FILE`: start the control process with a config.
    Run { config: PathBuf },
    /// `espada show WORDS...` (e.g. `show crypto ipsec sa`), asked of a
    /// running daemon.
    Show { what: Vec<String> },
    /// `espada config check [--kernel] FILE`: parse and compile, start
    /// nothing. With `--kernel`, interfaces resolve against this machine's.
    ConfigCheck { file: PathBuf, kernel: bool },
}

/// A command line that does not parse; the message says what was expected.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{0}\n\n{USAGE}")]
pub struct UsageError(pub String);

pub const USAGE: &str = "\
usage: espada config check [--kernel] FILE
                                   validate a configuration, start nothing;
                                   --kernel: against this machine's interfaces
       espada run -c FILE          run the gateway with a configuration
       espada show WORDS...        ask the running gateway (show crypto ipsec sa, ...)
       espada --version";

/// Parses the arguments after the program name.
pub fn parse_args<I>(args: I) -> Result<Command, UsageError>
where
    I: IntoIterator<Item = String>,
{
    let args: Vec<String> = args.into_iter().collect();
    let words: Vec<&str> = args.iter().map(String::as_str).collect();
    match words.as_slice() {
        ["--version"] | ["-V"] | ["version"] => Ok(Command::Version),
        [] | ["help"] | ["-h"] | ["--help"] => Ok(Command::Help),
        ["config", "check", "--kernel", file] => Ok(Command::ConfigCheck {
            file: PathBuf::from(file),
            kernel: true,
        }),
        ["config", "check", file] if !file.starts_with('-') => Ok(Command::ConfigCheck {
            file: PathBuf::from(file),
            kernel: false,
        }),
        ["config", "check"] | ["config", "check", "--kernel"] => {
            Err(UsageError("config check needs a FILE".into()))
        }
        ["config", ..] => Err(UsageError("expected: espada config check FILE".into())),
        ["run", "-c" | "--config", file] => Ok(Command::Run {
            config: PathBuf::from(file),
        }),
        ["run", ..] => Err(UsageError("expected: espada run -c FILE".into())),
        ["show"] => Err(UsageError(
            "show needs what to show, e.g. show crypto ipsec sa".into(),
        )),
        ["show", rest @ ..] => Ok(Command::Show {
            what: rest.iter().map(|s| s.to_string()).collect(),
        }),
        [other, ..] => Err(UsageError(format!("unknown command \"{other}\""))),
    }
}

/// `espada config check FILE`: loads (permissions included), parses and
/// compiles `file`, resolving interfaces from the config's own addresses
/// (the check may run away from the gateway), or from this machine's
/// kernel with `kernel`. Prints the summary and warnings to `out`, errors
/// to `err`; returns whether the config is valid.
pub fn config_check(
    file: &Path,
    kernel: bool,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> io::Result<bool> {
    let shown = file.display();
    let cfg = match config::load(file) {
        Ok(cfg) => cfg,
        Err(LoadError::Invalid { errors, .. }) => {
            report_errors(&shown.to_string(), &errors, err)?;
            return Ok(false);
        }
        Err(e) => {
            writeln!(err, "error: {e}")?;
            return Ok(false);
        }
    };
    let compiled = if kernel {
        config::compile(&cfg, &KernelInterfaces::snapshot()?)
    } else {
        config::compile(&cfg, &ConfigAddresses(&cfg))
    };
    match compiled {
        Ok(c) => {
            let mut summary = format!(
                "{shown}: OK, {} crypto map entries, {} SAs, {} ACL rules",
                c.entries.len(),
                c.sas.len(),
                c.spd.len()
            );
            if !c.nat.is_empty() {
                summary.push_str(&format!(", {} NAT rules", c.nat.len()));
            }
            writeln!(out, "{summary}")?;
            for w in &c.warnings {
                writeln!(out, "{shown}: {w}\n")?;
            }
            Ok(true)
        }
        Err(errors) => {
            for w in &cfg.warnings {
                writeln!(err, "{shown}: {w}\n")?;
            }
            report_errors(&shown.to_string(), &errors, err)?;
            Ok(false)
        }
    }
}

fn report_errors(
    file: &str,
    errors: &[config::ConfigError],
    err: &mut dyn Write,
) -> io::Result<()> {
    for e in errors {
        writeln!(err, "{file}: error: {e}\n")?;
    }
    let n = errors.len();
    writeln!(err, "{file}: {n} error{}", if n == 1 { "" } else { "s" })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Result<Command, UsageError> {
        parse_args(s.split_whitespace().map(str::to_string))
    }

    #[test]
    fn subcommands_parse_to_their_variants() {
        assert_eq!(
            args("config check /etc/espada.conf"),
            Ok(Command::ConfigCheck {
                file: "/etc/espada.conf".into(),
                kernel: false
            })
        );
        assert_eq!(
            args("run -c gw.conf"),
            Ok(Command::Run {
                config: "gw.conf".into()
            })
        );
        assert_eq!(
            args("show crypto ipsec sa"),
            Ok(Command::Show {
                what: vec!["crypto".into(), "ipsec".into(), "sa".into()]
            })
        );
        assert_eq!(
            args("config check --kernel gw.conf"),
            Ok(Command::ConfigCheck {
                file: "gw.conf".into(),
                kernel: true
            })
        );
        assert_eq!(args("--version"), Ok(Command::Version));
        assert_eq!(args(""), Ok(Command::Help));
    }

    fn check(text: &str, mode: u32) -> (bool, String, String, String) {
        use std::io::Write as _;
        use std::os::unix::fs::PermissionsExt;
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(text.as_bytes()).unwrap();
        std::fs::set_permissions(f.path(), std::fs::Permissions::from_mode(mode)).unwrap();
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let ok = config_check(f.path(), false, &mut out, &mut err).unwrap();
        let name = f.path().display().to_string();
        (
            ok,
            String::from_utf8(out).unwrap(),
            String::from_utf8(err).unwrap(),
            name,
        )
    }

    #[test]
    fn config_check_prints_the_summary_of_a_valid_config() {
        let lab = include_str!("../../deploy/configs/lab-gw-a.conf");
        let (ok, out, err, name) = check(lab, 0o600);
        assert!(ok, "{err}");
        assert_eq!(
            out,
            format!("{name}: OK, 2 crypto map entries, 4 SAs, 2 ACL rules\n")
        );
    }

    #[test]
    fn config_check_prints_errors_with_the_file_name_and_fails() {
        let (ok, out, err, name) = check(
            "hostname gw\ncrypto ipsec transform-set T esp-aes-256 esp-sha-hmac\n",
            0o600,
        );
        assert!(!ok);
        assert!(out.is_empty());
        assert!(
            err.starts_with(&format!(
                "{name}: error: line 2, column 30: unknown transform"
            )),
            "{err}"
        );
        assert!(err.ends_with(&format!("{name}: 1 error\n")), "{err}");
        let (ok, _, err, _) = check(include_str!("../../deploy/configs/lab-gw-a.conf"), 0o644);
        assert!(!ok);
        assert!(err.contains("chmod 600"), "{err}");
    }

    #[test]
    fn bad_command_lines_say_what_was_expected() {
        let e = args("config check").unwrap_err();
        assert!(e.to_string().starts_with("config check needs a FILE"));
        assert!(args("frobnicate").unwrap_err().0.contains("frobnicate"));
        assert!(args("run gw.conf").is_err());
    }
}
