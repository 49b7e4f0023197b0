//! Embedded GGUF tokenizers, chat templates, sampling and streaming on
//! generated tiny models.

mod common;

use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use cairn_inference::generate::{generate, Format, GgufType, ModelSpec};
use cairn_inference::{
    ChatTemplate, DigestCache, Engine, Error, GenerateParams, LoadOptions, Message, ModelSource,
    StopReason, TemplateSource,
};
use candle_core::quantized::gguf_file;

const LLAMA3: &str = include_str!("fixtures/llama3-instruct.jinja");
const QWEN25: &str = include_str!("fixtures/qwen2.5-instruct.jinja");

fn opts() -> LoadOptions {
    LoadOptions {
        digest_cache: DigestCache::Off,
        ..LoadOptions::default()
    }
}

fn tiny_gguf(dir: &Path) -> PathBuf {
    generate(&ModelSpec::tiny_llama(11), Format::Gguf(GgufType::F32), dir).expect("generate")
}

/// Adds (or replaces) one string key in a GGUF file's metadata.
fn set_gguf_string(path: &Path, key: &str, value: &str) {
    common::rewrite_gguf(path, |md| {
        md.retain(|(k, _)| k != key);
        md.push((key.into(), gguf_file::Value::String(value.into())));
    });
}

fn msgs(list: &[(&str, &str)]) -> Vec<Message> {
    list.iter().map(|(r, c)| Message::new(*r, *c)).collect()
}

#[test]
fn embedded_gguf_tokenizer_matches_tokenizer_json() {
    let d = tempfile::tempdir().unwrap();
    let g = tiny_gguf(d.path());
    let with_json = Engine::load(&g, &opts()).unwrap();
    let tok_json = g.with_file_name("tokenizer.json");
    std::fs::remove_file(&tok_json).unwrap();
    let source = ModelSource::open(&g).unwrap();
    assert_eq!(
        source,
        ModelSource::Gguf {
            file: g.clone(),
            tokenizer: None
        }
    );
    assert_eq!(source.tokenizer_path(), g.as_path());
    let names: Vec<_> = source
        .behaviour_files()
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["model-f32.gguf", "tokenizer_config.json"]);
    let embedded = Engine::load_source(source, &opts()).unwrap();
    assert_ne!(embedded.digest().digest, with_json.digest().digest);
    for text in [
        "What is the capital of France?",
        "  leading spaces, tabs\tand\nnewlines",
        "héllo wörld ✓ 😀",
        "<s>special</s> tokens<|endoftext|>",
        "",
    ] {
        let a = with_json.encode(text).unwrap();
        let b = embedded.encode(text).unwrap();
        assert_eq!(a, b, "{text:?}");
        assert_eq!(embedded.decode(&b).unwrap(), with_json.decode(&a).unwrap());
    }
    // Same weights, same tokenizer: same greedy answer.
    let p = GenerateParams {
        max_new_tokens: 12,
        stop_at_eos: false,
        ..GenerateParams::default()
    };
    assert_eq!(
        embedded.generate("Hello", &p).unwrap().tokens,
        with_json.generate("Hello", &p).unwrap().tokens
    );
}

#[test]
fn llama3_template_renders_headers_and_bos() {
    let t = ChatTemplate::new(
        LLAMA3,
        TemplateSource::TokenizerConfig,
        None,
        "<|begin_of_text|>",
        "<|eot_id|>",
    )
    .unwrap();
    let p = t
        .render(
            &msgs(&[("system", "Be brief."), ("user", "  Hi there \n")]),
            true,
        )
        .unwrap();
    assert_eq!(
        p,
        "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nBe brief.<|eot_id|>\
         <|start_header_id|>user<|end_header_id|>\n\nHi there<|eot_id|>\
         <|start_header_id|>assistant<|end_header_id|>\n\n"
    );
    let p = t.render(&msgs(&[("user", "Hi")]), false).unwrap();
    assert_eq!(
        p,
        "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>"
    );
}

#[test]
fn qwen25_template_adds_its_default_system_prompt() {
    let t = ChatTemplate::new(QWEN25, TemplateSource::Gguf, None, "", "<|im_end|>").unwrap();
    let p = t.render(&msgs(&[("user", "Hi")]), true).unwrap();
    assert_eq!(
        p,
        "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n\
         <|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
    );
    let p = t
        .render(
            &msgs(&[
                ("system", "S"),
                ("user", "Q"),
                ("assistant", "A"),
                ("user", "Q2"),
            ]),
            false,
        )
        .unwrap();
    assert_eq!(
        p,
        "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nQ<|im_end|>\n\
         <|im_start|>assistant\nA<|im_end|>\n<|im_start|>user\nQ2<|im_end|>\n"
    );
}

#[test]
fn template_errors_are_errors_and_hostile_templates_stop() {
    let new = |text: &str| ChatTemplate::new(text, TemplateSource::Gguf, None, "", "");
    let e = new("{% for m in messages %}").unwrap_err();
    assert!(matches!(e, Error::Template { .. }), "{e:?}");
    let t = new("{% if messages[0].role != 'user' %}{{ raise_exception('first must be user') }}{% endif %}ok").unwrap();
    assert_eq!(t.render(&msgs(&[("user", "x")]), true).unwrap(), "ok");
    let e = t.render(&msgs(&[("system", "x")]), true).unwrap_err();
    assert!(e.to_string().contains("first must be user"), "{e}");
    // Python string methods (pycompat) as HF templates use them.
    let t =
        new("{{ messages[0].content.strip().upper() }}|{{ messages[0].role.startswith('us') }}")
            .unwrap();
    assert_eq!(
        t.render(&msgs(&[("user", "  hi ")]), false).unwrap(),
        "HI|True"
    );
    // An endless template runs out of fuel instead of hanging.
    let t = new(
        "{% for i in range(1000000000) %}{% for j in range(1000000000) %}x{% endfor %}{% endfor %}",
    )
    .unwrap();
    let started = std::time::Instant::now();
    let e = t.render(&msgs(&[("user", "x")]), true).unwrap_err();
    assert!(matches!(e, Error::Template { .. }), "{e:?}");
    assert!(started.elapsed().as_secs() < 30);
    // A missing variable is not a panic either.
    let t = new("{{ messages[5].content.foo() }}").unwrap();
    assert!(t.render(&msgs(&[("user", "x")]), true).is_err());
}

#[test]
fn template_comes_from_gguf_then_tokenizer_config_then_fallback() {
    let d = tempfile::tempdir().unwrap();
    let g = tiny_gguf(d.path());
    let e = Engine::load(&g, &opts()).unwrap();
    assert_eq!(e.chat_template().source(), &TemplateSource::Fallback);
    assert_eq!(e.chat_template().bos_token(), "<s>");
    assert_eq!(e.chat_template().eos_token(), "</s>");

    let cfg_path = g.with_file_name("tokenizer_config.json");
    let mut cfg: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&cfg_path).unwrap()).unwrap();
    cfg["chat_template"] = serde_json::json!([
        {"name": "tool_use", "template": "tools"},
        {"name": "default", "template": "{{ bos_token }}{% for m in messages %}[{{ m.role }}]{{ m.content }}{% endfor %}{{ eos_token }}"}
    ]);
    std::fs::write(&cfg_path, serde_json::to_vec(&cfg).unwrap()).unwrap();
    let e = Engine::load(&g, &opts()).unwrap();
    assert_eq!(e.chat_template().source(), &TemplateSource::TokenizerConfig);
    assert_eq!(
        e.chat_template()
            .render(&msgs(&[("user", "hi")]), true)
            .unwrap(),
        "<s>[user]hi</s>"
    );

    set_gguf_string(
        &g,
        "tokenizer.chat_template",
        "from gguf {{ messages|length }}",
    );
    let e = Engine::load(&g, &opts()).unwrap();
    assert_eq!(e.chat_template().source(), &TemplateSource::Gguf);
    assert_eq!(
        e.chat_template()
            .render(&msgs(&[("user", "hi")]), true)
            .unwrap(),
        "from gguf 1"
    );

    // A template that does not compile makes a clear load error naming the file.
    set_gguf_string(&g, "tokenizer.chat_template", "{% if %}");
    let err = Engine::load(&g, &opts()).unwrap_err();
    assert!(
        matches!(&err, Error::Template { path: Some(p), .. } if p == &g),
        "{err:?}"
    );
}

#[test]
fn template_end_of_turn_tokens_end_generation() {
    let d = tempfile::tempdir().unwrap();
    let g = tiny_gguf(d.path());
    let e = Engine::load(&g, &opts()).unwrap();
    // The tiny vocabulary has no <|im_end|>: only the model's EOS.
    assert_eq!(e.eos_tokens(), &[cairn_inference::generate::EOS_ID]);
    // <|endoftext|> is in the vocabulary; a template that uses it adds it.
    set_gguf_string(
        &g,
        "tokenizer.chat_template",
        "{% for m in messages %}{{ m.content }}<|endoftext|>{% endfor %}",
    );
    let e = Engine::load(&g, &opts()).unwrap();
    let eot = e.tokenizer().token_to_id("<|endoftext|>").unwrap();
    assert_eq!(e.eos_tokens(), &[cairn_inference::generate::EOS_ID, eot]);
}

fn stream(
    e: &Engine,
    prompt: &[u32],
    p: &GenerateParams,
) -> (cairn_inference::Generation, Vec<String>) {
    let mut chunks = Vec::new();
    let g = e
        .generate_stream(prompt, p, |c| {
            chunks.push(c.to_string());
            ControlFlow::Continue(())
        })
        .unwrap();
    (g, chunks)
}

#[test]
fn streamed_random_bytes_concatenate_to_the_text() {
    let d = tempfile::tempdir().unwrap();
    let e = Engine::load(&tiny_gguf(d.path()), &opts()).unwrap();
    let prompt = e.encode("The weather in Paris is").unwrap();
    let mut multibyte = 0;
    for seed in 0..6 {
        let p = GenerateParams {
            max_new_tokens: 48,
            stop_at_eos: false,
            temperature: 1.5,
            seed,
            ..GenerateParams::default()
        };
        let (g, chunks) = stream(&e, &prompt, &p);
        assert_eq!(chunks.concat(), g.text, "seed {seed}");
        assert_eq!(g.text, e.decode(&g.tokens).unwrap(), "seed {seed}");
        assert!(chunks.iter().all(|c| !c.is_empty()));
        multibyte += g.text.chars().filter(|c| c.len_utf8() > 1).count();
        // Same seed, same tokens; the non-streaming call agrees.
        let again = e.generate_tokens(&prompt, &p).unwrap();
        assert_eq!(
            (&again.tokens, &again.text, again.stop),
            (&g.tokens, &g.text, g.stop)
        );
    }
    assert!(
        multibyte > 0,
        "random byte tokens produced no multi-byte text"
    );
}

#[test]
fn cancelling_stops_generation_and_stop_sequences_cut_the_text() {
    let d = tempfile::tempdir().unwrap();
    let e = Engine::load(&tiny_gguf(d.path()), &opts()).unwrap();
    let prompt = e.encode("Hello, world!").unwrap();
    let p = GenerateParams {
        max_new_tokens: 40,
        stop_at_eos: false,
        ..GenerateParams::default()
    };
    let full = e.generate_tokens(&prompt, &p).unwrap();
    assert_eq!(full.stop, StopReason::MaxTokens);
    let mut chunks = Vec::new();
    let g = e
        .generate_stream(&prompt, &p, |c| {
            chunks.push(c.to_string());
            if chunks.len() == 2 {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        })
        .unwrap();
    assert_eq!(g.stop, StopReason::Cancelled);
    assert_eq!(chunks.concat(), g.text);
    assert!(g.tokens.len() < full.tokens.len());
    assert!(full.tokens.starts_with(&g.tokens));

    // A stop sequence taken from the middle of the greedy text.
    let chars: Vec<char> = full.text.chars().collect();
    let stop: String = chars[chars.len() / 2..chars.len() / 2 + 2].iter().collect();
    let before = &full.text[..full.text.find(&stop).unwrap()];
    let p = GenerateParams {
        stop: vec![stop.clone()],
        ..p
    };
    let (g, chunks) = stream(&e, &prompt, &p);
    assert_eq!((g.text.as_str(), g.stop), (before, StopReason::Stop));
    assert_eq!(chunks.concat(), before);
}

#[test]
fn concurrent_requests_match_sequential_ones() {
    let d = tempfile::tempdir().unwrap();
    let e = Arc::new(Engine::load(&tiny_gguf(d.path()), &opts()).unwrap());
    let prompt = e.encode("An auditor can verify offline").unwrap();
    let params = |seed: u64| GenerateParams {
        max_new_tokens: 24,
        stop_at_eos: false,
        temperature: 0.8,
        top_p: 0.95,
        seed,
        ..GenerateParams::default()
    };
    let alone: Vec<_> = (0..4)
        .map(|s| e.generate_tokens(&prompt, &params(s)).unwrap().tokens)
        .collect();
    let handles: Vec<_> = (0..4)
        .map(|s| {
            let (e, prompt) = (e.clone(), prompt.clone());
            std::thread::spawn(move || e.generate_tokens(&prompt, &params(s)).unwrap().tokens)
        })
        .collect();
    let together: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    assert_eq!(together, alone);
    assert_ne!(alone[0], alone[1], "different seeds differ");
}
