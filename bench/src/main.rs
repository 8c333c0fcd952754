//! `espada-bench`: benchmarks. Filled by the benchmark work.
use mimalloc::MiMalloc;

#[global_allocator]
static GLOBAL: MiMalloc = MiMalloc;

fn main() -> anyhow::Result<()> {
    eprintln!("usage: espada-bench crypto");
    std::process::exit(2);
}
