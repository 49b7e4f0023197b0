//! Broken model files give errors that name the file and the problem,
//! never a panic.

mod common;

use std::path::{Path, PathBuf};

use cairn_inference::generate::{generate, tokenizer_json, Format, GgufType, ModelSpec};
use cairn_inference::{DigestCache, Engine, Error, LoadOptions};
use candle_core::quantized::gguf_file;

fn opts() -> LoadOptions {
    LoadOptions {
        digest_cache: DigestCache::Off,
        ..LoadOptions::default()
    }
}

fn gguf(dir: &Path) -> PathBuf {
    generate(&ModelSpec::tiny_llama(7), Format::Gguf(GgufType::F32), dir).unwrap()
}

fn st(dir: &Path, shards: usize) -> PathBuf {
    generate(
        &ModelSpec::tiny_llama(7),
        Format::Safetensors { shards },
        dir,
    )
    .unwrap()
}

fn load_err(path: &Path) -> Error {
    let e = Engine::load(path, &opts()).expect_err("loading must fail");
    eprintln!("{e}");
    e
}

#[test]
fn truncated_gguf_is_an_error_at_every_cut() {
    let d = tempfile::tempdir().unwrap();
    let p = gguf(d.path());
    let bytes = std::fs::read(&p).unwrap();
    let n = bytes.len();
    // In the header, the metadata, the tensor table, the data, the last byte.
    for cut in [
        2,
        4,
        10,
        24,
        100,
        2_000,
        6_000,
        n / 3,
        n / 2,
        n - 100,
        n - 1,
    ] {
        std::fs::write(&p, &bytes[..cut]).unwrap();
        let e = load_err(&p);
        let msg = e.to_string();
        assert!(msg.contains("model-f32.gguf"), "cut {cut}: {msg}");
        assert!(
            matches!(
                e,
                Error::BadMagic { .. } | Error::Gguf { .. } | Error::Truncated { .. }
            ),
            "cut {cut}: {e:?}"
        );
    }
    std::fs::write(&p, &bytes[..n / 2]).unwrap();
    assert!(matches!(load_err(&p), Error::Truncated { .. }));
}

#[test]
fn wrong_magic_and_empty_file() {
    let d = tempfile::tempdir().unwrap();
    let p = gguf(d.path());
    let mut bytes = std::fs::read(&p).unwrap();
    bytes[..4].copy_from_slice(b"GGML");
    std::fs::write(&p, &bytes).unwrap();
    let e = load_err(&p);
    assert!(matches!(e, Error::BadMagic { .. }), "{e:?}");
    assert!(e.to_string().contains("not a GGUF file"));
    std::fs::write(&p, b"").unwrap();
    assert!(matches!(load_err(&p), Error::BadMagic { .. }));
    // A safetensors file given where GGUF is expected.
    let s = st(&d.path().join("st"), 1);
    let g = d.path().join("st/model.gguf");
    std::fs::copy(s.join("model.safetensors"), &g).unwrap();
    assert!(matches!(load_err(&g), Error::BadMagic { .. }));
}

#[test]
fn missing_or_mistyped_metadata_key() {
    let d = tempfile::tempdir().unwrap();
    let p = gguf(d.path());
    for key in [
        "llama.block_count",
        "llama.feed_forward_length",
        "llama.attention.layer_norm_rms_epsilon",
        "general.architecture",
    ] {
        let orig = std::fs::read(&p).unwrap();
        common::rewrite_gguf(&p, |md| md.retain(|(k, _)| k != key));
        let e = load_err(&p);
        match &e {
            Error::MissingKey { key: k, path } => {
                assert_eq!(k, key);
                assert_eq!(path, &p);
            }
            other => panic!("{key}: {other:?}"),
        }
        assert!(e.to_string().contains(key));
        std::fs::write(&p, orig).unwrap();
    }
    // Without head_count_kv, the KV heads default to head_count (as in
    // llama.cpp), and then the K matrix has the wrong shape.
    common::rewrite_gguf(&p, |md| {
        md.retain(|(k, _)| k != "llama.attention.head_count_kv")
    });
    match load_err(&p) {
        Error::TensorShape { tensor, .. } => assert_eq!(tensor, "blk.0.attn_k.weight"),
        other => panic!("{other:?}"),
    }
    // A string where an integer is expected, and absurd values.
    let p = gguf(&d.path().join("string"));
    common::rewrite_gguf(&p, |md| {
        for (k, v) in md.iter_mut() {
            if k == "llama.embedding_length" {
                *v = gguf_file::Value::String("64".into());
            }
        }
    });
    assert!(matches!(load_err(&p), Error::BadKey { .. }));
    let p = gguf(&d.path().join("zero"));
    common::rewrite_gguf(&p, |md| {
        for (k, v) in md.iter_mut() {
            if k == "llama.attention.head_count" {
                *v = gguf_file::Value::U32(0);
            }
        }
    });
    let e = load_err(&p);
    assert!(e.to_string().contains("head count must be non-zero"), "{e}");
    let p = gguf(&d.path().join("gpt2"));
    common::rewrite_gguf(&p, |md| {
        for (k, v) in md.iter_mut() {
            if k == "general.architecture" {
                *v = gguf_file::Value::String("gpt2".into());
            }
        }
    });
    assert!(matches!(load_err(&p), Error::UnsupportedArch { .. }));
    // More layers declared than present: a missing tensor.
    let p = gguf(&d.path().join("layers"));
    common::rewrite_gguf(&p, |md| {
        for (k, v) in md.iter_mut() {
            if k == "llama.block_count" {
                *v = gguf_file::Value::U32(3);
            }
        }
    });
    let e = load_err(&p);
    assert!(e.to_string().contains("blk.2."), "{e}");
}

#[test]
fn missing_files_shards_and_config() {
    let d = tempfile::tempdir().unwrap();
    let dir = st(d.path(), 2);
    std::fs::remove_file(dir.join("model-00002-of-00002.safetensors")).unwrap();
    let e = load_err(&dir);
    assert!(
        matches!(&e, Error::MissingShard { shard, .. } if shard == "model-00002-of-00002.safetensors"),
        "{e:?}"
    );

    let dir = st(&d.path().join("noconfig"), 1);
    std::fs::remove_file(dir.join("config.json")).unwrap();
    let e = load_err(&dir);
    assert!(
        matches!(&e, Error::Missing { path } if path.ends_with("config.json")),
        "{e:?}"
    );

    let dir = st(&d.path().join("noweights"), 1);
    std::fs::remove_file(dir.join("model.safetensors")).unwrap();
    assert!(matches!(load_err(&dir), Error::Missing { .. }));

    // Without tokenizer.json the GGUF's embedded tokenizer is used; without
    // that either, the error names the file and the key.
    let g = gguf(&d.path().join("notok"));
    std::fs::remove_file(g.with_file_name("tokenizer.json")).unwrap();
    Engine::load(&g, &opts()).expect("embedded tokenizer");
    common::rewrite_gguf(&g, |md| md.retain(|(k, _)| k != "tokenizer.ggml.tokens"));
    let e = load_err(&g);
    assert!(
        matches!(&e, Error::MissingKey { path, key } if path == &g && key == "tokenizer.ggml.tokens"),
        "{e:?}"
    );
    let g = gguf(&d.path().join("badtok"));
    std::fs::remove_file(g.with_file_name("tokenizer.json")).unwrap();
    common::rewrite_gguf(&g, |md| {
        for (k, v) in md.iter_mut() {
            if k == "tokenizer.ggml.merges" {
                *v = gguf_file::Value::U32(7);
            }
        }
    });
    let e = load_err(&g);
    assert!(
        matches!(&e, Error::Tokenizer { path, .. } if path == &g),
        "{e:?}"
    );
    assert!(e.to_string().contains("merges"), "{e}");

    assert!(matches!(
        load_err(&d.path().join("nothing.gguf")),
        Error::Missing { .. }
    ));
}

#[test]
fn bad_config_and_truncated_or_incomplete_safetensors() {
    let d = tempfile::tempdir().unwrap();
    let dir = st(d.path(), 1);
    let cfg = std::fs::read_to_string(dir.join("config.json")).unwrap();
    std::fs::write(dir.join("config.json"), "{ not json").unwrap();
    assert!(matches!(load_err(&dir), Error::Invalid { .. }));
    std::fs::write(
        dir.join("config.json"),
        cfg.replace("\"hidden_size\"", "\"hidden\""),
    )
    .unwrap();
    assert!(matches!(load_err(&dir), Error::Invalid { .. }));
    // More layers than the weights hold: a missing tensor, not candle's panic.
    std::fs::write(
        dir.join("config.json"),
        cfg.replace("\"num_hidden_layers\": 2", "\"num_hidden_layers\": 3"),
    )
    .unwrap();
    let e = load_err(&dir);
    assert!(matches!(e, Error::MissingTensor { .. }), "{e:?}");
    // A wrong dimension: a shape error naming the tensor.
    std::fs::write(
        dir.join("config.json"),
        cfg.replace("\"intermediate_size\": 128", "\"intermediate_size\": 96"),
    )
    .unwrap();
    assert!(matches!(load_err(&dir), Error::TensorShape { .. }));
    std::fs::write(dir.join("config.json"), &cfg).unwrap();

    let w = dir.join("model.safetensors");
    let bytes = std::fs::read(&w).unwrap();
    for cut in [0, 5, 100, bytes.len() / 2, bytes.len() - 1] {
        std::fs::write(&w, &bytes[..cut]).unwrap();
        let e = load_err(&dir);
        assert!(
            matches!(&e, Error::Invalid { path, .. } if path == &w),
            "{cut}: {e:?}"
        );
    }
}

#[test]
fn tokenizer_vocab_mismatch_and_garbage_tokenizer() {
    let d = tempfile::tempdir().unwrap();
    let g = gguf(d.path());
    let tok = g.with_file_name("tokenizer.json");
    // 80 merges: 339 tokens for a 300-token model.
    let (big, n) = tokenizer_json(80);
    assert_eq!(n, 339);
    std::fs::write(&tok, serde_json::to_vec(&big).unwrap()).unwrap();
    let e = load_err(&g);
    assert!(
        matches!(
            e,
            Error::VocabMismatch {
                tokenizer: 339,
                model: 300,
                ..
            }
        ),
        "{e:?}"
    );
    // A smaller tokenizer is fine (models often pad their vocabulary).
    let (small, _) = tokenizer_json(10);
    std::fs::write(&tok, serde_json::to_vec(&small).unwrap()).unwrap();
    Engine::load(&g, &opts()).unwrap();

    std::fs::write(&tok, b"{\"model\": 3}").unwrap();
    let e = load_err(&g);
    assert!(
        matches!(&e, Error::Tokenizer { path, .. } if path == &tok),
        "{e:?}"
    );
}

#[test]
fn bad_requests_are_errors() {
    let d = tempfile::tempdir().unwrap();
    let e = Engine::load(&gguf(d.path()), &opts()).unwrap();
    let p = cairn_inference::GenerateParams::default();
    assert!(matches!(e.generate("", &p), Err(Error::Request(_))));
    assert!(matches!(
        e.generate_tokens(&[999], &p),
        Err(Error::Request(_))
    ));
    let long = vec![5u32; e.context_len()];
    assert!(matches!(
        e.generate_tokens(&long, &p),
        Err(Error::Request(_))
    ));
}
