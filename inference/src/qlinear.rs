//! A linear layer: `y = x · Wᵀ (+ b)`.
//!
//! `W` is `rows × cols` (output features, input features): a GGUF tensor
//! in any candle-supported type (F32/F16/BF16 are dequantized once,
//! quantized ones stay in their blocks) or a dense F32 tensor from
//! safetensors.

use std::sync::Arc;

use candle_core::quantized::{QMatMul, QTensor};
use candle_core::{Module, Result, Tensor};

/// A weight matrix as a file holds it.
#[derive(Debug, Clone)]
pub(crate) enum Matrix {
    /// GGUF blocks (shared: a tied embedding is also the output matrix).
    Quantized(Arc<QTensor>),
    /// A dense F32 tensor.
    Dense(Tensor),
}

impl Matrix {
    /// candle's matmul over it (also its embedding lookup).
    pub fn qmatmul(&self) -> Result<QMatMul> {
        match self {
            Matrix::Quantized(q) => QMatMul::from_arc(q.clone()),
            Matrix::Dense(t) => Ok(QMatMul::Tensor(t.clone())),
        }
    }
}

/// A weight matrix, optionally with a bias, applied to the last dimension of
/// its input. Cloning shares the weights.
#[derive(Debug, Clone)]
pub(crate) struct QLinear {
    weight: QMatMul,
    bias: Option<Tensor>,
}

impl QLinear {
    /// A layer from a 2-D weight (`rows × cols`) and an optional bias of
    /// `rows` elements.
    pub fn new(weight: &Matrix, bias: Option<Tensor>) -> Result<Self> {
        Ok(QLinear {
            weight: weight.qmatmul()?,
            bias,
        })
    }

    /// `x` is `(…, cols)`; the result is `(…, rows)`.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let y = self.weight.forward(x)?;
        match &self.bias {
            None => Ok(y),
            Some(b) => y.broadcast_add(b),
        }
    }
}
