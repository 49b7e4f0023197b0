//! The real SmolLM2-135M-Instruct (Q4_1 GGUF, tokenizer and chat template
//! embedded). Fetched by `tests/fetch-smollm2`; every test here is skipped,
//! with a message, when the file is absent.

use std::ops::ControlFlow;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use cairn_inference::{
    DigestCache, Engine, GenerateParams, LoadOptions, Message, ModelSource, StopReason,
    TemplateSource,
};

fn model_path() -> Option<PathBuf> {
    let dir = std::env::var_os("CAIRN_MODEL_CACHE")
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/cairn/models"))
        })?;
    let p = dir.join("SmolLM2-135M-Instruct.Q4_1.gguf");
    p.is_file().then_some(p)
}

/// The engine, loaded once for all tests; `None` (and a message) without
/// the model.
fn engine() -> Option<Arc<Engine>> {
    static ENGINE: OnceLock<Option<Arc<Engine>>> = OnceLock::new();
    ENGINE
        .get_or_init(|| {
            let Some(p) = model_path() else {
                eprintln!(
                    "skipped: SmolLM2-135M-Instruct.Q4_1.gguf is not cached; run tests/fetch-smollm2"
                );
                return None;
            };
            let opts = LoadOptions {
                digest_cache: DigestCache::Off,
                ..LoadOptions::default()
            };
            Some(Arc::new(Engine::load(&p, &opts).expect("load SmolLM2")))
        })
        .clone()
}

/// The prompt for `question` through the model's own template. With the
/// template's default system prompt ("You are a helpful AI assistant named
/// SmolLM …") this 135M model answers the France question wrongly (greedy),
/// so the test gives a plain system prompt of its own.
fn chat_prompt(e: &Engine, question: &str) -> Vec<u32> {
    let messages = [
        Message::new("system", "You are a helpful assistant."),
        Message::new("user", question),
    ];
    let text = e.chat_template().render(&messages, true).unwrap();
    e.encode(&text).unwrap()
}

#[test]
fn tokenizer_and_template_come_from_the_gguf() {
    let Some(e) = engine() else { return };
    assert!(matches!(
        e.source(),
        ModelSource::Gguf {
            tokenizer: None,
            ..
        }
    ));
    assert_eq!(e.digest().files.len(), 1, "the GGUF covers its tokenizer");
    assert_eq!(e.chat_template().source(), &TemplateSource::Gguf);
    let im_end = e.tokenizer().token_to_id("<|im_end|>").unwrap();
    assert!(e.eos_tokens().contains(&im_end));
    let text = e
        .chat_template()
        .render(
            &[Message::new("user", "What is the capital of France?")],
            true,
        )
        .unwrap();
    assert!(text.starts_with("<|im_start|>system\n"), "{text:?}");
    assert!(
        text.ends_with(
            "<|im_start|>user\nWhat is the capital of France?<|im_end|>\n<|im_start|>assistant\n"
        ),
        "{text:?}"
    );
    // Special tokens are single tokens; ordinary text round-trips.
    let ids = e.encode(&text).unwrap();
    let im_start = e.tokenizer().token_to_id("<|im_start|>").unwrap();
    assert_eq!(ids[0], im_start);
    assert_eq!(ids.iter().filter(|&&t| t == im_end).count(), 2);
    let plain = "Paris is the capital of France. Ça va? 東京 😀";
    assert_eq!(e.decode(&e.encode(plain).unwrap()).unwrap(), plain);
}

#[test]
fn greedy_answer_names_paris_and_stops_at_im_end() {
    let Some(e) = engine() else { return };
    let prompt = chat_prompt(&e, "What is the capital of France?");
    let p = GenerateParams {
        max_new_tokens: 64,
        ..GenerateParams::default()
    };
    let g = e.generate_tokens(&prompt, &p).unwrap();
    assert!(g.text.contains("Paris"), "{:?}", g.text);
    assert_eq!(g.stop, StopReason::Eos, "{:?}", g.text);
    assert!(g.tokens.len() < 40, "{} tokens", g.tokens.len());

    // Streaming gives the same text in pieces.
    let mut chunks = Vec::new();
    let s = e
        .generate_stream(&prompt, &p, |c| {
            chunks.push(c.to_string());
            ControlFlow::Continue(())
        })
        .unwrap();
    assert_eq!(s.tokens, g.tokens);
    assert_eq!(chunks.concat(), g.text);
    assert!(chunks.len() > 3, "{chunks:?}");

    // A stop sequence ends the text before it.
    let p = GenerateParams {
        stop: vec!["Paris".into()],
        ..p
    };
    let s = e.generate_tokens(&prompt, &p).unwrap();
    assert_eq!(s.stop, StopReason::Stop);
    assert_eq!(s.text, g.text[..g.text.find("Paris").unwrap()]);
}

fn sampled(seed: u64) -> GenerateParams {
    GenerateParams {
        max_new_tokens: 24,
        temperature: 0.9,
        top_p: 0.95,
        top_k: Some(50),
        seed,
        repetition_penalty: 1.1,
        ..GenerateParams::default()
    }
}

#[test]
fn sampling_is_reproducible_and_concurrent_requests_are_independent() {
    let Some(e) = engine() else { return };
    let prompt = chat_prompt(&e, "Write a short poem about the sea.");
    let alone: Vec<_> = (0..4)
        .map(|s| e.generate_tokens(&prompt, &sampled(s)).unwrap())
        .collect();
    assert_eq!(
        e.generate_tokens(&prompt, &sampled(0)).unwrap().tokens,
        alone[0].tokens
    );
    assert!(
        alone.iter().any(|g| g.tokens != alone[0].tokens),
        "four seeds gave one answer"
    );
    let handles: Vec<_> = (0..4)
        .map(|s| {
            let (e, prompt) = (e.clone(), prompt.clone());
            std::thread::spawn(move || e.generate_tokens(&prompt, &sampled(s)).unwrap())
        })
        .collect();
    for (s, h) in handles.into_iter().enumerate() {
        let g = h.join().unwrap();
        assert_eq!((&g.tokens, &g.text), (&alone[s].tokens, &alone[s].text));
    }
}

/// Agreement with llama.cpp on the same file. The fixture
/// (`fixtures/smollm2-llama-cpp.json`, written by
/// `tests/llama-cpp/make-fixture`) holds llama.cpp's prompt tokens, greedy
/// tokens and top-5 logits for three prompts, computed with an F32 KV cache
/// as cairn keeps one. cairn must tokenize each prompt identically; fed
/// llama.cpp's tokens (teacher forcing), the differences between its logits
/// for llama.cpp's top-5 tokens must lie within `TOL` of llama.cpp's at
/// every step (differences, because a shift common to all logits changes no
/// probability), and its greedy choice must be llama.cpp's wherever
/// llama.cpp's two best logits are more than `2·TOL` apart (closer than
/// that, two implementations of Q4_1 × Q8_1 dot products may legitimately
/// differ).
#[test]
fn agrees_with_llama_cpp_on_the_same_file() {
    // Measured: on an F32 dequantization of this file the two agree within
    // 1e-5 (the same forward pass); on Q4_1 the largest deviation is 0.70
    // with cairn's kernels (1.05 with candle's): both quantize activations
    // to 8 bits, where a last-bit difference flips a rounding, and each
    // deviates from the F32 logits by a few tenths.
    const TOL: f32 = 1.0;
    let Some(e) = engine() else { return };
    let fixture: serde_json::Value =
        serde_json::from_str(include_str!("fixtures/smollm2-llama-cpp.json")).unwrap();
    let mut worst = 0f32;
    let mut compared = 0;
    for case in fixture["cases"].as_array().unwrap() {
        let prompt = case["prompt"].as_str().unwrap();
        let ids: Vec<u32> = serde_json::from_value(case["prompt_ids"].clone()).unwrap();
        assert_eq!(e.encode(prompt).unwrap(), ids, "tokenization of {prompt:?}");
        let steps = case["steps"].as_array().unwrap();
        let forced: Vec<u32> = steps
            .iter()
            .map(|s| s["id"].as_u64().unwrap() as u32)
            .collect();
        let logits = e.forced_logits(&ids, &forced).unwrap();
        for (k, (step, ours)) in steps.iter().zip(&logits).enumerate() {
            let top: Vec<(usize, f32)> = serde_json::from_value(step["top"].clone()).unwrap();
            let (best, best_logit) = top[0];
            for &(id, theirs) in &top[1..] {
                let (ours_rel, theirs_rel) = (ours[id] - ours[best], theirs - best_logit);
                let diff = (ours_rel - theirs_rel).abs();
                worst = worst.max(diff);
                assert!(
                    diff <= TOL,
                    "{prompt:?} step {k}: token {id} relative to {best}: cairn {ours_rel} vs llama.cpp {theirs_rel}"
                );
                compared += 1;
            }
            let argmax = (0..ours.len())
                .max_by(|&a, &b| ours[a].total_cmp(&ours[b]))
                .unwrap();
            if best_logit - top[1].1 > 2.0 * TOL {
                assert_eq!(argmax, best, "{prompt:?} step {k}");
            }
        }
    }
    eprintln!(
        "{compared} logit differences compared with llama.cpp's; largest deviation {worst:.4}"
    );
}
