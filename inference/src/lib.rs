//! # cairn-inference
//!
//! Runs open-weight models (Llama, Qwen2) with candle and reports what it
//! is (model digest) and what it did (tokens, timings). It knows nothing of
//! auditing.
//!
//! This crate is filled by the inference work (see the README's roadmap);
//! it exports nothing yet and nothing in cairn depends on it so far.
