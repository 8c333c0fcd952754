//! `espada-dataplane`: the packet-path process. `run` attaches the XDP
//! steering program, starts one pinned poll-mode worker per core and
//! serves the control socket until SIGINT or SIGTERM.

mod kernel;
mod options;
mod run;
mod steer;

use mimalloc::MiMalloc;

#[global_allocator]
static GLOBAL: MiMalloc = MiMalloc;

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("--version") | Some("-V") => {
            println!("espada-dataplane {}", env!("CARGO_PKG_VERSION"));
        }
        Some("suites") => {
            for s in dataplane::crypto::EncAlg::ALL {
                let note = if s.is_insecure() {
                    " (insecure, legacy)"
                } else {
                    ""
                };
                println!("encryption {}{note}", s.ios_name());
            }
            for a in dataplane::crypto::AuthAlg::ALL {
                println!("integrity  {}", a.ios_name());
            }
        }
        Some("run") => run::run(options::RunOptions::parse(&args[1..])?)?,
        _ => {
            eprintln!("{}", options::USAGE);
            std::process::exit(2);
        }
    }
    Ok(())
}
