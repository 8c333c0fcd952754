//! `espada`: the control process and its CLI.

use mimalloc::MiMalloc;

#[global_allocator]
static GLOBAL: MiMalloc = MiMalloc;

fn main() -> anyhow::Result<()> {
    let arg = std::env::args().nth(1);
    match arg.as_deref() {
        Some("--version") | Some("-V") => println!("espada {}", control::VERSION),
        _ => {
            eprintln!("usage: espada --version");
            eprintln!("(IKE and configuration arrive with the IKE issues)");
            std::process::exit(2);
        }
    }
    Ok(())
}
