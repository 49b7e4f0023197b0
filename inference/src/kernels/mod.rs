//! Our own CPU kernels for `y = x · Wᵀ` on GGUF weights in Q4_0, Q4_1 and
//! Q8_0 (candle's are scalar for Q4_1 and slow off 256-multiple widths).
//!
//! - [`format`]: the GGML block layouts, read straight from the GGUF bytes.
//! - [`activations`]: `x` quantized to 8 bits once per product (GGML's Q8_0,
//!   or Q8_1 with block sums for Q4_1), rounded as candle rounds it.
//! - `gemm`: parallel bands of output rows swept in `R × T` tiles (rows ×
//!   tokens), so a prompt loads each weight block once per 4 tokens.
//! - `scalar` / `avx2`: the micro-kernels computing one tile; AVX2 + FMA
//!   (+ F16C) is chosen at run time on x86-64, the portable one elsewhere.

mod activations;
#[cfg(target_arch = "x86_64")]
mod avx2;
mod format;
mod gemm;
mod scalar;
#[cfg(test)]
mod tests;

use std::sync::Arc;

use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::{bail, CpuStorage, CustomOp1, DType, Device, Layout, Result, Shape, Tensor};

use format::{BlockFormat, Q4_0, Q4_1, Q8_0};
use gemm::Isa;

/// The weight block formats the kernels multiply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WeightFormat {
    /// GGML Q4_0 (18-byte blocks of 32 weights).
    Q4_0,
    /// GGML Q4_1 (20-byte blocks of 32 weights).
    Q4_1,
    /// GGML Q8_0 (34-byte blocks of 32 weights).
    Q8_0,
}

impl WeightFormat {
    /// The format of a candle quantized type, if the kernels handle it.
    pub fn of(dtype: GgmlDType) -> Option<WeightFormat> {
        match dtype {
            GgmlDType::Q4_0 => Some(WeightFormat::Q4_0),
            GgmlDType::Q4_1 => Some(WeightFormat::Q4_1),
            GgmlDType::Q8_0 => Some(WeightFormat::Q8_0),
            _ => None,
        }
    }

    fn block_bytes(self) -> usize {
        match self {
            WeightFormat::Q4_0 => Q4_0::BYTES,
            WeightFormat::Q4_1 => Q4_1::BYTES,
            WeightFormat::Q8_0 => Q8_0::BYTES,
        }
    }
}

/// A `rows × cols` weight matrix multiplied by our kernels, read in place
/// from its `QTensor`'s GGUF blocks. Cloning shares the tensor.
#[derive(Debug, Clone)]
pub struct QuantizedWeights {
    format: WeightFormat,
    rows: usize,
    cols: usize,
    weight: Arc<QTensor>,
}

impl QuantizedWeights {
    /// The weights of a 2-D CPU `QTensor` in a format the kernels handle;
    /// `None` for other types or devices. Fails if the tensor is not 2-D or
    /// its bytes do not make `rows × cols / 32` whole blocks.
    pub fn new(weight: Arc<QTensor>) -> Result<Option<QuantizedWeights>> {
        let Some(format) = WeightFormat::of(weight.dtype()) else {
            return Ok(None);
        };
        if !matches!(weight.device(), Device::Cpu) {
            return Ok(None);
        }
        let (rows, cols) = weight.shape().dims2()?;
        let bytes = weight.data()?.len();
        let expected = rows * (cols / format::BLOCK) * format.block_bytes();
        if cols % format::BLOCK != 0 || bytes != expected {
            bail!("{format:?} weight {rows}×{cols}: {bytes} bytes, expected {expected}")
        }
        Ok(Some(QuantizedWeights {
            format,
            rows,
            cols,
            weight,
        }))
    }

    /// The block format.
    pub fn format(&self) -> WeightFormat {
        self.format
    }

    /// Whether `other` has the same format and width, so the two can be
    /// multiplied in one [`QuantizedWeights::forward_group`].
    pub fn same_shape_class(&self, other: &QuantizedWeights) -> bool {
        (self.format, self.cols) == (other.format, other.cols)
    }

    /// `x · Wᵀ` for `x` of shape `(…, cols)` (any dtype, any layout; F32
    /// inside): the result is `(…, rows)` in `x`'s dtype.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let dtype = x.dtype();
        let y = x
            .to_dtype(DType::F32)?
            .contiguous()?
            .apply_op1_no_bwd(self)?;
        y.to_dtype(dtype)
    }

    /// `x · Wᵀ` on raw data: `x` is `tokens × cols` row-major, the result
    /// `tokens × rows`.
    fn matmul(&self, isa: Isa, x: &[f32]) -> Result<Vec<f32>> {
        let mut y = Self::matmul_group(&[self], isa, x)?;
        Ok(y.pop().expect("one product per matrix"))
    }

    /// `x · W_iᵀ` for each of `group` (one format and width, checked), in
    /// one parallel sweep with `x` quantized once; `x` is `tokens × cols`
    /// row-major, each result `tokens × rows_i`.
    fn matmul_group(group: &[&QuantizedWeights], isa: Isa, x: &[f32]) -> Result<Vec<Vec<f32>>> {
        let Some(first) = group.first() else {
            return Ok(Vec::new());
        };
        let (format, cols) = (first.format, first.cols);
        if let Some(odd) = group.iter().find(|w| (w.format, w.cols) != (format, cols)) {
            bail!(
                "quantized matmul group: {:?} {}×{} beside {format:?} ×{cols}",
                odd.format,
                odd.rows,
                odd.cols
            )
        }
        // A CPU tensor lends its bytes: no copy.
        let bytes = group
            .iter()
            .map(|w| w.weight.data())
            .collect::<Result<Vec<_>>>()?;
        let parts: Vec<(&[u8], usize)> = bytes
            .iter()
            .zip(group)
            .map(|(b, w)| (&b[..], w.rows))
            .collect();
        Ok(match format {
            WeightFormat::Q4_0 => gemm::matmul::<Q4_0>(isa, &parts, cols, x),
            WeightFormat::Q4_1 => gemm::matmul::<Q4_1>(isa, &parts, cols, x),
            WeightFormat::Q8_0 => gemm::matmul::<Q8_0>(isa, &parts, cols, x),
        })
    }

    /// `x · W_iᵀ` for one token `x` (`cols` values) and each of `group`,
    /// which must share one format and width; each result has `rows_i`
    /// values.
    pub fn matmul_vec_group(group: &[&QuantizedWeights], x: &[f32]) -> Result<Vec<Vec<f32>>> {
        if let Some(w) = group.iter().find(|w| w.cols != x.len()) {
            bail!(
                "quantized matmul: {} inputs for a {}×{} weight",
                x.len(),
                w.rows,
                w.cols
            )
        }
        Self::matmul_group(group, Isa::best(), x)
    }

    /// `x · W_iᵀ` for each of `group`, which must share one format and
    /// width: as [`QuantizedWeights::forward`] for each, but the products
    /// run as one parallel sweep with `x` quantized once.
    pub fn forward_group(group: &[&QuantizedWeights], x: &Tensor) -> Result<Vec<Tensor>> {
        let dims = x.dims().to_vec();
        let dtype = x.dtype();
        let xs = x.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?;
        if let Some(w) = group.iter().find(|w| dims.last() != Some(&w.cols)) {
            bail!(
                "quantized matmul: input {dims:?} for a {}×{} weight",
                w.rows,
                w.cols
            )
        }
        let ys = Self::matmul_group(group, Isa::best(), &xs)?;
        ys.into_iter()
            .zip(group)
            .map(|(y, w)| {
                let mut out_dims = dims.clone();
                *out_dims.last_mut().expect("checked above") = w.rows;
                Tensor::from_vec(y, out_dims, x.device())?.to_dtype(dtype)
            })
            .collect()
    }
}

impl CustomOp1 for QuantizedWeights {
    fn name(&self) -> &'static str {
        "cairn-quantized-matmul"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let Some((start, end)) = layout.contiguous_offsets() else {
            bail!("quantized matmul: input not contiguous")
        };
        let dims = layout.shape().dims();
        if dims.last() != Some(&self.cols) {
            bail!(
                "quantized matmul: input {:?} for a {}×{} weight",
                layout.shape(),
                self.rows,
                self.cols
            )
        }
        let x = &storage.as_slice::<f32>()?[start..end];
        let y = self.matmul(Isa::best(), x)?;
        let mut out_dims = dims.to_vec();
        *out_dims.last_mut().expect("checked above") = self.rows;
        Ok((CpuStorage::F32(y), Shape::from(out_dims)))
    }
}
