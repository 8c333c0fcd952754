//! The XDP steering program as `run` uses it: stale copies detached,
//! interfaces given their roles, the gateway's addresses loaded, attached
//! in the chosen mode, and detached again when this value is dropped.

use std::net::IpAddr;
use std::os::fd::RawFd;

use anyhow::{Context, Result};
use dataplane::io::xdp::{AttachMode, XdpSteer};
use dataplane::netlink::FibUpdate;

use crate::options::{RunOptions, XdpMode};
use crate::run::Port;

pub struct Steering {
    xdp: XdpSteer,
    ports: Vec<u32>,
    mode: String,
}

impl Steering {
    pub fn attach(o: &RunOptions, ports: &[Port], local: &[IpAddr]) -> Result<Steering> {
        let mut xdp = XdpSteer::load().context("loading the XDP program")?;
        for p in ports {
            let n = XdpSteer::detach_stale(p.ifindex)
                .with_context(|| format!("checking {} for a stale XDP program", p.name))?;
            if n > 0 {
                println!(
                    "{}: detached {n} XDP program(s) left by an earlier dataplane",
                    p.name
                );
            }
            xdp.set_interface(p.ifindex, p.role)
                .with_context(|| format!("configuring {} in the XDP maps", p.name))?;
        }
        for a in local {
            xdp.add_local(*a)
                .with_context(|| format!("adding local address {a}"))?;
        }
        let how = match o.xdp_mode {
            XdpMode::Auto => AttachMode::Auto,
            XdpMode::Native => AttachMode::Native,
            XdpMode::Generic => AttachMode::Generic,
        };
        let mut modes = Vec::new();
        for p in ports {
            let m = xdp
                .attach_with(p.ifindex, how)
                .with_context(|| format!("attaching XDP to {}", p.name))?;
            modes.push(format!("{}={m}", p.name));
        }
        Ok(Steering {
            xdp,
            ports: ports.iter().map(|p| p.ifindex).collect(),
            mode: modes.join(","),
        })
    }

    pub fn mode_name(&self) -> &str {
        &self.mode
    }

    pub fn register(&mut self, ifindex: u32, queue: u32, fd: RawFd) -> Result<()> {
        Ok(self.xdp.register_xsk(ifindex, queue, fd)?)
    }

    /// Keeps the program's idea of "addressed to the gateway" current.
    pub fn apply(&mut self, u: &FibUpdate) {
        let r = match u {
            FibUpdate::Addr { addr, .. } => self.xdp.add_local(*addr),
            FibUpdate::AddrGone { addr, .. } => self.xdp.remove_local(*addr).map(|_| ()),
            FibUpdate::Reset(s) => s.local.iter().try_for_each(|a| self.xdp.add_local(*a)),
            _ => Ok(()),
        };
        if let Err(err) = r {
            eprintln!("XDP maps: {err}");
        }
    }
}

impl Drop for Steering {
    fn drop(&mut self) {
        for &i in &self.ports {
            if let Err(e) = self.xdp.detach(i) {
                eprintln!("detaching XDP from ifindex {i}: {e}");
            }
        }
    }
}
