//! Reading a config file: permissions first, then the parse.
//!
//! A config with keys (`set session-key`, pre-shared keys, passwords) must
//! be readable by its owner only: anyone who can read it can decrypt the
//! tunnel's traffic. A world-writable config is refused whatever it holds:
//! anyone could rewrite the policy. The text is held in a zeroizing buffer
//! so the keys do not linger in freed memory after parsing.

use std::fs::File;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use thiserror::Error;
use zeroize::Zeroizing;

use super::error::ConfigError;
use super::model::Config;
use super::parser::parse;

/// Why a config file could not be loaded.
#[derive(Debug, Error)]
pub enum LoadError {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "{}: refusing a world-writable config file (mode {mode:03o}): anyone could rewrite its \
         policy and keys; run: chmod 600 {}",
        path.display(),
        path.display()
    )]
    WorldWritable { path: PathBuf, mode: u32 },
    #[error(
        "{}: refusing a config file that holds keys and is readable by every user (mode \
         {mode:03o}); run: chmod 600 {}",
        path.display(),
        path.display()
    )]
    WorldReadable { path: PathBuf, mode: u32 },
    #[error("{}: {} error(s) in the configuration", path.display(), errors.len())]
    Invalid {
        path: PathBuf,
        errors: Vec<ConfigError>,
    },
}

/// Reads and parses the config at `path`, refusing unsafe permissions.
pub fn load(path: &Path) -> Result<Config, LoadError> {
    let io = |source| LoadError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut file = File::open(path).map_err(io)?;
    // Permissions of the file actually opened, not of whatever the path
    // names a moment later.
    let mode = file.metadata().map_err(io)?.permissions().mode() & 0o7777;
    if mode & 0o002 != 0 {
        return Err(LoadError::WorldWritable {
            path: path.to_path_buf(),
            mode,
        });
    }
    let mut text = Zeroizing::new(String::new());
    file.read_to_string(&mut text).map_err(io)?;
    let cfg = parse(&text).map_err(|errors| LoadError::Invalid {
        path: path.to_path_buf(),
        errors,
    })?;
    if cfg.has_secrets && mode & 0o004 != 0 {
        return Err(LoadError::WorldReadable {
            path: path.to_path_buf(),
            mode,
        });
    }
    Ok(cfg)
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    fn file_with(text: &str, mode: u32) -> tempfile::NamedTempFile {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(text.as_bytes()).unwrap();
        std::fs::set_permissions(f.path(), std::fs::Permissions::from_mode(mode)).unwrap();
        f
    }

    const WITH_KEY: &str = "crypto map M 10 ipsec-manual\n set session-key inbound esp 256 cipher 00112233445566778899aabbccddeeff authenticator 00112233445566778899aabbccddeeff00112233\n";

    #[test]
    fn a_world_readable_file_with_keys_is_refused_with_the_chmod_to_run() {
        let f = file_with(WITH_KEY, 0o644);
        let e = load(f.path()).unwrap_err();
        assert!(matches!(e, LoadError::WorldReadable { mode: 0o644, .. }));
        let msg = e.to_string();
        assert!(
            msg.contains(&format!("chmod 600 {}", f.path().display())),
            "{msg}"
        );
        assert!(!msg.contains("00112233"), "{msg}");
    }

    #[test]
    fn a_world_writable_file_is_refused_even_without_keys() {
        let f = file_with("hostname gw\n", 0o666);
        assert!(matches!(
            load(f.path()),
            Err(LoadError::WorldWritable { .. })
        ));
    }

    #[test]
    fn an_owner_only_file_with_keys_loads_and_a_readable_one_without_keys_too() {
        let f = file_with(WITH_KEY, 0o600);
        let cfg = load(f.path()).unwrap();
        assert!(cfg.has_secrets);
        let f = file_with("hostname gw\n", 0o644);
        assert!(!load(f.path()).unwrap().has_secrets);
    }

    #[test]
    fn a_missing_file_is_an_io_error_naming_the_path() {
        let e = load(Path::new("/nonexistent/espada.conf")).unwrap_err();
        assert!(e.to_string().starts_with("/nonexistent/espada.conf: "));
    }
}
