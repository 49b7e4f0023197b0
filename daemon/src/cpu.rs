//! The instruction-set check both binaries make first.
//!
//! x86-64 builds target `x86-64-v2` (`.cargo/config.toml`): SSE4.2,
//! POPCNT and the rest make ML-DSA signing, and so the audit gate, about
//! 1.2× faster. A binary built for more than a CPU has would die of an
//! illegal instruction somewhere, perhaps mid-request; instead it names the
//! missing extensions and exits with status 2 before doing anything. The
//! check is C compiled for the baseline x86-64 (`csrc/cpu_check.c`), since
//! the compiler may use the build's instructions anywhere in Rust code,
//! even while formatting the error; it asks the CPU itself (CPUID, and
//! XGETBV for the AVX family), as `is_x86_feature_detected!` cannot: it
//! answers yes at compile time for every extension the build enables.

/// The mask of the x86-64 extensions this binary was compiled to use, in
/// the order of `NAMES` in `csrc/cpu_check.c`: x86-64-v2's, then
/// x86-64-v3's (for a site that builds for its fleet).
#[cfg(target_arch = "x86_64")]
const REQUIRED: u32 = {
    // `cfg!` takes literals only, hence one line per extension.
    let on = [
        cfg!(target_feature = "cmpxchg16b"),
        cfg!(target_feature = "popcnt"),
        cfg!(target_feature = "sse3"),
        cfg!(target_feature = "ssse3"),
        cfg!(target_feature = "sse4.1"),
        cfg!(target_feature = "sse4.2"),
        cfg!(target_feature = "avx"),
        cfg!(target_feature = "avx2"),
        cfg!(target_feature = "bmi1"),
        cfg!(target_feature = "bmi2"),
        cfg!(target_feature = "f16c"),
        cfg!(target_feature = "fma"),
        cfg!(target_feature = "lzcnt"),
        cfg!(target_feature = "movbe"),
    ];
    let mut mask = 0;
    let mut i = 0;
    while i < on.len() {
        if on[i] {
            mask |= 1 << i;
        }
        i += 1;
    }
    mask
};

#[cfg(target_arch = "x86_64")]
extern "C" {
    /// Returns when the CPU has all of `required`; otherwise prints
    /// `PROGRAM: error: this CPU lacks …` and exits with status 2.
    fn cairn_cpu_require(required: u32, program: *const std::ffi::c_char);
}

/// Exits with status 2, naming what is missing, unless this CPU has every
/// extension the binary was compiled to use. Call it first in `main`.
pub fn require(program: &'static std::ffi::CStr) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a C function that reads CPUID and XGETBV, and writes to
    // standard error; `program` is a NUL-terminated static string.
    unsafe {
        cairn_cpu_require(REQUIRED, program.as_ptr())
    };
    #[cfg(not(target_arch = "x86_64"))]
    let _ = program;
}

#[cfg(all(test, target_arch = "x86_64"))]
mod tests {
    use super::*;

    extern "C" {
        /// The extensions of `required` this CPU lacks, as a mask.
        fn cairn_cpu_missing(required: u32) -> u32;
    }

    #[test]
    fn this_cpu_runs_this_build_which_targets_x86_64_v2() {
        // SAFETY: as in `require`.
        assert_eq!(unsafe { cairn_cpu_missing(REQUIRED) }, 0);
        // cmpxchg16b, popcnt, sse3, ssse3, sse4.1, sse4.2 at least.
        assert_eq!(REQUIRED & 0b11_1111, 0b11_1111, "see .cargo/config.toml");
    }
}
