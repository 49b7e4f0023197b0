//! The behaviour tests against a real `swtpm` (feature `tpm`): each test
//! starts its own swtpm (`cairn_tests::swtpm`) on its own state directory
//! and ports, so tests run in parallel; "outside" is `tpm2_pcrextend` from
//! tpm2-tools.

use super::behaviour::{behaviour_tests, Fixture};
use super::{EsapiTpm, Tpm};
use cairn_tests::swtpm::Swtpm;
use std::time::{Duration, Instant};

/// A swtpm on a state directory of its own.
pub(super) struct Fresh {
    _dir: tempfile::TempDir,
    swtpm: Swtpm,
}

impl Fresh {
    pub(super) fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        Self {
            swtpm: Swtpm::start(dir.path().join("state")),
            _dir: dir,
        }
    }

    pub(super) fn tcti(&self) -> String {
        self.swtpm.tcti()
    }
}

impl Fixture for Fresh {
    fn open(&mut self) -> Box<dyn Tpm> {
        Box::new(EsapiTpm::open(&self.tcti()).unwrap())
    }
    fn restart(&mut self) {
        self.swtpm.restart();
    }
    fn extend_outside(&mut self, pcr: u8, digest: &[u8; 32]) {
        self.swtpm.extend_outside(pcr, digest);
    }
}

behaviour_tests!(Fresh::start());

fn report(name: &str, mut times: Vec<Duration>) {
    times.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    eprintln!(
        "swtpm {name}: p50 {:.2} ms, max {:.2} ms ({} runs)",
        ms(times[times.len() / 2]),
        ms(times[times.len() - 1]),
        times.len()
    );
}

/// Times each operation against swtpm (printed with `--nocapture`; the
/// README's figures), checking every result on the way.
#[test]
fn latencies_of_each_operation() {
    let fx = Fresh::start();
    let mut tpm = EsapiTpm::open(&fx.tcti()).unwrap();
    let seed = [7u8; 32];
    let nonce = [9u8; 32];
    let ak = tpm.ak_public().unwrap();
    let (mut seal, mut unseal, mut extend, mut quote, mut count) =
        (vec![], vec![], vec![], vec![], vec![]);
    for _ in 0..10 {
        let t = Instant::now();
        let sealed = tpm.seal(&seed, super::SEAL_PCRS).unwrap();
        seal.push(t.elapsed());
        let t = Instant::now();
        assert_eq!(*tpm.unseal(&sealed).unwrap(), seed);
        unseal.push(t.elapsed());
        let t = Instant::now();
        tpm.pcr_extend(super::CHECKPOINT_PCR, &seed).unwrap();
        extend.push(t.elapsed());
        let t = Instant::now();
        let q = tpm.quote(super::QUOTE_PCRS, &nonce).unwrap();
        quote.push(t.elapsed());
        super::verify_quote(&q, &ak, &nonce).unwrap();
        let t = Instant::now();
        tpm.counter_increment().unwrap();
        count.push(t.elapsed());
    }
    report("seal", seal);
    report("unseal", unseal);
    report("extend", extend);
    report("quote", quote);
    report("counter increment", count);
}
