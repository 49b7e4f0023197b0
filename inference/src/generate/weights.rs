//! Seeded random weights: each tensor's values depend only on the seed and
//! the tensor's Hugging Face name, so every format gets the same numbers.

use crate::arch::{Hyper, Role};

/// SplitMix64.
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [-1, 1).
    fn unit(&mut self) -> f32 {
        ((self.next_u64() >> 40) as f32 / (1u64 << 23) as f32) - 1.0
    }
}

/// The values of `role` (shape `shape`, Hugging Face layout) for `seed`:
/// uniform, scaled so that activations stay in a sensible range through the
/// layers (norm weights around 1, biases small).
pub(super) fn weight(hp: &Hyper, seed: u64, role: Role, shape: &[usize]) -> Vec<f32> {
    let fan = |n: usize, gain: f32| gain * (3.0f32 / n as f32).sqrt();
    let (h, i) = (hp.hidden, hp.intermediate);
    let (scale, offset) = match role {
        Role::Embed => (1.7, 0.0),
        Role::OutputNorm | Role::AttnNorm(_) | Role::FfnNorm(_) => (0.2, 1.0),
        Role::Output => (fan(h, 3.0), 0.0),
        Role::Q(_) | Role::K(_) => (fan(h, 2.0), 0.0),
        Role::QBias(_) | Role::KBias(_) | Role::VBias(_) => (0.5, 0.0),
        Role::V(_) | Role::AttnOut(_) | Role::Gate(_) | Role::Up(_) => (fan(h, 1.0), 0.0),
        Role::Down(_) => (fan(i, 1.0), 0.0),
    };
    let name = role.hf_name();
    let hash = blake3::hash(name.as_bytes());
    let mut rng = Rng(seed ^ u64::from_le_bytes(hash.as_bytes()[..8].try_into().expect("8 bytes")));
    let n = shape.iter().product();
    (0..n).map(|_| offset + scale * rng.unit()).collect()
}

/// Reorders the rows of a Q or K matrix (or bias: `cols` = 1) from halves
/// to interleaved pairs per head, as llama.cpp's converter does for Llama.
pub(super) fn permute_rows(data: &[f32], rows: usize, cols: usize, n_head: usize) -> Vec<f32> {
    let hd = rows / n_head;
    let half = hd / 2;
    let mut out = vec![0f32; data.len()];
    for head in 0..n_head {
        for h in 0..2 {
            for i in 0..half {
                let src = head * hd + h * half + i;
                let dst = head * hd + 2 * i + h;
                out[dst * cols..(dst + 1) * cols]
                    .copy_from_slice(&data[src * cols..(src + 1) * cols]);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permutation_matches_llama_cpp() {
        // One head of dimension 4, one column: rows [0, 1, 2, 3] (halves
        // [0, 1] and [2, 3]) become interleaved pairs [0, 2, 1, 3].
        let out = permute_rows(&[0.0, 1.0, 2.0, 3.0], 4, 1, 1);
        assert_eq!(out, vec![0.0, 2.0, 1.0, 3.0]);
    }
}
