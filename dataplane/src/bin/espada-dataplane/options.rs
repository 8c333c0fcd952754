//! `espada-dataplane run` options. Hand-parsed: a handful of flags, each
//! error naming the flag and what it accepts.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use dataplane::worker::IdlePolicy;

pub const USAGE: &str = "\
usage: espada-dataplane run --inside IF[,IF...] --outside IF [options]
       espada-dataplane suites | --version

options of run:
  --inside IF[,IF...]   LAN interfaces (clear traffic)
  --outside IF          WAN interface (ESP, IKE)
  --cores LIST          worker cores, e.g. 0 or 0,1 (default: 0); worker i
                        serves queue i of every interface
  --socket PATH         control socket (default /run/espada/dataplane.sock)
  --idle busy|backoff   busy-poll (benchmarks) or sleep when idle (default
                        backoff)
  --max-sleep-us N      longest idle sleep with backoff (default 200)
  --frames N            UMEM frames per worker (default 8192)
  --ring N              AF_XDP ring size, a power of two (default 2048)
  --xdp-mode MODE       auto, native or generic (default auto)
  --zero-copy           ask for zero-copy AF_XDP (default: copy mode, which
                        veth and generic XDP need)";

/// How the XDP program is attached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum XdpMode {
    Auto,
    Native,
    Generic,
}

#[derive(Debug, Clone, PartialEq)]
pub struct RunOptions {
    pub inside: Vec<String>,
    pub outside: String,
    pub cores: Vec<usize>,
    pub socket: PathBuf,
    pub idle: IdlePolicy,
    pub frames: u32,
    pub ring: u32,
    pub xdp_mode: XdpMode,
    pub zero_copy: bool,
}

impl RunOptions {
    pub fn parse(args: &[String]) -> Result<RunOptions> {
        let mut inside = Vec::new();
        let mut outside = None;
        let mut cores = vec![0];
        let mut socket = PathBuf::from("/run/espada/dataplane.sock");
        let mut busy = false;
        let mut max_sleep_us = 200u64;
        let mut frames = 8192u32;
        let mut ring = 2048u32;
        let mut xdp_mode = XdpMode::Auto;
        let mut zero_copy = false;
        let mut it = args.iter();
        while let Some(flag) = it.next() {
            let mut value = || {
                it.next()
                    .with_context(|| format!("{flag} needs a value\n\n{USAGE}"))
            };
            match flag.as_str() {
                "--inside" => inside.extend(
                    value()?
                        .split(',')
                        .filter(|s| !s.is_empty())
                        .map(str::to_string),
                ),
                "--outside" => outside = Some(value()?.clone()),
                "--cores" => {
                    cores = value()?
                        .split(',')
                        .map(|c| {
                            c.parse::<usize>()
                                .with_context(|| format!("--cores: {c:?} is not a core number"))
                        })
                        .collect::<Result<_>>()?;
                }
                "--socket" => socket = PathBuf::from(value()?),
                "--idle" => {
                    busy = match value()?.as_str() {
                        "busy" => true,
                        "backoff" => false,
                        other => bail!("--idle: {other:?}: expected busy or backoff"),
                    }
                }
                "--max-sleep-us" => max_sleep_us = number(flag, value()?)?,
                "--frames" => frames = number(flag, value()?)?,
                "--ring" => ring = number(flag, value()?)?,
                "--xdp-mode" => {
                    xdp_mode = match value()?.as_str() {
                        "auto" => XdpMode::Auto,
                        "native" => XdpMode::Native,
                        "generic" => XdpMode::Generic,
                        other => bail!("--xdp-mode: {other:?}: expected auto, native or generic"),
                    }
                }
                "--zero-copy" => zero_copy = true,
                other => bail!("unknown option {other:?}\n\n{USAGE}"),
            }
        }
        let outside = outside.with_context(|| format!("--outside is required\n\n{USAGE}"))?;
        if inside.is_empty() {
            bail!("--inside is required\n\n{USAGE}");
        }
        if inside.contains(&outside) {
            bail!("{outside} is given as both inside and outside");
        }
        if cores.is_empty() {
            bail!("--cores: give at least one core");
        }
        let mut sorted = cores.clone();
        sorted.sort_unstable();
        sorted.dedup();
        if sorted.len() != cores.len() {
            bail!("--cores: a core is listed twice");
        }
        if !ring.is_power_of_two() || !(64..=65536).contains(&ring) {
            bail!("--ring {ring}: must be a power of two from 64 to 65536");
        }
        if frames < 2 * ring || frames > 1 << 20 {
            bail!("--frames {frames}: must be at least twice --ring ({ring}) and at most 1048576");
        }
        let idle = if busy {
            IdlePolicy::BusyPoll
        } else {
            IdlePolicy::Backoff {
                max_sleep: Duration::from_micros(max_sleep_us.max(1)),
            }
        };
        Ok(RunOptions {
            inside,
            outside,
            cores,
            socket,
            idle,
            frames,
            ring,
            xdp_mode,
            zero_copy,
        })
    }
}

fn number<T: std::str::FromStr>(flag: &str, v: &str) -> Result<T> {
    v.parse()
        .map_err(|_| anyhow::anyhow!("{flag}: {v:?} is not a number"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(str::to_string).collect()
    }

    #[test]
    fn a_full_command_line_parses() {
        let o = RunOptions::parse(&args(
            "--inside a-lan --outside a-wan --cores 0,1 --idle busy --socket /tmp/x.sock --ring 1024 --frames 4096 --xdp-mode generic",
        ))
        .unwrap();
        assert_eq!(o.inside, vec!["a-lan"]);
        assert_eq!(o.outside, "a-wan");
        assert_eq!(o.cores, vec![0, 1]);
        assert_eq!(o.idle, IdlePolicy::BusyPoll);
        assert_eq!(o.ring, 1024);
        assert_eq!(o.xdp_mode, XdpMode::Generic);
    }

    #[test]
    fn mistakes_are_named() {
        for (line, want) in [
            ("--inside a", "--outside is required"),
            ("--outside b", "--inside is required"),
            ("--inside a --outside a", "both inside and outside"),
            ("--inside a --outside b --cores x", "not a core number"),
            ("--inside a --outside b --cores 1,1", "listed twice"),
            ("--inside a --outside b --ring 1000", "power of two"),
            ("--inside a --outside b --frames 10", "at least twice"),
            (
                "--inside a --outside b --idle lazy",
                "expected busy or backoff",
            ),
            ("--inside a --outside b --bogus", "unknown option"),
            ("--inside", "needs a value"),
        ] {
            let err = RunOptions::parse(&args(line)).unwrap_err().to_string();
            assert!(err.contains(want), "{line}: {err}");
        }
    }
}
