//! `cairn bench sign`: one ML-DSA-65 signature at a time, as the gate makes
//! it, against `fips204`'s own `try_sign` (the baseline), alternating in the
//! same run on one thread.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::bail;
use cairn_attest::keys::{Signer as _, SoftwareMlDsa65, CTX_RECORD};
use fips204::ml_dsa_65;
use fips204::traits::{KeyGen, Signer, Verifier};

/// Runs the benchmark: `signatures` of each kind over `msg`.
pub(super) fn run(signatures: usize, msg: &[u8]) -> anyhow::Result<ExitCode> {
    if signatures < 100 {
        bail!("--signatures must be at least 100 (the 99th percentile needs them)");
    }
    let seed = [7u8; 32];
    let (pk, sk) = ml_dsa_65::KG::keygen_from_seed(&seed);
    let ours = SoftwareMlDsa65::from_seed("bench.example/log", &seed)?;
    println!(
        "cairn bench sign: {signatures} signatures of a {}-byte record text each way, one thread, alternating",
        msg.len()
    );
    let (mut base, mut cairn, mut check) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..signatures {
        let t = Instant::now();
        let sig = sk
            .try_sign(msg, CTX_RECORD)
            .map_err(|e| anyhow::anyhow!("fips204 signing failed: {e}"))?;
        base.push(t.elapsed());
        let t = Instant::now();
        std::hint::black_box(pk.verify(msg, &sig, CTX_RECORD));
        check.push(t.elapsed());
        let t = Instant::now();
        std::hint::black_box(ours.sign(msg, CTX_RECORD)?);
        cairn.push(t.elapsed());
    }
    let (b, c, v) = (
        Percentiles::of(&mut base),
        Percentiles::of(&mut cairn),
        Percentiles::of(&mut check),
    );
    b.print("fips204 try_sign (baseline)");
    c.print("cairn's signer");
    v.print("  of which the fips204 check");
    println!(
        "ratio baseline / cairn   p50 {:.2}x   p90 {:.2}x   p99 {:.2}x   max {:.2}x",
        b.p50 / c.p50,
        b.p90 / c.p90,
        b.p99 / c.p99,
        b.max / c.max
    );
    Ok(ExitCode::SUCCESS)
}

/// Milliseconds at the percentiles the gate is judged by.
struct Percentiles {
    p50: f64,
    p90: f64,
    p99: f64,
    max: f64,
}

impl Percentiles {
    fn of(times: &mut [Duration]) -> Self {
        times.sort_unstable();
        let at = |p: f64| times[((times.len() - 1) as f64 * p) as usize].as_secs_f64() * 1e3;
        Percentiles {
            p50: at(0.5),
            p90: at(0.9),
            p99: at(0.99),
            max: at(1.0),
        }
    }

    fn print(&self, label: &str) {
        println!(
            "{label:<30} p50 {:>6.3} ms   p90 {:>6.3} ms   p99 {:>6.3} ms   max {:>6.3} ms",
            self.p50, self.p90, self.p99, self.max
        );
    }
}
