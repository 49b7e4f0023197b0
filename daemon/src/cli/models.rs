//! `cairn models generate`: random-weight models in real formats, for
//! tests, demos and trying the daemon without a real model. (`cairn models
//! list|add|remove` talk to the daemon: see `daemon_cmds`.)

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use cairn_inference::generate::{generate, Dims, Format, GgufType, ModelSpec, PRESETS};
use cairn_inference::Arch;
use cairn_inference::{DigestCache, Engine, LoadOptions};
use clap::{Subcommand, ValueEnum};

#[derive(Subcommand)]
pub(super) enum ModelsCommand {
    #[command(flatten)]
    Daemon(super::daemon_cmds::DaemonModels),
    /// Write a random-weight model (tiny, or with a real model's dimensions
    /// for benchmarks) with its tokenizer.json, then load it once and print
    /// its digest.
    Generate {
        /// The architecture.
        #[arg(long, value_enum, default_value_t = ArchArg::Llama)]
        arch: ArchArg,
        /// The dimensions: tiny (hidden 64, 2 layers, vocabulary 300) or a
        /// real model's (smollm2-135m, qwen2.5-0.5b, llama-3.2-1b).
        #[arg(long, default_value = "tiny", value_parser = clap::builder::PossibleValuesParser::new(PRESETS))]
        dims: String,
        /// The file format.
        #[arg(long, value_enum, default_value_t = FileFormat::Gguf)]
        format: FileFormat,
        /// Tensor type for GGUF (safetensors is always f32).
        #[arg(long, value_enum, default_value_t = Quant::F32)]
        quant: Quant,
        /// Safetensors shards (with an index when more than one).
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=64))]
        shards: u16,
        /// Seed of the weights.
        #[arg(long, default_value_t = 7)]
        seed: u64,
        /// The directory to write into (created if needed; must be empty).
        #[arg(long)]
        out: PathBuf,
    },
}

#[derive(Clone, Copy, ValueEnum)]
pub(super) enum ArchArg {
    Llama,
    Qwen2,
}

#[derive(Clone, Copy, ValueEnum)]
pub(super) enum FileFormat {
    Gguf,
    Safetensors,
}

#[derive(Clone, Copy, ValueEnum)]
pub(super) enum Quant {
    F32,
    F16,
    #[value(name = "q8_0")]
    Q8_0,
    #[value(name = "q4_0")]
    Q4_0,
    #[value(name = "q4_1")]
    Q4_1,
    #[value(name = "q4_k_m")]
    Q4KM,
}

pub(super) fn run(cmd: ModelsCommand) -> anyhow::Result<ExitCode> {
    let (arch, dims, format, quant, shards, seed, out) = match cmd {
        ModelsCommand::Daemon(cmd) => return super::daemon_cmds::models(cmd),
        ModelsCommand::Generate {
            arch,
            dims,
            format,
            quant,
            shards,
            seed,
            out,
        } => (arch, dims, format, quant, shards, seed, out),
    };
    let format = match format {
        FileFormat::Safetensors => Format::Safetensors {
            shards: shards.into(),
        },
        FileFormat::Gguf => Format::Gguf(match quant {
            Quant::F32 => GgufType::F32,
            Quant::F16 => GgufType::F16,
            Quant::Q8_0 => GgufType::Q8_0,
            Quant::Q4_0 => GgufType::Q4_0,
            Quant::Q4_1 => GgufType::Q4_1,
            Quant::Q4KM => GgufType::Q4KM,
        }),
    };
    let spec = ModelSpec {
        arch: match arch {
            ArchArg::Llama => Arch::Llama,
            ArchArg::Qwen2 => Arch::Qwen2,
        },
        dims: Dims::preset(&dims).context("unknown dimensions")?,
        seed,
    };
    if std::fs::read_dir(&out)
        .map(|mut d| d.next().is_some())
        .unwrap_or(false)
    {
        anyhow::bail!(
            "{} is not empty; choose a new or empty directory",
            out.display()
        );
    }
    let path = generate(&spec, format, &out)
        .with_context(|| format!("cannot write a model to {}", out.display()))?;
    let engine = Engine::load(
        &path,
        &LoadOptions {
            digest_cache: DigestCache::Off,
            ..LoadOptions::default()
        },
    )
    .with_context(|| format!("the generated model at {} does not load", path.display()))?;
    println!(
        "{}  {}  ({} {}, {} context, vocabulary {})",
        engine.digest().digest,
        path.display(),
        engine.arch(),
        dims,
        engine.context_len(),
        engine.vocab_size()
    );
    Ok(ExitCode::SUCCESS)
}
