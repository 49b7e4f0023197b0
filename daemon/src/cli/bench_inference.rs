//! `cairn bench inference`: prompt-processing and decode speed of a model
//! file at a thread count, for side-by-side comparison with llama.cpp's
//! `llama-bench` on the same file (`-p 128 -n 64 -t N`).

use std::path::Path;
use std::process::ExitCode;

use anyhow::{bail, Context};
use cairn_inference::{DigestCache, Engine, GenerateParams, LoadOptions};

/// Runs the benchmark; see [`super::bench::BenchCommand::Inference`].
pub(super) fn run(
    model: &Path,
    threads: usize,
    prompt_tokens: usize,
    gen_tokens: usize,
    runs: usize,
    json: bool,
) -> anyhow::Result<ExitCode> {
    if threads == 0 || prompt_tokens == 0 || gen_tokens == 0 || runs == 0 {
        bail!("--threads, --prompt-tokens, --gen-tokens and --runs must be at least 1");
    }
    // candle's CPU kernels size their work by RAYON_NUM_THREADS and run on
    // rayon's global pool: set both before the first tensor operation.
    std::env::set_var("RAYON_NUM_THREADS", threads.to_string());
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build_global()
        .context("cannot size the thread pool")?;
    let engine = Engine::load(
        model,
        &LoadOptions {
            digest_cache: DigestCache::Off,
            ..LoadOptions::default()
        },
    )
    .with_context(|| format!("cannot load {}", model.display()))?;
    if prompt_tokens + gen_tokens >= engine.context_len() {
        bail!(
            "{prompt_tokens} + {gen_tokens} tokens do not fit the model's context of {}",
            engine.context_len()
        );
    }
    // A fixed prompt of ordinary tokens (not special ones), as llama-bench
    // uses random tokens: speed does not depend on which.
    let vocab = engine.vocab_size() as u32;
    let prompt: Vec<u32> = (0..prompt_tokens as u32)
        .map(|i| 300 + (i * 7919) % (vocab.saturating_sub(600).max(1)))
        .map(|t| t.min(vocab - 1))
        .collect();
    let params = GenerateParams {
        max_new_tokens: gen_tokens,
        stop_at_eos: false,
        ..GenerateParams::default()
    };
    if !json {
        println!(
            "cairn bench inference: {} ({}, {}), {threads} threads, prompt {prompt_tokens} tokens, {gen_tokens} generated, {runs} runs",
            model.display(),
            engine.arch(),
            engine.digest().digest
        );
    }
    let (mut pp, mut tg) = (Vec::new(), Vec::new());
    for i in 0..runs {
        let g = engine.generate_tokens(&prompt, &params)?;
        pp.push(g.timings.prompt_tokens_per_s);
        tg.push(g.timings.decode_tokens_per_s);
        if !json {
            eprintln!(
                "run {}: prompt {:.1} tok/s, decode {:.1} tok/s ({} tokens)",
                i + 1,
                g.timings.prompt_tokens_per_s,
                g.timings.decode_tokens_per_s,
                g.tokens.len()
            );
        }
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let (pp, tg) = (median(&mut pp), median(&mut tg));
    if json {
        println!(
            "{}",
            serde_json::json!({
                "model": model, "arch": engine.arch(), "digest": engine.digest().digest,
                "threads": threads, "prompt_tokens": prompt_tokens, "gen_tokens": gen_tokens,
                "runs": runs, "prompt_tokens_per_s": pp, "decode_tokens_per_s": tg,
            })
        );
    } else {
        println!("prompt processing  {pp:>8.1} tok/s  (pp{prompt_tokens}, median of {runs})");
        println!("decode             {tg:>8.1} tok/s  (tg{gen_tokens}, median of {runs})");
    }
    Ok(ExitCode::SUCCESS)
}
