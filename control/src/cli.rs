//! The `espada` command line: which subcommand to run, the `config check`
//! subcommand itself, and the config loading that `run` shares with it.
//!
//! A small hand-written parser: the command set is small and fixed, and it
//! keeps the binary free of a derive-macro dependency. `run` is
//! [`crate::daemon`]; `show` asks the running daemon over
//! [`crate::cliserver`].

use std::io::{self, Write};
use std::path::{Path, PathBuf};

use thiserror::Error;

use crate::config::{self, Compiled, ConfigAddresses, KernelInterfaces, LoadError};
use crate::daemon::DaemonOptions;

/// What the user asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// `espada --version`
    Version,
    /// `espada help`, `-h`, `--help`
    Help,
    /// `espada run -c FILE [--run-dir DIR] [--dataplane-args ARGS] [--once]`:
    /// start the control process with a config.
    Run {
        config: PathBuf,
        daemon: DaemonOptions,
    },
    /// `espada show|clear|debug|undebug WORDS... [--run-dir DIR]` (e.g.
    /// `show crypto ipsec sa`), the whole line sent to the daemon whose
    /// sockets are in `run_dir`.
    Exec { line: Vec<String>, run_dir: PathBuf },
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
       espada run -c FILE [--run-dir DIR] [--dataplane-args \"--cores 0,1 --idle busy\"] [--once]
                                   run the gateway with a configuration (starts
                                   espada-dataplane if none runs); --once: install
                                   and exit, leaving the dataplane running
       espada show crypto isakmp sa [detail]|crypto ipsec sa|crypto session|
                   dataplane|ip nat statistics|version [--run-dir DIR]
       espada clear crypto sa|crypto isakmp [--run-dir DIR]
       espada debug crypto isakmp|undebug all [--run-dir DIR]
                                   ask the running gateway
       espada --version

  --run-dir DIR   where the sockets live (default /run/espada): one per gateway";

/// Where `run` keeps its sockets unless `--run-dir` says otherwise.
pub const DEFAULT_RUN_DIR: &str = "/run/espada";

/// Parses the arguments after the program name.
pub fn parse_args<I>(args: I) -> Result<Command, UsageError>
where
    I: IntoIterator<Item = String>,
{
    let mut args: Vec<String> = args.into_iter().collect();
    if matches!(
        args.first().map(String::as_str),
        Some("run" | "show" | "clear" | "debug" | "undebug")
    ) {
        let run_dir = take_run_dir(&mut args)?;
        return match args[0].as_str() {
            "run" => parse_run(&args[1..], run_dir),
            verb if args.len() == 1 => Err(UsageError(format!(
                "{verb} needs what to {verb}, e.g. {verb} {}",
                match verb {
                    "show" => "crypto ipsec sa",
                    "clear" => "crypto sa",
                    "undebug" => "all",
                    _ => "crypto isakmp",
                }
            ))),
            _ => Ok(Command::Exec {
                line: args.to_vec(),
                run_dir,
            }),
        };
    }
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
        [other, ..] => Err(UsageError(format!("unknown command \"{other}\""))),
    }
}

/// Removes `--run-dir DIR` from anywhere in `args`.
fn take_run_dir(args: &mut Vec<String>) -> Result<PathBuf, UsageError> {
    let Some(i) = args.iter().position(|a| a == "--run-dir") else {
        return Ok(PathBuf::from(DEFAULT_RUN_DIR));
    };
    let Some(dir) = args.get(i + 1).cloned() else {
        return Err(UsageError("--run-dir needs a directory".into()));
    };
    args.drain(i..i + 2);
    Ok(PathBuf::from(dir))
}

/// The options of `run` (after the word `run`, `--run-dir` taken out).
fn parse_run(args: &[String], run_dir: PathBuf) -> Result<Command, UsageError> {
    let mut config = None;
    let mut dataplane_args = Vec::new();
    let mut once = false;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut value = |what: &str| {
            it.next()
                .ok_or_else(|| UsageError(format!("{a} needs {what}")))
        };
        match a.as_str() {
            "-c" | "--config" => config = Some(PathBuf::from(value("a file")?)),
            "--dataplane-args" => {
                dataplane_args.extend(value("a value")?.split_whitespace().map(str::to_string))
            }
            "--once" => once = true,
            other => return Err(UsageError(format!("unknown option \"{other}\" of run"))),
        }
    }
    let config = config.ok_or_else(|| UsageError("expected: espada run -c FILE".into()))?;
    Ok(Command::Run {
        config,
        daemon: DaemonOptions {
            run_dir,
            dataplane_args,
            once,
        },
    })
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
    let Some(c) = load_and_compile(file, kernel, err)? else {
        return Ok(false);
    };
    let mut ike = String::new();
    if !c.ikev1.maps.is_empty() {
        ike.push_str(&format!(
            ", {} IKEv1 map entries ({} ISAKMP policies, {} keys)",
            c.ikev1.maps.len(),
            c.ikev1.isakmp.len(),
            c.ikev1.keys.len()
        ));
    }
    if !c.ikev2.maps.is_empty() {
        ike.push_str(&format!(
            ", {} IKEv2 map entries ({} proposals, {} keyring peers)",
            c.ikev2.maps.len(),
            c.ikev2.proposals.len(),
            c.ikev2
                .profiles
                .iter()
                .map(|p| p.keyring.len())
                .sum::<usize>()
        ));
    }
    writeln!(
        out,
        "{shown}: OK, {} crypto map entries, {} SAs, {} ACL rules, {} NAT rules{ike}",
        c.entries.len(),
        c.sas.len(),
        c.spd.len(),
        c.nat.len()
    )?;
    for w in &c.warnings {
        writeln!(out, "{shown}: {w}\n")?;
    }
    Ok(true)
}

/// Loads, parses and compiles `file` as `config check` and `run` do:
/// interfaces resolve against this machine's kernel with `kernel`, else
/// against the config's own addresses. Errors, each with the file name,
/// and the warnings that came with them go to `err`; `None` then.
pub fn load_and_compile(
    file: &Path,
    kernel: bool,
    err: &mut dyn Write,
) -> io::Result<Option<Compiled>> {
    Ok(load_config_and_compile(file, kernel, err)?.map(|(_, c)| c))
}

/// As [`load_and_compile`], keeping the parsed config too: `espada run`
/// compiles it again when the kernel's addresses change.
pub fn load_config_and_compile(
    file: &Path,
    kernel: bool,
    err: &mut dyn Write,
) -> io::Result<Option<(config::Config, Compiled)>> {
    let shown = file.display();
    let cfg = match config::load(file) {
        Ok(cfg) => cfg,
        Err(LoadError::Invalid { errors, .. }) => {
            report_errors(&shown.to_string(), &errors, err)?;
            return Ok(None);
        }
        Err(e) => {
            writeln!(err, "error: {e}")?;
            return Ok(None);
        }
    };
    let compiled = if kernel {
        config::compile(&cfg, &KernelInterfaces::snapshot()?)
    } else {
        config::compile(&cfg, &ConfigAddresses(&cfg))
    };
    match compiled {
        Ok(c) => Ok(Some((cfg, c))),
        Err(errors) => {
            for w in &cfg.warnings {
                writeln!(err, "{shown}: {w}\n")?;
            }
            report_errors(&shown.to_string(), &errors, err)?;
            Ok(None)
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
                config: "gw.conf".into(),
                daemon: DaemonOptions {
                    run_dir: DEFAULT_RUN_DIR.into(),
                    dataplane_args: vec![],
                    once: false,
                }
            })
        );
        assert_eq!(
            args("show crypto ipsec sa"),
            Ok(Command::Exec {
                line: vec!["show".into(), "crypto".into(), "ipsec".into(), "sa".into()],
                run_dir: DEFAULT_RUN_DIR.into(),
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

    #[test]
    fn run_and_show_take_the_run_directory_anywhere_and_run_its_options() {
        let words = |v: &[&str]| parse_args(v.iter().map(|s| s.to_string()));
        assert_eq!(
            words(&[
                "run",
                "--run-dir",
                "/run/espada-x/gw_a",
                "-c",
                "gw.conf",
                "--dataplane-args",
                "--cores 0,1 --idle busy",
                "--once",
            ]),
            Ok(Command::Run {
                config: "gw.conf".into(),
                daemon: DaemonOptions {
                    run_dir: "/run/espada-x/gw_a".into(),
                    dataplane_args: ["--cores", "0,1", "--idle", "busy"]
                        .map(String::from)
                        .to_vec(),
                    once: true,
                }
            })
        );
        // As deploy/lib/gateways.sh asks: the run directory last.
        assert_eq!(
            args("show crypto ipsec sa --run-dir /run/espada-x/gw_b"),
            Ok(Command::Exec {
                line: vec!["show".into(), "crypto".into(), "ipsec".into(), "sa".into()],
                run_dir: "/run/espada-x/gw_b".into(),
            })
        );
        assert!(args("run -c gw.conf --frobnicate").is_err());
        assert!(args("run --run-dir").is_err());
        assert!(args("show --run-dir /tmp").is_err());
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
            format!("{name}: OK, 2 crypto map entries, 4 SAs, 2 ACL rules, 2 NAT rules\n")
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
