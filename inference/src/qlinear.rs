//! A linear layer over GGUF weights: `y = x · Wᵀ (+ b)`.
//!
//! `W` is a GGUF tensor of `rows × cols` (candle order: output features,
//! input features) in any candle-supported type. On the CPU, Q4_0, Q4_1 and
//! Q8_0 weights go through our own kernels ([`crate::kernels`]); everything
//! else through candle's `QMatMul` (F32/F16/BF16 weights are dequantized
//! once, quantized ones stay in their blocks).
//!
//! Setting the environment variable `CAIRN_KERNELS=candle` when the layers
//! are built sends every weight through candle's `QMatMul`, to compare the
//! two paths in one build.

use std::sync::Arc;

use candle_core::quantized::{QMatMul, QTensor};
use candle_core::{Module, Result, Tensor};

use crate::kernels::QuantizedWeights;

/// A weight matrix, optionally with a bias, applied to the last dimension of
/// its input. Cloning shares the weights.
#[derive(Debug, Clone)]
pub(crate) struct QLinear {
    weight: Weight,
    bias: Option<Tensor>,
    rows: usize,
}

/// Who multiplies.
#[derive(Debug, Clone)]
enum Weight {
    Kernels(QuantizedWeights),
    Candle(QMatMul),
}

impl QLinear {
    /// A layer from a 2-D weight (`rows × cols`) and an optional bias of
    /// `rows` elements.
    pub fn new(weight: QTensor, bias: Option<Tensor>) -> Result<Self> {
        let use_kernels = std::env::var("CAIRN_KERNELS").as_deref() != Ok("candle");
        Self::build(weight, bias, use_kernels)
    }

    /// [`QLinear::new`], with our kernels allowed or not.
    fn build(weight: QTensor, bias: Option<Tensor>, use_kernels: bool) -> Result<Self> {
        let (rows, _cols) = weight.shape().dims2()?;
        let kernels = match use_kernels {
            true => QuantizedWeights::from_qtensor(&weight)?,
            false => None,
        };
        let weight = match kernels {
            Some(weights) => Weight::Kernels(weights),
            None => Weight::Candle(QMatMul::from_arc(Arc::new(weight))?),
        };
        Ok(QLinear { weight, bias, rows })
    }

    /// Output features.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// `x` is `(…, cols)`, in any layout; the result is `(…, rows)`.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let y = match &self.weight {
            Weight::Kernels(weights) => weights.forward(x)?,
            Weight::Candle(weights) => weights.forward(&x.contiguous()?)?,
        };
        match &self.bias {
            None => Ok(y),
            Some(b) => y.broadcast_add(b),
        }
    }
}

#[cfg(test)]
mod tests {
    use candle_core::quantized::GgmlDType;
    use candle_core::{Device, Tensor};

    use super::QLinear;

    /// Our kernels and candle's agree through the layer: 3-D and transposed
    /// (non-contiguous) inputs, bias included.
    #[test]
    fn kernels_and_candle_agree_on_any_input_layout() -> candle_core::Result<()> {
        let dev = Device::Cpu;
        let (rows, cols) = (37, 128);
        let w = Tensor::randn(0f32, 1.0, (rows, cols), &dev)?;
        let b = Tensor::randn(0f32, 1.0, rows, &dev)?;
        for dtype in [GgmlDType::Q4_0, GgmlDType::Q4_1, GgmlDType::Q8_0] {
            let q = || candle_core::quantized::QTensor::quantize(&w, dtype);
            let ours = QLinear::build(q()?, Some(b.clone()), true)?;
            assert!(matches!(ours.weight, super::Weight::Kernels(_)));
            let theirs = QLinear::build(q()?, Some(b.clone()), false)?;
            let x3 = Tensor::randn(0f32, 1.0, (2, 5, cols), &dev)?;
            let xt = Tensor::randn(0f32, 1.0, (cols, 3), &dev)?.t()?;
            for x in [x3, xt] {
                let (a, c) = (ours.forward(&x)?, theirs.forward(&x)?);
                assert_eq!(a.dims(), c.dims());
                let err = (a - &c)?.abs()?.max_all()?.to_scalar::<f32>()?;
                let scale = c.abs()?.max_all()?.to_scalar::<f32>()?;
                assert!(err <= 1e-4 * scale, "{dtype:?}: {err} vs {scale}");
            }
        }
        Ok(())
    }
}
