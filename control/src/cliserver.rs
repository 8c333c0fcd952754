//! The daemon's CLI socket: `espada show ...` connects, writes one command
//! line, and reads the rendered answer until the daemon closes the stream.
//! Text in, text out, so the daemon renders IOS screens from its own state
//! and the dataplane's live counters, and a script can use `socat` too.
//!
//! The socket is mode 0600 (the screens show peers and SPIs) and both ends
//! are local; a request is one line of at most [`MAX_REQUEST`] bytes.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Longest command line accepted.
pub const MAX_REQUEST: usize = 1024;

/// The daemon's listening CLI socket.
pub struct CliListener {
    listener: UnixListener,
    path: PathBuf,
    /// Inode of the socket file we bound, so Drop never removes a newer
    /// daemon's socket at the same path.
    ino: u64,
}

impl CliListener {
    /// Binds `path` (a stale socket file from a dead daemon is replaced;
    /// a live one is an error) and makes it 0600.
    pub fn bind(path: &Path) -> io::Result<CliListener> {
        if path.exists() {
            if UnixStream::connect(path).is_ok() {
                return Err(io::Error::new(
                    io::ErrorKind::AddrInUse,
                    format!("{} is in use: is espada already running?", path.display()),
                ));
            }
            std::fs::remove_file(path)?;
        }
        let listener = UnixListener::bind(path)?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
        listener.set_nonblocking(true)?;
        let ino = std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(path)?);
        Ok(CliListener {
            listener,
            path: path.to_owned(),
            ino,
        })
    }

    /// Serves every waiting client with `answer(command) -> text`; returns
    /// at once when nobody is waiting.
    pub fn serve_pending(&self, mut answer: impl FnMut(&str) -> String) {
        while let Ok((stream, _)) = self.listener.accept() {
            let _ = serve_one(stream, &mut answer);
        }
    }

    pub fn as_raw_fd(&self) -> i32 {
        use std::os::fd::AsRawFd;
        self.listener.as_raw_fd()
    }
}

impl Drop for CliListener {
    fn drop(&mut self) {
        let ours = std::fs::metadata(&self.path)
            .is_ok_and(|m| std::os::unix::fs::MetadataExt::ino(&m) == self.ino);
        if ours {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

fn serve_one(stream: UnixStream, answer: &mut impl FnMut(&str) -> String) -> io::Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(Duration::from_secs(2)))?;
    stream.set_write_timeout(Some(Duration::from_secs(5)))?;
    let mut line = String::new();
    BufReader::new((&stream).take(MAX_REQUEST as u64)).read_line(&mut line)?;
    let text = answer(line.trim());
    (&stream).write_all(text.as_bytes())
}

/// The client side: sends `command`, returns the daemon's answer.
pub fn ask(path: &Path, command: &str) -> io::Result<String> {
    let mut s = UnixStream::connect(path).map_err(|e| {
        io::Error::new(
            e.kind(),
            format!(
                "cannot reach the espada daemon at {}: {e} (is `espada run` running?)",
                path.display()
            ),
        )
    })?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    s.write_all(command.as_bytes())?;
    s.write_all(b"\n")?;
    s.shutdown(std::net::Shutdown::Write)?;
    let mut out = String::new();
    s.read_to_string(&mut out)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_command_gets_its_answer_and_the_socket_is_private() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cli.sock");
        let l = CliListener::bind(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let p2 = path.clone();
        let client = std::thread::spawn(move || ask(&p2, "show version").unwrap());
        let mut served = 0;
        for _ in 0..200 {
            l.serve_pending(|cmd| {
                served += 1;
                format!("you said: {cmd}\n")
            });
            if served > 0 {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        assert_eq!(client.join().unwrap(), "you said: show version\n");
        // A second daemon on the same socket is refused.
        assert!(CliListener::bind(&path).is_err());
        drop(l);
        assert!(!path.exists());
    }
}
