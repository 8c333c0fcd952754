//! The XDP steering program and its loader: which received frames go to the
//! dataplane's AF_XDP sockets and which to the kernel.
//!
//! The program (`ebpf/xdp_steer.c`, compiled by `build.rs` and embedded)
//! runs first on every frame of an Espada interface. On the outside it
//! hands ESP and UDP-encapsulated ESP (RFC 3948) addressed to the gateway to
//! AF_XDP and passes everything else (ARP, ND, IKE, NAT-keepalives, other
//! traffic to the gateway, transit) to the kernel; on the inside it passes
//! ARP, ND, traffic to the gateway and broadcast, multicast and link-local
//! destinations, and hands every other IPv4/IPv6 packet to AF_XDP.
//! `ebpf/README.md` lists the rules in full.
//!
//! The rules are data in BPF maps that [`XdpSteer`] fills: the role of each
//! interface, the gateway's own addresses, and the AF_XDP sockets. One
//! program is loaded once and attached to every interface, so all
//! interfaces share the maps. The XSKMAP is indexed by
//! `slot * MAX_QUEUES + rx queue` ([`xsk_index`]): each configured
//! interface gets its own slot, so queue 0 of the LAN and queue 0 of the
//! WAN name different sockets.
//!
//! Attachment uses a BPF link where the kernel has them (5.9+): when the
//! dataplane dies, however it dies, the kernel closes the link and the
//! interface falls back to plain kernel networking. [`XdpSteer::detach_stale`]
//! covers what survives a process: a program attached through netlink (by
//! an older kernel path or `ip link set xdp`), or a link still held by a
//! stuck earlier instance.

mod sys;

use std::ffi::CString;
use std::fmt;
use std::io;
use std::net::IpAddr;
use std::ops::RangeInclusive;
use std::os::fd::{AsFd, AsRawFd};

use aya::maps::{HashMap as BpfHashMap, Map, MapData, MapError, PerCpuArray, XskMap};
use aya::programs::xdp::XdpLinkId;
use aya::programs::{ProgramError, Xdp, XdpFlags};
use aya::{Ebpf, EbpfError, Pod};
use thiserror::Error;

use crate::route::PortRole;

/// The compiled program, aligned for the ELF parser.
static OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/xdp_steer.o"));

/// The program's name in the kernel: how [`XdpSteer::detach_stale`] tells
/// our program from someone else's.
pub const PROGRAM_NAME: &str = "xdp_steer";
/// Interfaces one loaded program can steer for (`STEER_MAX_SLOTS`).
pub const MAX_SLOTS: u32 = 16;
/// Rx queues per interface the XSKMAP has room for (`STEER_MAX_QUEUES`).
pub const MAX_QUEUES: u32 = 64;

const MAP_XSKS: &str = "steer_xsks";
const MAP_IFACES: &str = "steer_ifaces";
const MAP_LOCALS: &str = "steer_locals";
const MAP_COUNTERS: &str = "steer_counters";

const ROLE_INSIDE: u8 = 1;
const ROLE_OUTSIDE: u8 = 2;
const ROLE_CAPTURE: u8 = 3;
const F_ESP: u8 = 0x01;
const F_NATT: u8 = 0x02;

/// The embedded ELF object, for looking at it with the usual tools
/// (`llvm-objdump -S`, `bpftool prog load`) or loading it some other way
/// (`ip link set dev X xdp obj FILE sec xdp`, as the crash-recovery test
/// does to play an older dataplane).
pub fn object_bytes() -> &'static [u8] {
    OBJECT
}

/// The XSKMAP index of the socket for `queue` of the interface in `slot`.
pub fn xsk_index(slot: u32, queue: u32) -> u32 {
    slot * MAX_QUEUES + queue
}

/// `struct steer_iface`: one interface's entry in `steer_ifaces`.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct IfaceConfig {
    slot: u32,
    role: u8,
    flags: u8,
    pad: u16,
    /// PAT port range (inclusive); `pat_lo == 0`: no PAT.
    pat_lo: u16,
    pat_hi: u16,
}

// SAFETY: plain integers laid out without padding (4 + 1 + 1 + 2 + 2 + 2 bytes);
// every bit pattern is a valid value.
unsafe impl Pod for IfaceConfig {}

/// How a program ended up attached: in the driver (native XDP, before any
/// socket buffer exists) or after the kernel built one (generic/SKB mode,
/// slower, but every device has it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum XdpMode {
    Native,
    Generic,
}

impl XdpMode {
    fn flags(self) -> XdpFlags {
        match self {
            XdpMode::Native => XdpFlags::DRV_MODE,
            XdpMode::Generic => XdpFlags::SKB_MODE,
        }
    }
}

impl fmt::Display for XdpMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            XdpMode::Native => "native",
            XdpMode::Generic => "generic",
        })
    }
}

/// Which mode to attach in: `Auto` tries native first and falls back to
/// generic, so the fast path is used wherever the driver has it; the
/// others force one mode (for a driver whose native XDP misbehaves, or to
/// test).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AttachMode {
    #[default]
    Auto,
    Native,
    Generic,
}

/// Which ESP encapsulations an outside interface hands to the dataplane.
/// Both are on by default; `udp_encapsulated: false` is IOS's `no crypto
/// ipsec nat-transparency udp-encapsulation`, where UDP/4500 belongs to the
/// kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EspSteering {
    /// ESP, IP protocol 50.
    pub esp: bool,
    /// ESP in UDP on port 4500 (RFC 3948).
    pub udp_encapsulated: bool,
}

impl Default for EspSteering {
    fn default() -> EspSteering {
        EspSteering {
            esp: true,
            udp_encapsulated: true,
        }
    }
}

/// The program's rules, in the order of its counters (`enum steer_rule`).
/// Each frame is counted under exactly the rule that decided it, plus
/// [`SteerRule::NoSocket`] or [`SteerRule::BadQueue`] when a redirect
/// could not happen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum SteerRule {
    /// The interface has no entry in the config map: passed.
    Unconfigured = 0,
    /// Truncated or invalid headers: passed, the kernel drops and counts them.
    Malformed,
    /// Neither IPv4, IPv6 nor ARP: passed.
    OtherEthertype,
    Arp,
    /// ICMPv6 types 133–137 (RFC 4861): passed.
    NeighbourDiscovery,
    /// To a gateway address and not ESP or IKE (SSH, ping, ...): passed.
    Local,
    /// UDP 500, or UDP 4500 with the non-ESP marker: passed to the IKE daemon.
    Ike,
    /// UDP 4500 with the single byte 0xff (RFC 3948 §2.3): passed.
    NattKeepalive,
    /// Outside, not addressed to the gateway: passed (the dataplane only
    /// terminates ESP there).
    Transit,
    /// Inside, to a broadcast, multicast or link-local address: passed.
    LinkScope,
    /// A fragment of a non-ESP datagram to the gateway: passed, so the
    /// kernel reassembles all its pieces.
    LocalFragment,
    /// Outside, ESP to the gateway (fragments included): to AF_XDP.
    Esp,
    /// Outside, UDP-encapsulated ESP to the gateway: to AF_XDP.
    NattEsp,
    /// Inside, to be forwarded: to AF_XDP.
    Inside,
    /// Outside, IPv4 return traffic of a PAT translation (TCP/UDP to a port
    /// of the range, echo reply or ICMP error naming one): to AF_XDP.
    Pat,
    /// A redirect rule matched but the XSKMAP had no socket for the
    /// interface's slot and queue: passed.
    NoSocket,
    /// A redirect rule matched on a queue or slot beyond the XSKMAP: passed.
    BadQueue,
    /// Outside, not addressed to the gateway, an unfragmented UDP datagram
    /// to port 500 carrying an IKEv1 header: a Tunnel Endpoint Discovery
    /// probe for a host behind us, to AF_XDP (the dataplane hands it to the
    /// control process). Last so the other rules keep their numbers.
    Ted,
    /// A capture interface ([`XdpSteer::set_capture`], `espada-bench
    /// sink`): TCP, UDP or ESP to a unicast MAC, to AF_XDP.
    Capture,
    /// Outside, to the gateway: ICMP fragmentation needed or ICMPv6
    /// packet too big about ESP (or NAT-T ESP) the gateway sent, to
    /// AF_XDP for path MTU discovery.
    Pmtu,
}

impl SteerRule {
    pub const COUNT: usize = 20;
    pub const ALL: [SteerRule; SteerRule::COUNT] = [
        SteerRule::Unconfigured,
        SteerRule::Malformed,
        SteerRule::OtherEthertype,
        SteerRule::Arp,
        SteerRule::NeighbourDiscovery,
        SteerRule::Local,
        SteerRule::Ike,
        SteerRule::NattKeepalive,
        SteerRule::Transit,
        SteerRule::LinkScope,
        SteerRule::LocalFragment,
        SteerRule::Esp,
        SteerRule::NattEsp,
        SteerRule::Inside,
        SteerRule::Pat,
        SteerRule::NoSocket,
        SteerRule::BadQueue,
        SteerRule::Ted,
        SteerRule::Capture,
        SteerRule::Pmtu,
    ];

    /// The counter's name for operators.
    pub fn name(self) -> &'static str {
        match self {
            SteerRule::Unconfigured => "pass-unconfigured",
            SteerRule::Malformed => "pass-malformed",
            SteerRule::OtherEthertype => "pass-other-ethertype",
            SteerRule::Arp => "pass-arp",
            SteerRule::NeighbourDiscovery => "pass-nd",
            SteerRule::Local => "pass-local",
            SteerRule::Ike => "pass-ike",
            SteerRule::NattKeepalive => "pass-natt-keepalive",
            SteerRule::Transit => "pass-transit",
            SteerRule::LinkScope => "pass-link-scope",
            SteerRule::LocalFragment => "pass-local-fragment",
            SteerRule::Esp => "xsk-esp",
            SteerRule::NattEsp => "xsk-natt-esp",
            SteerRule::Inside => "xsk-inside",
            SteerRule::Pat => "xsk-pat",
            SteerRule::NoSocket => "pass-no-socket",
            SteerRule::BadQueue => "pass-bad-queue",
            SteerRule::Ted => "xsk-ted",
            SteerRule::Capture => "xsk-capture",
            SteerRule::Pmtu => "xsk-pmtu",
        }
    }

    /// Whether frames matching the rule are meant for the dataplane.
    pub fn redirects(self) -> bool {
        matches!(
            self,
            SteerRule::Esp
                | SteerRule::NattEsp
                | SteerRule::Inside
                | SteerRule::Pat
                | SteerRule::Ted
                | SteerRule::Capture
                | SteerRule::Pmtu
        )
    }
}

/// Hits per rule, summed over CPUs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SteerCounters([u64; SteerRule::COUNT]);

impl SteerCounters {
    pub fn get(&self, rule: SteerRule) -> u64 {
        self.0[rule as usize]
    }

    /// Every rule with its count, in counter order.
    pub fn iter(&self) -> impl Iterator<Item = (SteerRule, u64)> + '_ {
        SteerRule::ALL.iter().map(|&r| (r, self.get(r)))
    }
}

/// What an XDP program returned (`enum xdp_action`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum XdpAction {
    Aborted,
    Drop,
    Pass,
    Tx,
    Redirect,
    Other(u32),
}

impl From<u32> for XdpAction {
    fn from(v: u32) -> XdpAction {
        match v {
            0 => XdpAction::Aborted,
            1 => XdpAction::Drop,
            2 => XdpAction::Pass,
            3 => XdpAction::Tx,
            4 => XdpAction::Redirect,
            other => XdpAction::Other(other),
        }
    }
}

/// Why the steering program could not be loaded, attached or configured.
#[derive(Debug, Error)]
pub enum XdpError {
    #[error("loading the XDP object: {0}")]
    Load(#[source] Box<EbpfError>),
    #[error("the embedded XDP object does not match this loader: {0}")]
    Mismatch(&'static str),
    #[error("XDP program {what}: {source}")]
    Program {
        what: &'static str,
        #[source]
        source: Box<ProgramError>,
    },
    #[error("attaching XDP to interface {ifindex} in {mode} mode: {source}")]
    Attach {
        ifindex: u32,
        mode: XdpMode,
        #[source]
        source: Box<ProgramError>,
    },
    #[error("the steering program is already attached to interface {0}")]
    AlreadyAttached(u32),
    #[error("unknown network interface {0:?}")]
    UnknownInterface(String),
    #[error("BPF map {map}: {source}")]
    Map {
        map: &'static str,
        #[source]
        source: Box<MapError>,
    },
    #[error("interface {0} has no steering role: set_interface first")]
    NotConfigured(u32),
    #[error("all {MAX_SLOTS} interface slots are in use")]
    NoFreeSlot,
    #[error("PAT port range {0}-{1}: must be non-empty, above 0 and leave out 500 and 4500")]
    PatRange(u16, u16),
    #[error("rx queue {0} is beyond the {MAX_QUEUES} queues per interface the XSKMAP holds")]
    QueueOutOfRange(u32),
    #[error("{what}: {source}")]
    Os {
        what: &'static str,
        #[source]
        source: io::Error,
    },
}

fn map_err(map: &'static str) -> impl FnOnce(MapError) -> XdpError {
    move |e| XdpError::Map {
        map,
        source: Box::new(e),
    }
}

fn prog_err(what: &'static str) -> impl FnOnce(ProgramError) -> XdpError {
    move |e| XdpError::Program {
        what,
        source: Box::new(e),
    }
}

fn os_err(what: &'static str) -> impl FnOnce(io::Error) -> XdpError {
    move |source| XdpError::Os { what, source }
}

/// The kernel refused an attachment because another XDP program (or link)
/// already holds the interface.
fn is_conflict(e: &ProgramError) -> bool {
    match e {
        ProgramError::SyscallError(s) => matches!(
            s.io_error.raw_os_error(),
            Some(libc::EBUSY) | Some(libc::EEXIST)
        ),
        _ => false,
    }
}

/// An absent key: aya reports it as `KeyNotFound` or as the raw ENOENT.
fn is_not_found(e: &MapError) -> bool {
    match e {
        MapError::KeyNotFound => true,
        MapError::SyscallError(s) => s.io_error.raw_os_error() == Some(libc::ENOENT),
        _ => false,
    }
}

fn addr_key(addr: IpAddr) -> [u8; 16] {
    match addr {
        IpAddr::V4(a) => a.to_ipv6_mapped().octets(),
        IpAddr::V6(a) => a.octets(),
    }
}

/// One interface the program is attached to.
struct Attachment {
    ifindex: u32,
    mode: XdpMode,
    link: XdpLinkId,
}

/// The loaded steering program, its maps and its attachments. Dropping it
/// detaches the program from every interface (the kernel would do the same
/// when the process exits, since the links die with their fds).
pub struct XdpSteer {
    ebpf: Ebpf,
    /// Which interface owns each XSKMAP slot.
    slots: [Option<u32>; MAX_SLOTS as usize],
    attached: Vec<Attachment>,
}

impl XdpSteer {
    /// Loads the embedded program through the verifier and creates its
    /// (empty) maps. Nothing is attached yet, and an interface missing
    /// from the config map would pass everything anyway.
    pub fn load() -> Result<XdpSteer, XdpError> {
        let mut ebpf = Ebpf::load(OBJECT).map_err(|e| XdpError::Load(Box::new(e)))?;
        let prog: &mut Xdp = ebpf
            .program_mut(PROGRAM_NAME)
            .ok_or(XdpError::Mismatch("no program xdp_steer"))?
            .try_into()
            .map_err(prog_err("has the wrong type"))?;
        prog.load().map_err(prog_err("was rejected"))?;
        let steer = XdpSteer {
            ebpf,
            slots: [None; MAX_SLOTS as usize],
            attached: Vec::new(),
        };
        steer.check_layout()?;
        Ok(steer)
    }

    /// The constants the loader shares with the C program must agree with
    /// the map sizes compiled into it.
    fn check_layout(&self) -> Result<(), XdpError> {
        let xsks: XskMap<&MapData> =
            XskMap::try_from(self.map(MAP_XSKS)?).map_err(map_err(MAP_XSKS))?;
        if xsks.len() != MAX_SLOTS * MAX_QUEUES {
            return Err(XdpError::Mismatch("XSKMAP size"));
        }
        let counters: PerCpuArray<&MapData, u64> =
            PerCpuArray::try_from(self.map(MAP_COUNTERS)?).map_err(map_err(MAP_COUNTERS))?;
        if counters.len() as usize != SteerRule::COUNT {
            return Err(XdpError::Mismatch("number of counters"));
        }
        let _: BpfHashMap<&MapData, u32, IfaceConfig> =
            BpfHashMap::try_from(self.map(MAP_IFACES)?).map_err(map_err(MAP_IFACES))?;
        let _: BpfHashMap<&MapData, [u8; 16], u8> =
            BpfHashMap::try_from(self.map(MAP_LOCALS)?).map_err(map_err(MAP_LOCALS))?;
        Ok(())
    }

    fn map(&self, name: &'static str) -> Result<&Map, XdpError> {
        self.ebpf.map(name).ok_or(XdpError::Mismatch(name))
    }

    fn map_mut(&mut self, name: &'static str) -> Result<&mut Map, XdpError> {
        self.ebpf.map_mut(name).ok_or(XdpError::Mismatch(name))
    }

    fn program(&self) -> Result<&Xdp, XdpError> {
        self.ebpf
            .program(PROGRAM_NAME)
            .ok_or(XdpError::Mismatch("no program xdp_steer"))?
            .try_into()
            .map_err(prog_err("has the wrong type"))
    }

    fn program_mut(&mut self) -> Result<&mut Xdp, XdpError> {
        self.ebpf
            .program_mut(PROGRAM_NAME)
            .ok_or(XdpError::Mismatch("no program xdp_steer"))?
            .try_into()
            .map_err(prog_err("has the wrong type"))
    }

    /// Attaches to `ifindex`, natively if the driver can, else generically;
    /// returns the mode it got.
    pub fn attach(&mut self, ifindex: u32) -> Result<XdpMode, XdpError> {
        self.attach_with(ifindex, AttachMode::Auto)
    }

    /// Attaches to `ifindex` in the given mode (see [`AttachMode`]).
    pub fn attach_with(&mut self, ifindex: u32, how: AttachMode) -> Result<XdpMode, XdpError> {
        if self.attached.iter().any(|a| a.ifindex == ifindex) {
            return Err(XdpError::AlreadyAttached(ifindex));
        }
        let first = match how {
            AttachMode::Generic => XdpMode::Generic,
            AttachMode::Auto | AttachMode::Native => XdpMode::Native,
        };
        let prog = self.program_mut()?;
        let try_mode = |prog: &mut Xdp, mode: XdpMode| {
            prog.attach_to_if_index(ifindex, mode.flags())
                .map(|link| (mode, link))
                .map_err(|e| XdpError::Attach {
                    ifindex,
                    mode,
                    source: Box::new(e),
                })
        };
        let mut outcome = try_mode(prog, first);
        // Fall back when the driver cannot do native XDP, not when another
        // program holds the interface: generic would fail the same way and
        // hide the real reason.
        let fall_back = how == AttachMode::Auto
            && matches!(&outcome, Err(XdpError::Attach { source, .. }) if !is_conflict(source));
        if fall_back {
            outcome = try_mode(prog, XdpMode::Generic);
        }
        let (mode, link) = outcome?;
        self.attached.push(Attachment {
            ifindex,
            mode,
            link,
        });
        Ok(mode)
    }

    /// Attaches to the interface called `name`; returns its ifindex and
    /// the mode.
    pub fn attach_by_name(&mut self, name: &str) -> Result<(u32, XdpMode), XdpError> {
        let ifindex = ifindex_of(name)?;
        Ok((ifindex, self.attach(ifindex)?))
    }

    /// Detaches from `ifindex`; returns whether it was attached.
    pub fn detach(&mut self, ifindex: u32) -> Result<bool, XdpError> {
        let Some(i) = self.attached.iter().position(|a| a.ifindex == ifindex) else {
            return Ok(false);
        };
        let a = self.attached.swap_remove(i);
        self.program_mut()?
            .detach(a.link)
            .map_err(prog_err("detach"))?;
        Ok(true)
    }

    /// The interfaces the program is attached to, with their modes.
    pub fn attachments(&self) -> impl Iterator<Item = (u32, XdpMode)> + '_ {
        self.attached.iter().map(|a| (a.ifindex, a.mode))
    }

    /// Gives `ifindex` a role (outside: ESP and NAT-T ESP both steered) and
    /// an XSKMAP slot; returns the slot. Setting it again changes the role
    /// and keeps the slot, so registered sockets stay valid.
    pub fn set_interface(&mut self, ifindex: u32, role: PortRole) -> Result<u32, XdpError> {
        self.set_interface_with(ifindex, role, EspSteering::default())
    }

    /// [`XdpSteer::set_interface`] with a choice of which ESP encapsulations
    /// the outside steers (ignored on the inside).
    pub fn set_interface_with(
        &mut self,
        ifindex: u32,
        role: PortRole,
        esp: EspSteering,
    ) -> Result<u32, XdpError> {
        let mut flags = 0;
        if esp.esp {
            flags |= F_ESP;
        }
        if esp.udp_encapsulated {
            flags |= F_NATT;
        }
        let role = match role {
            PortRole::Inside => ROLE_INSIDE,
            PortRole::Outside => ROLE_OUTSIDE,
        };
        self.set_role(ifindex, role, flags)
    }

    /// Makes `ifindex` a capture interface for a measuring receiver
    /// (`espada-bench sink`), not a gateway port: every TCP, UDP and ESP
    /// packet to a unicast MAC goes to its AF_XDP sockets, the rest (ARP,
    /// ND, ICMP) to the kernel. Returns the slot, as
    /// [`XdpSteer::set_interface`] does.
    pub fn set_capture(&mut self, ifindex: u32) -> Result<u32, XdpError> {
        self.set_role(ifindex, ROLE_CAPTURE, 0)
    }

    fn set_role(&mut self, ifindex: u32, role: u8, flags: u8) -> Result<u32, XdpError> {
        let slot = match self.slot_of(ifindex) {
            Some(s) => s,
            None => self
                .slots
                .iter()
                .position(Option::is_none)
                .ok_or(XdpError::NoFreeSlot)? as u32,
        };
        let cfg = IfaceConfig {
            slot,
            role,
            flags,
            pad: 0,
            pat_lo: 0,
            pat_hi: 0,
        };
        let mut ifaces: BpfHashMap<&mut MapData, u32, IfaceConfig> =
            BpfHashMap::try_from(self.map_mut(MAP_IFACES)?).map_err(map_err(MAP_IFACES))?;
        ifaces
            .insert(ifindex, cfg, 0)
            .map_err(map_err(MAP_IFACES))?;
        self.slots[slot as usize] = Some(ifindex);
        Ok(slot)
    }

    /// Steers IPv4 return traffic of PAT translations on the outside
    /// interface `ifindex` (TCP/UDP to a port in `range`, echo replies and
    /// ICMP errors naming one) to AF_XDP; `None` stops it. The range must
    /// not hold 500 or 4500, which belong to IKE.
    pub fn set_pat_range(
        &mut self,
        ifindex: u32,
        range: Option<RangeInclusive<u16>>,
    ) -> Result<(), XdpError> {
        let (lo, hi) = match range {
            Some(r) if *r.start() > 0 && r.start() <= r.end() => {
                if r.contains(&500) || r.contains(&4500) {
                    return Err(XdpError::PatRange(*r.start(), *r.end()));
                }
                (*r.start(), *r.end())
            }
            Some(r) => return Err(XdpError::PatRange(*r.start(), *r.end())),
            None => (0, 0),
        };
        let mut ifaces: BpfHashMap<&mut MapData, u32, IfaceConfig> =
            BpfHashMap::try_from(self.map_mut(MAP_IFACES)?).map_err(map_err(MAP_IFACES))?;
        let mut cfg = ifaces
            .get(&ifindex, 0)
            .map_err(|_| XdpError::NotConfigured(ifindex))?;
        cfg.pat_lo = lo;
        cfg.pat_hi = hi;
        ifaces
            .insert(ifindex, cfg, 0)
            .map_err(map_err(MAP_IFACES))?;
        Ok(())
    }

    /// Removes `ifindex`'s role (the program then passes all its traffic
    /// to the kernel), unregisters its sockets and frees its slot. Returns
    /// whether it had one.
    pub fn remove_interface(&mut self, ifindex: u32) -> Result<bool, XdpError> {
        let Some(slot) = self.slot_of(ifindex) else {
            return Ok(false);
        };
        let mut ifaces: BpfHashMap<&mut MapData, u32, IfaceConfig> =
            BpfHashMap::try_from(self.map_mut(MAP_IFACES)?).map_err(map_err(MAP_IFACES))?;
        match ifaces.remove(&ifindex) {
            Err(e) if !is_not_found(&e) => return Err(map_err(MAP_IFACES)(e)),
            _ => {}
        }
        for queue in 0..MAX_QUEUES {
            self.delete_xsk(xsk_index(slot, queue))?;
        }
        self.slots[slot as usize] = None;
        Ok(true)
    }

    /// The XSKMAP slot of a configured interface.
    pub fn slot_of(&self, ifindex: u32) -> Option<u32> {
        self.slots
            .iter()
            .position(|s| *s == Some(ifindex))
            .map(|s| s as u32)
    }

    /// Adds one of the gateway's own addresses: on the outside only ESP to
    /// these is steered, on the inside traffic to these goes to the kernel.
    pub fn add_local(&mut self, addr: IpAddr) -> Result<(), XdpError> {
        let mut locals: BpfHashMap<&mut MapData, [u8; 16], u8> =
            BpfHashMap::try_from(self.map_mut(MAP_LOCALS)?).map_err(map_err(MAP_LOCALS))?;
        locals
            .insert(addr_key(addr), 1, 0)
            .map_err(map_err(MAP_LOCALS))
    }

    /// Removes a gateway address (when the kernel reports it deleted);
    /// returns whether it was there.
    pub fn remove_local(&mut self, addr: IpAddr) -> Result<bool, XdpError> {
        let mut locals: BpfHashMap<&mut MapData, [u8; 16], u8> =
            BpfHashMap::try_from(self.map_mut(MAP_LOCALS)?).map_err(map_err(MAP_LOCALS))?;
        match locals.remove(&addr_key(addr)) {
            Ok(()) => Ok(true),
            Err(e) if is_not_found(&e) => Ok(false),
            Err(e) => Err(map_err(MAP_LOCALS)(e)),
        }
    }

    /// Registers the AF_XDP socket bound to `queue` of `ifindex`, so the
    /// program can redirect that queue's frames to it. Closing the socket
    /// removes it from the map (the kernel does that), after which its
    /// frames pass to the kernel again.
    pub fn register_xsk(
        &mut self,
        ifindex: u32,
        queue: u32,
        socket: impl AsRawFd,
    ) -> Result<(), XdpError> {
        let slot = self
            .slot_of(ifindex)
            .ok_or(XdpError::NotConfigured(ifindex))?;
        if queue >= MAX_QUEUES {
            return Err(XdpError::QueueOutOfRange(queue));
        }
        let mut xsks: XskMap<&mut MapData> =
            XskMap::try_from(self.map_mut(MAP_XSKS)?).map_err(map_err(MAP_XSKS))?;
        xsks.set(xsk_index(slot, queue), socket, 0)
            .map_err(map_err(MAP_XSKS))
    }

    /// Removes the socket registered for `queue` of `ifindex`, if any.
    pub fn unregister_xsk(&mut self, ifindex: u32, queue: u32) -> Result<(), XdpError> {
        let slot = self
            .slot_of(ifindex)
            .ok_or(XdpError::NotConfigured(ifindex))?;
        if queue >= MAX_QUEUES {
            return Err(XdpError::QueueOutOfRange(queue));
        }
        self.delete_xsk(xsk_index(slot, queue))
    }

    fn delete_xsk(&self, index: u32) -> Result<(), XdpError> {
        let Map::XskMap(data) = self.map(MAP_XSKS)? else {
            return Err(XdpError::Mismatch("steer_xsks is not an XSKMAP"));
        };
        sys::map_delete(data.fd().as_fd(), &index).map_err(os_err("deleting an XSKMAP entry"))
    }

    /// The per-rule counters, summed over CPUs.
    pub fn counters(&self) -> Result<SteerCounters, XdpError> {
        let array: PerCpuArray<&MapData, u64> =
            PerCpuArray::try_from(self.map(MAP_COUNTERS)?).map_err(map_err(MAP_COUNTERS))?;
        let mut out = SteerCounters::default();
        for (i, slot) in out.0.iter_mut().enumerate() {
            let per_cpu = array.get(&(i as u32), 0).map_err(map_err(MAP_COUNTERS))?;
            *slot = per_cpu.iter().sum();
        }
        Ok(out)
    }

    /// Runs the loaded program once over `frame` as if it had arrived on
    /// `rx_queue` of `ifindex` (`BPF_PROG_TEST_RUN`), with the maps as they
    /// are: how the tests check every rule, and how a start-up self-check
    /// can, without sending a packet. The interface must exist in the
    /// caller's network namespace; frames shorter than an Ethernet header
    /// are refused by the kernel (no driver delivers them either).
    pub fn test_run(
        &self,
        frame: &[u8],
        ifindex: u32,
        rx_queue: u32,
    ) -> Result<XdpAction, XdpError> {
        let fd = self.program()?.fd().map_err(prog_err("has no fd"))?;
        sys::prog_test_run(fd.as_fd(), frame, ifindex, rx_queue)
            .map(XdpAction::from)
            .map_err(os_err("BPF_PROG_TEST_RUN"))
    }

    /// Crash recovery at start: detaches any copy of this program (by name)
    /// left attached to `ifindex` by an earlier dataplane, in every mode,
    /// whether attached through netlink or held by a BPF link. Other
    /// programs are left alone. Returns how many were detached. Call it
    /// before [`XdpSteer::attach`]: it would detach this process's own
    /// program too.
    pub fn detach_stale(ifindex: u32) -> Result<usize, XdpError> {
        let attached = sys::xdp_query(ifindex).map_err(os_err("querying XDP programs"))?;
        let mut detached = 0;
        for (mode, id) in attached.progs {
            let fd = match sys::prog_fd_by_id(id) {
                Ok(fd) => fd,
                // Gone meanwhile.
                Err(e) if e.raw_os_error() == Some(libc::ENOENT) => continue,
                Err(e) => return Err(os_err("opening an attached XDP program")(e)),
            };
            let info = sys::prog_info(fd.as_fd()).map_err(os_err("reading XDP program info"))?;
            if info.prog_type != sys::BPF_PROG_TYPE_XDP || info.name != PROGRAM_NAME {
                continue;
            }
            match sys::xdp_detach_netlink(ifindex, mode, fd.as_fd()) {
                Ok(()) => detached += 1,
                // Held by a BPF link: detach the link instead.
                Err(e) if e.raw_os_error() == Some(libc::EBUSY) => {
                    if sys::detach_xdp_link(ifindex, id).map_err(os_err("detaching an XDP link"))? {
                        detached += 1;
                    }
                }
                Err(e) => return Err(os_err("detaching an XDP program")(e)),
            }
        }
        Ok(detached)
    }

    /// The ids of the XDP programs attached to `ifindex` with their names,
    /// for operators and tests ("is anything still attached?").
    pub fn attached_programs(ifindex: u32) -> Result<Vec<(u32, String)>, XdpError> {
        let attached = sys::xdp_query(ifindex).map_err(os_err("querying XDP programs"))?;
        let mut out = Vec::new();
        for (_, id) in attached.progs {
            let name = sys::prog_fd_by_id(id)
                .and_then(|fd| sys::prog_info(fd.as_fd()))
                .map(|i| i.name)
                .unwrap_or_default();
            out.push((id, name));
        }
        Ok(out)
    }
}

/// Resolves an interface name in the caller's network namespace.
pub fn ifindex_of(name: &str) -> Result<u32, XdpError> {
    let c = CString::new(name).map_err(|_| XdpError::UnknownInterface(name.to_string()))?;
    // SAFETY: a valid NUL-terminated string.
    let ifindex = unsafe { libc::if_nametoindex(c.as_ptr()) };
    if ifindex == 0 {
        return Err(XdpError::UnknownInterface(name.to_string()));
    }
    Ok(ifindex)
}

impl Drop for XdpSteer {
    fn drop(&mut self) {
        let attached = std::mem::take(&mut self.attached);
        if let Ok(prog) = self.program_mut() {
            for a in attached {
                // Nothing to do about a failure here; closing the link's fd
                // when aya drops it detaches it anyway.
                let _ = prog.detach(a.link);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_interface_slot_owns_a_disjoint_range_of_the_xskmap() {
        assert_eq!(xsk_index(0, 0), 0);
        assert_eq!(xsk_index(0, MAX_QUEUES - 1), MAX_QUEUES - 1);
        assert_eq!(xsk_index(1, 0), MAX_QUEUES);
        assert_eq!(
            xsk_index(MAX_SLOTS - 1, MAX_QUEUES - 1),
            MAX_SLOTS * MAX_QUEUES - 1
        );
    }

    #[test]
    fn ipv4_addresses_are_keyed_v4_mapped() {
        let k = addr_key("198.18.0.1".parse().unwrap_or(IpAddr::from([0, 0, 0, 0])));
        assert_eq!(k, [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 198, 18, 0, 1]);
    }

    #[test]
    fn rules_are_listed_in_counter_order() {
        for (i, r) in SteerRule::ALL.iter().enumerate() {
            assert_eq!(*r as usize, i);
        }
        let redirecting: Vec<_> = SteerRule::ALL.iter().filter(|r| r.redirects()).collect();
        assert_eq!(
            redirecting,
            [
                &SteerRule::Esp,
                &SteerRule::NattEsp,
                &SteerRule::Inside,
                &SteerRule::Pat,
                &SteerRule::Ted,
                &SteerRule::Capture,
                &SteerRule::Pmtu
            ]
        );
    }

    #[test]
    fn the_loader_can_move_to_the_management_thread() {
        fn send<T: Send>() {}
        send::<XdpSteer>();
    }

    #[test]
    fn the_embedded_object_is_an_elf_file_for_bpf() {
        assert_eq!(&OBJECT[..4], b"\x7fELF");
        // e_machine 247 = EM_BPF
        assert_eq!(u16::from_le_bytes([OBJECT[18], OBJECT[19]]), 247);
    }
}
