//! `espada-dataplane`: the packet-path process. The AF_XDP workers and the
//! control socket arrive with the dataplane issue; today the binary reports
//! what this build supports so operators can check an installation.

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
        _ => {
            eprintln!("usage: espada-dataplane --version | suites");
            eprintln!("(the AF_XDP packet path is not built yet)");
            std::process::exit(2);
        }
    }
    Ok(())
}
