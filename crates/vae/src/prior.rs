//! The prior `p(z)` of a Flow-VAE: the standard normal (default), a learned Gaussian mixture,
//! the VampPrior (Tomczak & Welling, 2018) or a flow on top of `N(0, I)`.
//!
//! Every prior gives `log p(z)` per row for the ELBO's Monte Carlo KL term
//! `log q_K(z_K|x) − log p(z_K)` and draws for sample grids, so the objectives, the
//! importance-sampled NLL and the gap split work with any of them unchanged.

use candle_core::{DType, Device, Tensor, D};
use candle_nn::{Init, VarBuilder};
use serde::{Deserialize, Serialize};

use crate::encoder::Encoder;
use crate::error::{Result, VaeError};
use flowvae_flows::{
    build_stack, standard_normal_log_prob, Base, BaseSpec, Conditioning, Flow, FlowDistribution,
    FlowSpec, ParamStore, StackOptions, LOG_2PI,
};
use flowvae_nn::{logsumexp, standard_normal, SeededRng};
use rand::Rng;

/// Elements of the `(rows, K, z)` differences the VampPrior forms at once (16 MB in f32): an
/// importance-sampled NLL asks for `log p(z)` at `S = 5000` points per image, and with 500
/// pseudo-inputs and z = 40 one tensor of them would be 400 MB, formed several times.
const VAMP_CHUNK_ELEMENTS: usize = 1 << 22;

/// `log (1/K) Σ_k N(z; μ_k, diag exp(log σ²_k))` per row of `z` `(N, z)`, for the components'
/// `mu` and `log_var` `(K, z)`: rows in chunks of at most `max_elements / (K · z)`, each row's
/// value computed exactly as in one piece.
fn vamp_log_prob(z: &Tensor, mu: &Tensor, log_var: &Tensor, max_elements: usize) -> Result<Tensor> {
    let (n, d) = z.dims2()?;
    let k = mu.dim(0)?;
    let rows = (max_elements / (k * d).max(1)).max(1);
    let precision = log_var.neg()?.exp()?.unsqueeze(0)?;
    let log_det = log_var.sum(1)?.unsqueeze(0)?; // (1, K)
    let piece = |z: &Tensor| -> Result<Tensor> {
        let diff = z.unsqueeze(1)?.broadcast_sub(&mu.unsqueeze(0)?)?; // (rows, K, z)
        let quadratic = diff.sqr()?.broadcast_mul(&precision)?.sum(D::Minus1)?;
        let per_component = (quadratic.broadcast_add(&log_det)? + d as f64 * LOG_2PI)?;
        let per_component = (per_component * -0.5)?;
        Ok((logsumexp(&per_component, 1)? - (k as f64).ln())?)
    };
    if n <= rows {
        return piece(z);
    }
    let pieces = (0..n)
        .step_by(rows)
        .map(|start| piece(&z.narrow(0, start, rows.min(n - start))?))
        .collect::<Result<Vec<_>>>()?;
    Ok(Tensor::cat(&pieces, 0)?)
}

/// The most pseudo-inputs or mixture components a prior may ask for.
pub const MAX_COMPONENTS: usize = 4096;

/// `model.prior` in YAML: `standard_normal`, `{mixture: {components: K}}`,
/// `{vamp: {pseudo_inputs: K}}` or `{flow: [ …a stack… ]}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum PriorSpec {
    /// `N(0, I)`, today's prior.
    #[default]
    StandardNormal,
    /// A learned mixture of `components` diagonal Gaussians.
    Mixture {
        /// Number of components `K ≥ 1`.
        components: usize,
    },
    /// `(1/K) Σ_k q₀(z | u_k)`: the encoder's Gaussian at `K` learned pseudo-inputs.
    Vamp {
        /// Number of pseudo-inputs `K ≥ 1`.
        pseudo_inputs: usize,
    },
    /// A flow stack (global parameters, no context) on top of `N(0, I)`: `log p(z)` by change
    /// of variables in the density direction, samples through the sampling direction.
    Flow(Vec<FlowSpec>),
}

impl PriorSpec {
    /// Whether this is the default standard normal (left out of resolved configs).
    pub fn is_standard(&self) -> bool {
        matches!(self, Self::StandardNormal)
    }
}

/// A built prior; learned parameters live under `prior.*` in the model's store.
#[derive(Debug)]
pub enum Prior {
    /// `N(0, I)`.
    Standard,
    /// A learned Gaussian mixture.
    Mixture(Base),
    /// Pseudo-inputs `(K, D_x)` fed through the model's encoder.
    Vamp(Tensor),
    /// A flow distribution with a standard normal base.
    Flow(FlowDistribution),
}

fn invalid(field: &str, message: String) -> VaeError {
    VaeError::InvalidConfig {
        field: format!("model.prior.{field}"),
        message,
    }
}

impl Prior {
    /// Builds `spec` for latent dimension `latent` and inputs of width `input_dim`; `vb` is the
    /// model's root builder over `store`.
    pub fn new(
        spec: &PriorSpec,
        store: &ParamStore,
        vb: &VarBuilder<'static>,
        (latent, input_dim): (usize, usize),
        seed: u64,
    ) -> Result<Self> {
        let vb = vb.pp("prior");
        let count_ok = |k: usize| (1..=MAX_COMPONENTS).contains(&k);
        match spec {
            PriorSpec::StandardNormal => Ok(Self::Standard),
            PriorSpec::Mixture { components } if !count_ok(*components) => Err(invalid(
                "mixture.components",
                format!("must be between 1 and {MAX_COMPONENTS}, got {components}"),
            )),
            PriorSpec::Mixture { components } => {
                let base = BaseSpec::Mixture {
                    components: *components,
                };
                Ok(Self::Mixture(Base::new(&base, vb.pp("mixture"), latent)?))
            }
            PriorSpec::Vamp { pseudo_inputs } if !count_ok(*pseudo_inputs) => Err(invalid(
                "vamp.pseudo_inputs",
                format!("must be between 1 and {MAX_COMPONENTS}, got {pseudo_inputs}"),
            )),
            PriorSpec::Vamp { pseudo_inputs } => {
                let init = Init::Uniform { lo: 0.0, up: 1.0 };
                let inputs =
                    vb.get_with_hints((*pseudo_inputs, input_dim), "pseudo_inputs", init)?;
                Ok(Self::Vamp(inputs))
            }
            PriorSpec::Flow(specs) => Self::flow(specs, store, &vb, latent, seed),
        }
    }

    fn flow(
        specs: &[FlowSpec],
        store: &ParamStore,
        vb: &VarBuilder<'static>,
        latent: usize,
        seed: u64,
    ) -> Result<Self> {
        if specs.is_empty() {
            return Err(invalid("flow", "is empty; list at least one flow".into()));
        }
        for (i, spec) in specs.iter().enumerate() {
            spec.validate(&format!("model.prior.flow[{i}]"), latent)?;
        }
        let options = StackOptions {
            amortized_default: false,
            seed,
        };
        let stack = build_stack(specs, latent, store, vb.pp("flow"), options)?;
        let problem = if stack.num_amortized_params() > 0 {
            Some("takes per-sample parameters; a prior's must be global (`amortized: false`)")
        } else if stack.context_dim() > 0 {
            Some("reads an encoder context; a prior has none (`context: 0`)")
        } else if !stack.is_invertible() {
            Some("has no inverse, which log p(z) needs (Sylvester layers, for one)")
        } else {
            None
        };
        match problem {
            Some(why) => Err(invalid(
                "flow",
                format!("{}: the stack {why}", stack.name()),
            )),
            None => Ok(Self::Flow(FlowDistribution::new(Box::new(stack)))),
        }
    }

    /// `log p(z)` per row of `z` `(N, z)`, `(N,)`; the VampPrior runs `encoder` on its
    /// pseudo-inputs.
    pub fn log_prob(&self, z: &Tensor, encoder: &Encoder) -> Result<Tensor> {
        match self {
            Self::Standard => Ok(standard_normal_log_prob(z)?),
            Self::Mixture(base) => Ok(base.log_prob(z)?),
            Self::Flow(dist) => Ok(dist.log_prob(z, Conditioning::none())?),
            Self::Vamp(inputs) => {
                let q = encoder.forward(inputs)?.q0;
                vamp_log_prob(z, &q.mu, &q.log_var, VAMP_CHUNK_ELEMENTS)
            }
        }
    }

    /// `n` draws from the prior, `(n, latent)` in `dtype`.
    pub fn sample(
        &self,
        (n, latent, dtype): (usize, usize, DType),
        rng: &mut SeededRng,
        encoder: &Encoder,
        device: &Device,
    ) -> Result<Tensor> {
        match self {
            Self::Standard => Ok(standard_normal(rng, (n, latent), dtype, device)?),
            Self::Mixture(base) => Ok(base.sample(n, 1.0, rng, dtype, device)?),
            Self::Flow(dist) => Ok(dist.sample(n, rng, dtype, device, Conditioning::none())?.0),
            Self::Vamp(inputs) => {
                let k = inputs.dim(0)?;
                let picks: Vec<u32> = (0..n).map(|_| rng.random_range(0..k as u32)).collect();
                let picks = Tensor::from_vec(picks, n, device)?;
                let q = encoder.forward(&inputs.index_select(&picks, 0)?)?.q0;
                let eps = standard_normal(rng, (n, latent), dtype, device)?;
                Ok(q.rsample(&eps)?)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use flowvae_nn::{seeded, Stream};

    #[test]
    fn the_vamp_prior_in_chunks_is_bit_identical_to_one_piece() {
        let mut rng = seeded(2, Stream::Scratch("vamp-chunks"));
        let mut normal = |shape: (usize, usize)| {
            standard_normal(&mut rng, shape, DType::F32, &Device::Cpu).unwrap()
        };
        let (z, mu, log_var) = (normal((23, 5)), normal((7, 5)), normal((7, 5)));
        let whole = vamp_log_prob(&z, &mu, &log_var, usize::MAX).unwrap();
        // 3 rows per chunk: 8 chunks, the last one of 2 rows.
        let chunked = vamp_log_prob(&z, &mu, &log_var, 3 * 7 * 5).unwrap();
        let (a, b): (Vec<f32>, Vec<f32>) = (whole.to_vec1().unwrap(), chunked.to_vec1().unwrap());
        assert_eq!(a.len(), 23);
        assert_eq!(a, b);
    }
}
