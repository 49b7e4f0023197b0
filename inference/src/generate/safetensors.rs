//! Writes a generated model as a Hugging Face safetensors directory.

use std::collections::HashMap;
use std::path::Path;

use candle_core::{Device, Tensor};
use serde_json::json;

use super::weights::weight;
use super::{write_json, BOS_ID, EOS_ID};
use crate::arch::{Arch, Hyper};
use crate::error::{Error, Result};

/// `config.json` for the architecture.
fn config(hp: &Hyper) -> serde_json::Value {
    let mut c = json!({
        "model_type": hp.arch.name(),
        "hidden_size": hp.hidden,
        "intermediate_size": hp.intermediate,
        "num_hidden_layers": hp.layers,
        "num_attention_heads": hp.heads,
        "num_key_value_heads": hp.kv_heads,
        "vocab_size": hp.vocab,
        "max_position_embeddings": hp.context,
        "rms_norm_eps": hp.rms_eps,
        "rope_theta": hp.rope_theta,
        "hidden_act": "silu",
        "bos_token_id": BOS_ID,
        "eos_token_id": EOS_ID,
        "tie_word_embeddings": hp.tied_embeddings,
        "torch_dtype": "float32",
    });
    let extra = match hp.arch {
        Arch::Llama => json!({"architectures": ["LlamaForCausalLM"]}),
        Arch::Qwen2 => json!({
            "architectures": ["Qwen2ForCausalLM"],
            "use_sliding_window": false,
            "sliding_window": hp.context,
            "max_window_layers": hp.layers,
        }),
    };
    for (k, v) in extra.as_object().expect("an object") {
        c[k] = v.clone();
    }
    c
}

/// Writes `config.json` and the weights in f32, split round-robin into
/// `shards` files (with an index when more than one); one shard's tensors
/// are in memory at a time.
pub(super) fn write(hp: &Hyper, seed: u64, dir: &Path, shards: usize) -> Result<()> {
    write_json(&dir.join("config.json"), &config(hp))?;
    let name_of = |k: usize| {
        if shards == 1 {
            "model.safetensors".to_string()
        } else {
            format!("model-{:05}-of-{:05}.safetensors", k + 1, shards)
        }
    };
    let tensors = hp.tensors();
    let mut weight_map = serde_json::Map::new();
    let mut total = 0usize;
    for k in 0..shards {
        let mut group = HashMap::new();
        for (role, shape) in tensors.iter().skip(k).step_by(shards) {
            let w = weight(hp, seed, *role, shape);
            let name = role.hf_name();
            total += w.len() * 4;
            let t = Tensor::from_vec(w, shape.as_slice(), &Device::Cpu)
                .map_err(|e| Error::candle(format!("tensor {name}"), e))?;
            weight_map.insert(name.clone(), json!(name_of(k)));
            group.insert(name, t);
        }
        let path = dir.join(name_of(k));
        candle_core::safetensors::save(&group, &path)
            .map_err(|e| Error::candle(path.display().to_string(), e))?;
    }
    if shards > 1 {
        let index = json!({"metadata": {"total_size": total}, "weight_map": weight_map});
        write_json(&dir.join("model.safetensors.index.json"), &index)?;
    }
    Ok(())
}
