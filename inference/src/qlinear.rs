//! A linear layer: `y = x · Wᵀ (+ b)`.
//!
//! `W` is `rows × cols` (output features, input features): a GGUF tensor
//! in any candle-supported type (F32/F16/BF16 are dequantized once,
//! quantized ones stay in their blocks) or a dense F32 tensor from
//! safetensors. On the CPU, Q4_0, Q4_1 and Q8_0 GGUF weights are multiplied
//! by our own kernels ([`crate::kernels`]), everything else by candle's
//! `QMatMul`.
//!
//! Setting the environment variable `CAIRN_KERNELS=candle` when the layers
//! are built sends every weight through candle's `QMatMul`, to compare the
//! two paths in one build.

use std::sync::Arc;

use candle_core::quantized::{QMatMul, QTensor};
use candle_core::{Module, Result, Tensor};

use crate::kernels::QuantizedWeights;

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
    weight: Weight,
    bias: Option<Tensor>,
    /// The bias's values, for [`QLinear::forward_group_vec`].
    bias_vec: Option<Vec<f32>>,
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
    pub fn new(weight: &Matrix, bias: Option<Tensor>) -> Result<Self> {
        let use_kernels = std::env::var("CAIRN_KERNELS").as_deref() != Ok("candle");
        Self::build(weight, bias, use_kernels)
    }

    /// [`QLinear::new`], with our kernels allowed or not.
    fn build(weight: &Matrix, bias: Option<Tensor>, use_kernels: bool) -> Result<Self> {
        let kernels = match weight {
            Matrix::Quantized(q) if use_kernels => QuantizedWeights::new(q.clone())?,
            _ => None,
        };
        let weight = match kernels {
            Some(weights) => Weight::Kernels(weights),
            None => Weight::Candle(weight.qmatmul()?),
        };
        let bias_vec = bias.as_ref().map(|b| b.to_vec1::<f32>()).transpose()?;
        Ok(QLinear {
            weight,
            bias,
            bias_vec,
        })
    }

    /// `x` is `(…, cols)`, in any layout; the result is `(…, rows)`.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let y = match &self.weight {
            Weight::Kernels(weights) => weights.forward(x)?,
            Weight::Candle(weights) => weights.forward(&x.contiguous()?)?,
        };
        self.add_bias(y)
    }

    /// [`QLinear::forward`] for each of `layers` on one input: when our
    /// kernels multiply them all, in one format and width, as one grouped
    /// product (one quantization of `x`, one parallel sweep), else one by
    /// one.
    pub fn forward_group(layers: &[&QLinear], x: &Tensor) -> Result<Vec<Tensor>> {
        match Self::groupable(layers) {
            Some(ws) => QuantizedWeights::forward_group(&ws, x)?
                .into_iter()
                .zip(layers)
                .map(|(y, l)| l.add_bias(y))
                .collect(),
            _ => layers.iter().map(|l| l.forward(x)).collect(),
        }
    }

    /// [`QLinear::forward_group`] on one token held in a plain vector
    /// (`cols` values): each result is a vector of `rows` values. Our
    /// kernels take the slice as it is; candle's path goes through a tensor.
    pub fn forward_group_vec(layers: &[&QLinear], x: &[f32]) -> Result<Vec<Vec<f32>>> {
        let ys = match Self::groupable(layers) {
            Some(ws) => QuantizedWeights::matmul_vec_group(&ws, x)?,
            _ => {
                let xt = Tensor::from_slice(x, (1, x.len()), &candle_core::Device::Cpu)?;
                let mut ys = Vec::with_capacity(layers.len());
                for l in layers {
                    let y = match &l.weight {
                        Weight::Kernels(w) => w.forward(&xt)?,
                        Weight::Candle(w) => w.forward(&xt)?,
                    };
                    ys.push(y.flatten_all()?.to_vec1::<f32>()?);
                }
                ys
            }
        };
        ys.into_iter()
            .zip(layers)
            .map(|(mut y, l)| {
                if let Some(b) = &l.bias_vec {
                    y.iter_mut().zip(b).for_each(|(y, b)| *y += b);
                }
                Ok(y)
            })
            .collect()
    }

    /// The layers' weights, when our kernels multiply them all in one
    /// format and width (so they can share one grouped product).
    fn groupable<'a>(layers: &[&'a QLinear]) -> Option<Vec<&'a QuantizedWeights>> {
        let ws: Vec<&QuantizedWeights> = layers
            .iter()
            .map(|l| match &l.weight {
                Weight::Kernels(w) => Some(w),
                Weight::Candle(_) => None,
            })
            .collect::<Option<_>>()?;
        ws.windows(2)
            .all(|p| p[0].same_shape_class(p[1]))
            .then_some(ws)
    }

    fn add_bias(&self, y: Tensor) -> Result<Tensor> {
        match &self.bias {
            None => Ok(y),
            Some(b) => y.broadcast_add(b),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use candle_core::quantized::{GgmlDType, QTensor};
    use candle_core::{Device, Tensor};

    use super::{Matrix, QLinear};

    /// Our kernels and candle's agree through the layer: 3-D and transposed
    /// (non-contiguous) inputs, bias included.
    #[test]
    fn kernels_and_candle_agree_on_any_input_layout() -> candle_core::Result<()> {
        let dev = Device::Cpu;
        let (rows, cols) = (37, 128);
        let w = Tensor::randn(0f32, 1.0, (rows, cols), &dev)?;
        let b = Tensor::randn(0f32, 1.0, rows, &dev)?;
        for dtype in [GgmlDType::Q4_0, GgmlDType::Q4_1, GgmlDType::Q8_0] {
            let m = Matrix::Quantized(Arc::new(QTensor::quantize(&w, dtype)?));
            let ours = QLinear::build(&m, Some(b.clone()), true)?;
            assert!(matches!(ours.weight, super::Weight::Kernels(_)));
            let theirs = QLinear::build(&m, Some(b.clone()), false)?;
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

    /// A grouped product gives each layer exactly what its own product
    /// gives: rows of several heights, biases, one token and several, and a
    /// group that mixes our kernels with candle's (taken one by one).
    #[test]
    fn grouped_products_equal_single_ones() -> candle_core::Result<()> {
        let dev = Device::Cpu;
        let cols = 128; // candle's Q4_1 needs an even number of blocks
        let layer =
            |rows: usize, dtype: GgmlDType, kernels: bool| -> candle_core::Result<QLinear> {
                let w = Tensor::randn(0f32, 1.0, (rows, cols), &dev)?;
                let b = Tensor::randn(0f32, 1.0, rows, &dev)?;
                let m = Matrix::Quantized(Arc::new(QTensor::quantize(&w, dtype)?));
                QLinear::build(&m, Some(b), kernels)
            };
        for dtype in [GgmlDType::Q4_0, GgmlDType::Q4_1, GgmlDType::Q8_0] {
            let groups = [
                vec![
                    layer(64, dtype, true)?,
                    layer(21, dtype, true)?,
                    layer(5, dtype, true)?,
                ],
                vec![layer(40, dtype, true)?, layer(40, dtype, false)?],
            ];
            for group in &groups {
                let refs: Vec<&QLinear> = group.iter().collect();
                for tokens in [1, 7] {
                    let x = Tensor::randn(0f32, 1.0, (tokens, cols), &dev)?;
                    let grouped = QLinear::forward_group(&refs, &x)?;
                    assert_eq!(grouped.len(), group.len());
                    for (g, l) in grouped.iter().zip(group) {
                        let single = l.forward(&x)?;
                        assert_eq!(g.dims(), single.dims());
                        let diff = (g - &single)?.abs()?.max_all()?.to_scalar::<f32>()?;
                        assert_eq!(diff, 0.0, "{dtype:?}, {tokens} tokens");
                    }
                }
            }
        }
        Ok(())
    }
}
