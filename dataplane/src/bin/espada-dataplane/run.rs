//! `espada-dataplane run`: assemble the packet path and keep it running.
//!
//! Start-up order matters: the kernel tables are read first (they give the
//! gateway's own addresses, which the XDP program must know before it
//! steers anything), then the XDP program is attached, then the AF_XDP
//! sockets are bound and registered, then the workers start. Shutdown goes
//! the other way, and the XDP program is detached even when a worker
//! fails, so the interfaces go back to plain kernel forwarding.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use crossbeam_channel::{bounded, Sender};
use dataplane::api::ControlListener;
use dataplane::clock;
use dataplane::handoff::Handoff;
use dataplane::io::xsk::{BindMode, Umem, XskSocket};
use dataplane::mgmt::server::Server;
use dataplane::mgmt::{Injector, Mgmt};
use dataplane::nat::PortPlan;
use dataplane::pipeline::{AcquireRequest, PatState, TedProbeRequest};
use dataplane::route::PortRole;
use dataplane::update::TableUpdate;
use dataplane::worker::{Worker, WorkerCounters};

use crate::options::RunOptions;

/// Set by SIGINT/SIGTERM.
static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    STOP.store(true, Ordering::Relaxed);
}

fn install_signal_handlers() {
    for sig in [libc::SIGINT, libc::SIGTERM] {
        // SAFETY: the handler only stores to an atomic, which is
        // async-signal-safe.
        unsafe { libc::signal(sig, on_signal as *const () as libc::sighandler_t) };
    }
}

/// One interface the dataplane serves.
#[derive(Debug, Clone)]
pub struct Port {
    pub name: String,
    pub ifindex: u32,
    pub role: PortRole,
}

fn ifindex(name: &str) -> Result<u32> {
    let c = std::ffi::CString::new(name).context("interface name")?;
    // SAFETY: a valid NUL-terminated string.
    let i = unsafe { libc::if_nametoindex(c.as_ptr()) };
    if i == 0 {
        bail!("no interface named {name:?} in this network namespace (check `ip link`)");
    }
    Ok(i)
}

/// How many RX queues an interface has (from sysfs).
fn rx_queues(name: &str) -> usize {
    std::fs::read_dir(format!("/sys/class/net/{name}/queues"))
        .map(|d| {
            d.filter_map(|e| e.ok())
                .filter(|e| e.file_name().to_string_lossy().starts_with("rx-"))
                .count()
        })
        .unwrap_or(1)
        .max(1)
}

pub fn run(o: RunOptions) -> Result<()> {
    install_signal_handlers();
    clock::tick();
    let mut ports = Vec::new();
    for name in &o.inside {
        ports.push(Port {
            name: name.clone(),
            ifindex: ifindex(name)?,
            role: PortRole::Inside,
        });
    }
    ports.push(Port {
        name: o.outside.clone(),
        ifindex: ifindex(&o.outside)?,
        role: PortRole::Outside,
    });
    for p in &ports {
        let q = rx_queues(&p.name);
        if q < o.cores.len() {
            bail!(
                "{} has {q} RX queue(s) but {} worker cores were asked for: each worker serves \
                 one queue of every interface (use --cores with at most {q} core(s), or give the \
                 interface more queues)",
                p.name,
                o.cores.len()
            );
        }
    }

    let kernel = crate::kernel::Kernel::open(&ports).context("reading the kernel's tables")?;
    let mut steer = crate::steer::Steering::attach(&o, &ports, kernel.local())
        .context("attaching the XDP steering program")?;

    let stop = Arc::new(AtomicBool::new(false));
    let mut senders: Vec<Sender<TableUpdate>> = Vec::new();
    let (acquire_tx, acquire_rx) = bounded::<AcquireRequest>(1024);
    // Slots hold whole probes (1.5 KB each), allocated here, once.
    let (ted_tx, ted_rx) = bounded::<TedProbeRequest>(64);
    let mut counters = Vec::new();
    let mut nat_counters = Vec::new();
    // Each worker returns whether it ran until told to stop.
    let mut threads: Vec<JoinHandle<bool>> = Vec::new();
    let mode = if o.zero_copy {
        BindMode::Auto
    } else {
        BindMode::Copy
    };
    let plan = PortPlan::new(o.pat_ports.clone(), o.cores.len()).context("--pat-ports")?;
    // Every worker has an end, one worker too: PAT return traffic moves
    // between workers, and ESP the control process hands over (fragmented
    // NAT-T ESP, reassembled by the kernel) comes from the management
    // thread.
    let mesh = Handoff::mesh(o.cores.len());
    let injector = mesh
        .first()
        .map(|h| Injector::new(h.sender(), outside_ifindex(&ports)));
    let mut handoffs = mesh.into_iter();
    for (w, &core) in o.cores.iter().enumerate() {
        let umem = Umem::new(o.frames).context("allocating UMEM")?;
        let mut socks: Vec<XskSocket> = Vec::new();
        for p in &ports {
            let first = socks.first();
            let s = XskSocket::new(&umem, first, p.ifindex, w as u32, o.ring, mode)
                .with_context(|| format!("AF_XDP socket on {} queue {w}", p.name))?;
            steer
                .register(p.ifindex, w as u32, s.fd())
                .with_context(|| format!("registering the socket of {} queue {w}", p.name))?;
            socks.push(s);
        }
        let mut worker = Worker::new(umem, socks);
        if let Some(h) = handoffs.next() {
            worker = worker.with_handoff(h);
        }
        let (tx, rx) = bounded::<TableUpdate>(4096);
        let c = Arc::new(WorkerCounters::default());
        let mut tables = kernel.tables();
        tables.acquire = Some(acquire_tx.clone());
        tables.ted = Some(ted_tx.clone());
        tables.pat =
            Some(PatState::new(plan, w, o.nat_entries).with_context(|| {
                format!("PAT table of worker {w} (--pat-ports, --nat-entries)")
            })?);
        if let Some(pat) = &tables.pat {
            nat_counters.push(pat.table.counters().clone());
        }
        let (stop, c2, idle) = (stop.clone(), c.clone(), o.idle);
        let handle = std::thread::Builder::new()
            .name(format!("espada-w{w}"))
            .spawn(move || {
                if !core_affinity::set_for_current(core_affinity::CoreId { id: core }) {
                    eprintln!("worker {w}: could not pin to core {core}; running unpinned");
                }
                if let Err(e) = dataplane::crypto::prime_thread_ivs() {
                    eprintln!("worker {w}: cannot seal CBC packets: {e}; stopping");
                    return false;
                }
                worker.run(&mut tables, &rx, &c2, idle, &stop);
                true
            })
            .context("starting a worker thread")?;
        senders.push(tx);
        counters.push(c);
        threads.push(handle);
    }

    if let Some(dir) = o.socket.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let listener = ControlListener::bind(&o.socket)
        .with_context(|| format!("control socket {}", o.socket.display()))?;
    let mut server = Server::new(listener);
    let mut mgmt = Mgmt::new(senders.clone(), counters.clone());
    mgmt.set_nat_counters(nat_counters);
    if let Some(i) = injector {
        mgmt.set_injector(i);
    }
    println!(
        "espada-dataplane {}: {} ; XDP {} mode; {} worker(s) on core(s) {:?}; control socket {}",
        env!("CARGO_PKG_VERSION"),
        ports
            .iter()
            .map(|p| format!("{} (ifindex {}, {:?})", p.name, p.ifindex, p.role))
            .collect::<Vec<_>>()
            .join(", "),
        steer.mode_name(),
        o.cores.len(),
        o.cores,
        o.socket.display()
    );

    let mut kernel = kernel;
    let mut nat_generation = mgmt.nat_generation();
    let mut last_tick = Instant::now();
    let mut last_report = Instant::now();
    while !STOP.load(Ordering::Relaxed) && threads.iter().all(|t| !t.is_finished()) {
        server.poll_once(&mut mgmt, clock::now_secs(), Duration::from_millis(50));
        for e in server.errors.drain(..) {
            eprintln!("{e}");
        }
        for u in kernel.poll() {
            steer.apply(&u);
            for tx in &senders {
                if tx.try_send(TableUpdate::Fib(u.clone())).is_err() {
                    eprintln!("a worker's update queue is full: kernel change {u:?} not applied");
                }
            }
        }
        kernel.resolve_pending();
        if mgmt.nat_generation() != nat_generation {
            nat_generation = mgmt.nat_generation();
            steer.steer_pat(&mgmt.pat_interfaces(), &o.pat_ports);
        }
        let acquires: Vec<_> = acquire_rx
            .try_iter()
            .filter_map(|a| mgmt.acquire(a, clock::now_secs()))
            .collect();
        server.broadcast(&acquires);
        // TED probes caught in transit (already rate-limited per worker).
        let probes: Vec<_> = ted_rx.try_iter().map(|p| p.event()).collect();
        server.broadcast(&probes);
        if last_tick.elapsed() >= Duration::from_secs(1) {
            last_tick = Instant::now();
            let events = mgmt.tick(clock::tick());
            server.broadcast(&events);
        }
        if last_report.elapsed() >= Duration::from_secs(60) {
            last_report = Instant::now();
            report(&counters);
        }
    }
    stop.store(true, Ordering::Relaxed);
    let mut failed = false;
    for t in threads {
        failed |= !matches!(t.join(), Ok(true));
    }
    report(&counters);
    drop(steer);
    let _ = std::fs::remove_file(&o.socket);
    if failed {
        bail!("a worker thread failed; the XDP program was detached");
    }
    println!("espada-dataplane: stopped, XDP detached");
    Ok(())
}

/// One line of totals for the log.
fn report(counters: &[Arc<WorkerCounters>]) {
    let sum = |f: &dyn Fn(&WorkerCounters) -> u64| counters.iter().map(|c| f(c)).sum::<u64>();
    let r = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
    println!(
        "totals: rx {} tx {} encapsulated {} decapsulated {} bypassed {} dropped {} tx-ring-full {} \
         handed-off {}",
        sum(&|c| c.received()),
        sum(&|c| c.transmitted()),
        sum(&|c| r(&c.pipeline.encapsulated)),
        sum(&|c| r(&c.pipeline.decapsulated)),
        sum(&|c| r(&c.pipeline.bypassed)),
        sum(&|c| c.pipeline.drops.losses()),
        sum(&|c| r(&c.tx_ring_full)),
        sum(&|c| r(&c.handed_off)),
    );
}

/// The outside port's ifindex.
fn outside_ifindex(ports: &[Port]) -> u32 {
    ports
        .iter()
        .find(|p| p.role == PortRole::Outside)
        .map_or(0, |p| p.ifindex)
}
