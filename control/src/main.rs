//! `espada`: the control process and its CLI.

use mimalloc::MiMalloc;

use control::cli::{self, Command, USAGE};

#[global_allocator]
static GLOBAL: MiMalloc = MiMalloc;

fn main() -> anyhow::Result<()> {
    let command = match cli::parse_args(std::env::args().skip(1)) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("espada: {e}");
            std::process::exit(2);
        }
    };
    match command {
        Command::Version => println!("espada {}", control::VERSION),
        Command::Help => println!("{USAGE}"),
        Command::ConfigCheck { file, kernel } => {
            let ok = cli::config_check(
                &file,
                kernel,
                &mut std::io::stdout(),
                &mut std::io::stderr(),
            )?;
            if !ok {
                std::process::exit(1);
            }
        }
        Command::Run { .. } | Command::Show { .. } => {
            eprintln!("espada: not implemented in this build (the daemon arrives with the dataplane and IKE issues)");
            std::process::exit(2);
        }
    }
    Ok(())
}
