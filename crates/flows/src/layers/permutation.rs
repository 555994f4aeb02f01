//! Coordinate permutations: reversal and seeded random orders (log-det 0).

use candle_core::{Device, Tensor};

use crate::error::{FlowError, Result};
use crate::flow::{zero_log_det, Conditioning, Flow};
use flowvae_nn::{permutation, seeded};

/// `y_i = x_{order[i]}` on `(B, D)`.
#[derive(Debug)]
pub struct Permutation {
    name: &'static str,
    order: Vec<usize>,
    forward_index: Tensor,
    inverse_index: Tensor,
}

impl Permutation {
    /// The permutation `order` of `0..D`.
    pub fn new(name: &'static str, order: Vec<usize>, device: &Device) -> Result<Self> {
        let d = order.len();
        let mut inverse = vec![usize::MAX; d];
        for (i, &o) in order.iter().enumerate() {
            if o >= d || inverse[o] != usize::MAX {
                return Err(FlowError::InvalidConfig {
                    field: name.into(),
                    message: format!("{order:?} is not a permutation of 0..{d}"),
                });
            }
            inverse[o] = i;
        }
        let to_index = |v: &[usize]| {
            let v: Vec<u32> = v.iter().map(|&i| i as u32).collect();
            Tensor::from_vec(v, d, device)
        };
        Ok(Self {
            name,
            forward_index: to_index(&order)?,
            inverse_index: to_index(&inverse)?,
            order,
        })
    }

    /// Reverses the coordinates.
    pub fn reverse(dim: usize, device: &Device) -> Result<Self> {
        Self::new("reverse", (0..dim).rev().collect(), device)
    }

    /// A uniformly random order drawn from `seed`.
    pub fn random(dim: usize, seed: u64, device: &Device) -> Result<Self> {
        Self::new(
            "permute",
            permutation(&mut seeded(seed, flowvae_nn::Stream::Permutation), dim),
            device,
        )
    }

    /// The order, `y_i = x_{order[i]}`.
    pub fn order(&self) -> &[usize] {
        &self.order
    }
}

impl Flow for Permutation {
    fn name(&self) -> String {
        self.name.into()
    }
    fn dim(&self) -> usize {
        self.order.len()
    }
    fn forward(&self, x: &Tensor, _cond: Conditioning<'_>) -> Result<(Tensor, Tensor)> {
        Ok((x.index_select(&self.forward_index, 1)?, zero_log_det(x)?))
    }
    fn is_invertible(&self) -> bool {
        true
    }
    fn inverse(&self, y: &Tensor, _cond: Conditioning<'_>) -> Result<(Tensor, Tensor)> {
        Ok((y.index_select(&self.inverse_index, 1)?, zero_log_det(y)?))
    }
}
