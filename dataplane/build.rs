//! Compiles the XDP steering program (`ebpf/xdp_steer.c`) with clang into
//! OUT_DIR, where `io::xdp` embeds it: the dataplane binary carries the
//! exact program its loader was written against, and needs no file or
//! bpffs at run time.

use std::env;
use std::io::ErrorKind;
use std::path::PathBuf;
use std::process::{exit, Command};

fn main() {
    let manifest = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").unwrap_or_default());
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").unwrap_or_default());
    let src = manifest.join("../ebpf/xdp_steer.c");
    let obj = out_dir.join("xdp_steer.o");
    println!("cargo:rerun-if-changed={}", src.display());
    println!("cargo:rerun-if-env-changed=CLANG");

    let clang = env::var("CLANG").unwrap_or_else(|_| "clang".to_string());
    // -g: BTF, which describes the maps to the loader and the verifier;
    // -O2: the verifier rejects what clang emits without optimisation.
    let result = Command::new(&clang)
        .args(["-O2", "-g", "-target", "bpf", "-Wall", "-Werror", "-c"])
        .arg(&src)
        .arg("-o")
        .arg(&obj)
        .output();
    match result {
        Ok(out) if out.status.success() => {}
        Ok(out) => {
            eprintln!(
                "error: `{clang}` failed to compile {}:\n{}",
                src.display(),
                String::from_utf8_lossy(&out.stderr)
            );
            exit(1);
        }
        Err(e) if e.kind() == ErrorKind::NotFound => {
            eprintln!(
                "error: `{clang}` not found. The dataplane embeds an XDP program compiled \
                 with clang -target bpf: run deploy/setup.sh (as root) to install clang, \
                 llvm and libelf-dev, or set CLANG to a clang binary."
            );
            exit(1);
        }
        Err(e) => {
            eprintln!("error: could not run `{clang}`: {e}");
            exit(1);
        }
    }
}
