//! The network half of every coupling layer (affine, additive, spline): which coordinates
//! condition, which move, and the network from the first to the parameters of the second.

use candle_core::{Device, Tensor};
use candle_nn::VarBuilder;

use crate::error::{FlowError, Result};
use crate::flow::{context_of, Conditioning};
use flowvae_nn::{Activation, Mlp};

/// The weights a coupling network holds.
#[derive(Debug)]
enum Width {
    /// Reads the conditioning half (and the context) and predicts parameters for the moving
    /// half only, as nflows and the RealNVP paper do. Every new layer is built this way.
    Half,
    /// The layout of runs trained before the half-width network: it read `m ⊙ x`, all `D`
    /// coordinates with the moving ones zeroed, and predicted parameters for all `D`. Those
    /// extra weights never received a gradient, so the two layouts compute the same function;
    /// this one is kept so that old checkpoints load, sample and resume.
    Full {
        /// `(1, D)`: 1 on the conditioning coordinates.
        mask: Tensor,
        /// Indices into the `P · D` outputs of the moving coordinates' parameters, in the
        /// half-width network's order (parameter-major).
        moving_outputs: Tensor,
    },
}

/// A coupling layer's split of `x` `(B, D)` into conditioning and moving coordinates,
/// `(B, D_c)` and `(B, D_m)`, with the network's parameters for the moving ones,
/// `(B, P · D_m)`, parameter-major (`P` blocks of `D_m` columns).
pub(crate) struct Split {
    pub(crate) conditioning: Tensor,
    pub(crate) moving: Tensor,
    pub(crate) params: Tensor,
}

/// The network half of a coupling layer: the conditioning coordinates (every other one) and
/// an optional context in, `P` parameters for each moving coordinate out.
#[derive(Debug)]
pub(crate) struct MaskedConditioner {
    name: &'static str,
    dim: usize,
    context_dim: usize,
    /// `(D_c)` u32: the coordinates that pass through unchanged and condition the rest.
    conditioning: Tensor,
    /// `(D_m)` u32: the coordinates that move.
    moving: Tensor,
    /// `(D)` u32: where each coordinate sits in `[conditioning, moving]`, to put it back.
    merge: Tensor,
    width: Width,
    net: Mlp,
}

impl MaskedConditioner {
    /// `parity` 0 keeps even coordinates fixed, 1 keeps odd ones; `name` is the YAML kind,
    /// for messages. A store that already holds this layer's weights in the full-width layout
    /// of older runs gets that layout back.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        vb: VarBuilder,
        name: &'static str,
        dim: usize,
        hidden: &[usize],
        activation: Activation,
        parity: usize,
        context_dim: usize,
        params_per_dim: usize,
    ) -> Result<Self> {
        if dim < 2 {
            return Err(FlowError::InvalidConfig {
                field: name.into(),
                message: format!("needs dimension ≥ 2 (a side would be empty), got {dim}"),
            });
        }
        let dev = vb.device().clone();
        let (conditioning, moving): (Vec<u32>, Vec<u32>) =
            (0..dim as u32).partition(|i| (*i as usize + parity).is_multiple_of(2));
        let mut merge = vec![0u32; dim];
        for (position, &coordinate) in conditioning.iter().chain(&moving).enumerate() {
            merge[coordinate as usize] = position as u32;
        }
        let width = if holds_full_width(&vb, dim + context_dim) {
            let mask: Vec<f64> = (0..dim)
                .map(|i| f64::from(u8::from(conditioning.contains(&(i as u32)))))
                .collect();
            let moving_outputs: Vec<u32> = (0..params_per_dim as u32)
                .flat_map(|p| moving.iter().map(move |&i| p * dim as u32 + i))
                .collect();
            Width::Full {
                mask: Tensor::from_vec(mask, (1, dim), &dev)?.to_dtype(vb.dtype())?,
                moving_outputs: indices(moving_outputs, &dev)?,
            }
        } else {
            Width::Half
        };
        let (inputs, outputs) = match width {
            Width::Half => (conditioning.len(), params_per_dim * moving.len()),
            Width::Full { .. } => (dim, params_per_dim * dim),
        };
        let net = Mlp::new(
            vb.pp("net"),
            inputs + context_dim,
            hidden,
            outputs,
            activation,
        )?;
        Ok(Self {
            name,
            dim,
            context_dim,
            conditioning: indices(conditioning, &dev)?,
            moving: indices(moving, &dev)?,
            merge: indices(merge, &dev)?,
            width,
            net,
        })
    }

    /// Splits `x` `(B, D)` and runs the network on its conditioning half.
    pub(crate) fn split(&self, x: &Tensor, cond: &Conditioning<'_>) -> Result<Split> {
        let conditioning = x.index_select(&self.conditioning, 1)?;
        let moving = x.index_select(&self.moving, 1)?;
        let input = match &self.width {
            Width::Half => conditioning.clone(),
            Width::Full { mask, .. } => x.broadcast_mul(mask)?,
        };
        let input = match context_of(cond, self.name, self.context_dim, x.dim(0)?)? {
            Some(context) => Tensor::cat(&[&input, &context], 1)?,
            None => input,
        };
        let out = self.net.forward(&input)?;
        let params = match &self.width {
            Width::Half => out,
            Width::Full { moving_outputs, .. } => out.index_select(moving_outputs, 1)?,
        };
        Ok(Split {
            conditioning,
            moving,
            params,
        })
    }

    /// `(B, D)` from the conditioning half `(B, D_c)` and the moved half `(B, D_m)`.
    pub(crate) fn merge(&self, conditioning: &Tensor, moved: &Tensor) -> Result<Tensor> {
        Ok(Tensor::cat(&[conditioning, moved], 1)?.index_select(&self.merge, 1)?)
    }

    pub(crate) fn dim(&self) -> usize {
        self.dim
    }

    /// `D_m`, the number of coordinates that move.
    pub(crate) fn moving_dim(&self) -> usize {
        self.moving.dims1().unwrap_or(0)
    }

    pub(crate) fn context_dim(&self) -> usize {
        self.context_dim
    }
}

/// Whether the store already holds this layer's first network layer reading all `D`
/// coordinates (plus the context): a checkpoint of the full-width layout.
fn holds_full_width(vb: &VarBuilder, full_inputs: usize) -> bool {
    let first = "net.fc0.weight";
    vb.contains_tensor(first)
        && vb
            .get_unchecked(first)
            .is_ok_and(|w| w.dims().get(1) == Some(&full_inputs))
}

fn indices(values: Vec<u32>, dev: &Device) -> Result<Tensor> {
    let n = values.len();
    Ok(Tensor::from_vec(values, n, dev)?)
}
