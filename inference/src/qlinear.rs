//! A linear layer over GGUF weights: `y = x · Wᵀ (+ b)`.
//!
//! `W` is a GGUF tensor of `rows × cols` (candle order: output features,
//! input features) in any candle-supported type; F32/F16/BF16 weights are
//! dequantized once, quantized ones stay in their blocks.

use std::sync::Arc;

use candle_core::quantized::{QMatMul, QTensor};
use candle_core::{Module, Result, Tensor};

/// A weight matrix, optionally with a bias, applied to the last dimension of
/// its input. Cloning shares the weights.
#[derive(Debug, Clone)]
pub(crate) struct QLinear {
    weight: QMatMul,
    bias: Option<Tensor>,
    rows: usize,
}

impl QLinear {
    /// A layer from a 2-D weight (`rows × cols`) and an optional bias of
    /// `rows` elements.
    pub fn new(weight: QTensor, bias: Option<Tensor>) -> Result<Self> {
        let (rows, _cols) = weight.shape().dims2()?;
        Ok(QLinear {
            weight: QMatMul::from_arc(Arc::new(weight))?,
            bias,
            rows,
        })
    }

    /// Output features.
    pub fn rows(&self) -> usize {
        self.rows
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
