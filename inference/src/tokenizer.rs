//! The tokenizer and chat template a model source provides.
//!
//! A GGUF file uses a `tokenizer.json` beside it when there is one, else the
//! tokenizer embedded in its metadata (`tokenizer.ggml.*`, byte-level BPE as
//! llama.cpp writes it for `tokenizer.ggml.model = "gpt2"`), built with
//! candle's [`TokenizerFromGguf`]. Either way the file is in the digest: the
//! GGUF covers its embedded tokenizer and template.

use std::fs::File;
use std::io::BufReader;
use std::path::Path;

use candle_core::quantized::gguf_file;
use candle_core::quantized::tokenizer::TokenizerFromGguf;
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::Tokenizer;

use crate::error::{no_panic, Error, Result};
use crate::model::{read_gguf_header, ModelSource};

/// GGUF key of the Jinja chat template.
pub(crate) const GGUF_TEMPLATE_KEY: &str = "tokenizer.chat_template";

/// `tokenizer.ggml.pre` values for which candle builds the pre-tokenizer
/// llama.cpp uses; every other value gets plain GPT-2 byte-level splitting.
const KNOWN_PRE: [&str; 4] = ["qwen2", "llama3", "smaug-bpe", "lfm2"];

/// What a source says about text: its tokenizer and, for GGUF, the chat
/// template in its metadata.
pub(crate) struct TextSide {
    pub tokenizer: Tokenizer,
    pub gguf_template: Option<String>,
}

/// Loads the tokenizer (and the GGUF's template) of `source`.
pub(crate) fn load(source: &ModelSource) -> Result<TextSide> {
    match source {
        ModelSource::Gguf { file, tokenizer } => {
            let f = File::open(file).map_err(|e| Error::io(file, e))?;
            let content = read_gguf_header(file, &mut BufReader::new(f))?;
            let gguf_template = match content.metadata.get(GGUF_TEMPLATE_KEY) {
                None => None,
                Some(gguf_file::Value::String(s)) => Some(s.clone()),
                Some(v) => {
                    return Err(Error::BadKey {
                        path: file.clone(),
                        key: GGUF_TEMPLATE_KEY.into(),
                        reason: format!("expected a string, found {:?}", v.value_type()),
                    })
                }
            };
            let tokenizer = match tokenizer {
                Some(json) => from_json(json)?,
                None => from_gguf(file, &content)?,
            };
            Ok(TextSide {
                tokenizer,
                gguf_template,
            })
        }
        ModelSource::Safetensors { tokenizer, .. } => Ok(TextSide {
            tokenizer: from_json(tokenizer)?,
            gguf_template: None,
        }),
    }
}

fn from_json(path: &Path) -> Result<Tokenizer> {
    Tokenizer::from_file(path).map_err(|e| Error::Tokenizer {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })
}

/// Builds the tokenizer from `tokenizer.ggml.*` metadata.
pub(crate) fn from_gguf(path: &Path, content: &gguf_file::Content) -> Result<Tokenizer> {
    let md = &content.metadata;
    for key in [
        "tokenizer.ggml.model",
        "tokenizer.ggml.tokens",
        "tokenizer.ggml.merges",
    ] {
        if !md.contains_key(key) {
            return Err(Error::MissingKey {
                path: path.to_path_buf(),
                key: key.into(),
            });
        }
    }
    let bad = |reason: String| Error::Tokenizer {
        path: path.to_path_buf(),
        reason: format!("embedded tokenizer: {reason}"),
    };
    let mut tokenizer = no_panic(&path.display().to_string(), || {
        Tokenizer::from_gguf(content).map_err(|e| bad(crate::error::candle_message(&e)))
    })?;
    let pre = md
        .get("tokenizer.ggml.pre")
        .and_then(|v| v.to_string().ok())
        .map(String::as_str);
    if !pre.is_some_and(|p| KNOWN_PRE.contains(&p)) {
        // candle's fallback adds a prefix space (the `tokenizers` default);
        // llama.cpp's GPT-2 style BPE and Hugging Face's tokenizer.json for
        // these models do not.
        tokenizer.with_pre_tokenizer(Some(ByteLevel::new(false, true, true)));
    }
    if tokenizer.get_vocab_size(true) == 0 {
        return Err(bad("no tokens".into()));
    }
    Ok(tokenizer)
}
