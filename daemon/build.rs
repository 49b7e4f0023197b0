//! Compiles the instruction-set check (csrc/cpu_check.c) for the baseline
//! x86-64, whatever the Rust code targets: it must run on a CPU that lacks
//! what the rest of the binary uses (src/cpu.rs).

fn main() {
    println!("cargo:rerun-if-changed=csrc/cpu_check.c");
    if std::env::var("CARGO_CFG_TARGET_ARCH").as_deref() == Ok("x86_64") {
        cc::Build::new()
            .file("csrc/cpu_check.c")
            .flag("-march=x86-64")
            .flag("-mtune=generic")
            .warnings_into_errors(true)
            .compile("cairn_cpu_check");
    }
}
