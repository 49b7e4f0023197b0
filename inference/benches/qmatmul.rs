//! Quantized matmul, our kernels (`cairn_inference::kernels`) against
//! candle's `QMatMul`, at the matrix shapes of SmolLM2-135M (Q4_1) and
//! Qwen2.5-0.5B (Q4_0, and Q8_0 for one), for 1 token (decode) and 128
//! (a prompt). Both go through a candle `Tensor`, as in the model.
//!
//! Throughput is counted in FLOPs (2 per multiply-add), so criterion's
//! "Gelem/s" reads as GFLOP/s. Run with `cargo bench -p cairn-inference
//! --bench qmatmul`; `RAYON_NUM_THREADS` sets our thread count.

use cairn_inference::kernels::QuantizedWeights;
use std::sync::Arc;

use candle_core::quantized::{GgmlDType, QMatMul, QTensor};
use candle_core::{Device, Module, Tensor};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};

/// `(model, matrix, type, rows, cols)`.
const SHAPES: [(&str, &str, GgmlDType, usize, usize); 7] = [
    ("smollm2", "attn_q", GgmlDType::Q4_1, 576, 576),
    ("smollm2", "ffn_up", GgmlDType::Q4_1, 1536, 576),
    ("smollm2", "ffn_down", GgmlDType::Q4_1, 576, 1536),
    ("qwen2.5-0.5b", "attn_q", GgmlDType::Q4_0, 896, 896),
    ("qwen2.5-0.5b", "ffn_up", GgmlDType::Q4_0, 4864, 896),
    ("qwen2.5-0.5b", "ffn_down", GgmlDType::Q4_0, 896, 4864),
    ("qwen2.5-0.5b", "ffn_up", GgmlDType::Q8_0, 4864, 896),
];

fn qmatmul(c: &mut Criterion) {
    let dev = Device::Cpu;
    for (model, matrix, dtype, rows, cols) in SHAPES {
        let w = Tensor::randn(0f32, 1.0, (rows, cols), &dev).unwrap();
        let q = Arc::new(QTensor::quantize(&w, dtype).unwrap());
        let ours = QuantizedWeights::new(q.clone()).unwrap().unwrap();
        let theirs = QMatMul::from_arc(q).unwrap();
        for tokens in [1, 128] {
            let x = Tensor::randn(0f32, 1.0, (tokens, cols), &dev).unwrap();
            let name = format!("{model} {matrix} {dtype:?} {rows}x{cols}, {tokens} tok");
            let mut group = c.benchmark_group(name);
            group.throughput(Throughput::Elements((2 * rows * cols * tokens) as u64));
            group.bench_function("cairn", |b| b.iter(|| ours.forward(&x).unwrap()));
            group.bench_function("candle", |b| b.iter(|| theirs.forward(&x).unwrap()));
            group.finish();
        }
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(20)
        .warm_up_time(std::time::Duration::from_millis(500))
        .measurement_time(std::time::Duration::from_secs(2));
    targets = qmatmul
}
criterion_main!(benches);
