//! Flow stacks from YAML: an externally tagged list such as `[{planar: {k: 16}}, {reverse: {}}]`.
//! Each entry is a [`FlowSpec`]; [`FlowSpec::build`] (in `build.rs`) turns one into layers.

use serde::{Deserialize, Serialize};

use crate::error::{FlowError, Result};
use flowvae_nn::Activation;

mod build;
mod spline;

pub use spline::{ElementSplineSpec, SplineSpec};

pub use build::{build_stack, LayerSite, StackOptions};

pub(super) fn one() -> usize {
    1
}

/// `k` layers of a flow with per-layer parameters (planar, radial, triangular Sylvester).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RepeatSpec {
    /// Number of layers.
    #[serde(default = "one")]
    pub k: usize,
    /// Per-sample parameters from the encoder (`true`) or learned globals; default: the
    /// stack's default (amortized in a VAE posterior, global in a 2-D experiment).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub amortized: Option<bool>,
}

/// `k` orthogonal Sylvester layers with `m ≤ D` columns in `Q`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OrthogonalSpec {
    /// Number of layers.
    #[serde(default = "one")]
    pub k: usize,
    /// Columns of `Q`; default: the dimension.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub m: Option<usize>,
    /// Per-sample parameters (`true`) or learned globals; default: the stack's default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub amortized: Option<bool>,
}

/// `k` Householder Sylvester layers, each `Q` a product of `reflections` reflections.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HouseholderSpec {
    /// Number of layers.
    #[serde(default = "one")]
    pub k: usize,
    /// Householder reflections whose product is each layer's `Q`.
    #[serde(default = "one")]
    pub reflections: usize,
    /// Per-sample parameters (`true`) or learned globals; default: the stack's default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub amortized: Option<bool>,
}

pub(super) fn default_hidden() -> Vec<usize> {
    vec![64, 64]
}
fn default_scale_bound() -> f64 {
    3.0
}

/// `k` layers with a conditioner network (affine coupling, MAF, IAF).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetSpec {
    /// Number of layers.
    #[serde(default = "one")]
    pub k: usize,
    /// Hidden widths of the conditioner.
    #[serde(default = "default_hidden")]
    pub hidden: Vec<usize>,
    /// Non-linearity of the conditioner's hidden layers.
    #[serde(default)]
    pub activation: Activation,
    /// Log-scales are soft-clamped to (−scale_bound, scale_bound).
    #[serde(default = "default_scale_bound")]
    pub scale_bound: f64,
    /// Width of the context these layers read (0: none; in a VAE the encoder provides it).
    #[serde(default)]
    pub context: usize,
}

/// `k` additive (NICE) coupling layers, optionally followed by a learned diagonal scaling.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdditiveSpec {
    /// Number of layers.
    #[serde(default = "one")]
    pub k: usize,
    /// Hidden widths of the conditioner.
    #[serde(default = "default_hidden")]
    pub hidden: Vec<usize>,
    /// Non-linearity of the conditioner's hidden layers.
    #[serde(default)]
    pub activation: Activation,
    /// Width of the context these layers read (0: none).
    #[serde(default)]
    pub context: usize,
    /// Append NICE's learned diagonal scaling (an `affine` layer) after the couplings.
    #[serde(default)]
    pub scale: bool,
}

/// A leaky-ReLU layer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LeakyReluSpec {
    /// Slope on the negative half-line (> 0, so the map stays invertible).
    pub slope: f64,
}

/// A random permutation; the seed defaults to the experiment's seed and the layer position.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct PermuteSpec {
    /// Seed of the permutation; default: the stack's seed plus the entry's index.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
}

/// The LU linear layer: its permutation's seed, and which direction runs the products.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct LuSpec {
    /// Seed of the permutation `P`; default: the stack's seed plus the entry's index.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
    /// Swap the layer's directions: the density direction (data → base) becomes the product
    /// with `W`, three `(B, D) × (D, D)` products, and sampling the exact inverse. For
    /// density estimation in high dimension: the inverse takes `2⌈log₂ D⌉` products of
    /// `D × D` matrices, which at `D = 784` dominate a training step.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub inverted: bool,
}

fn default_momentum() -> f64 {
    0.1
}

/// Batch normalization: statistics of the data side, running averages in evaluation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BatchNormSpec {
    /// Weight of each training batch in the running averages, in (0, 1].
    #[serde(default = "default_momentum")]
    pub momentum: f64,
}

impl Default for BatchNormSpec {
    fn default() -> Self {
        Self {
            momentum: default_momentum(),
        }
    }
}

/// A layer without settings, written `act_norm: {}` (or `act_norm:`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct NoSettings {}

/// One entry of a flow stack in YAML; each is a block of one or more layers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FlowSpec {
    /// Planar layers `z + û tanh(wᵀz + b)` (Rezende & Mohamed, 2015).
    Planar(RepeatSpec),
    /// Radial layers `z + β h(α, r)(z − z₀)`.
    Radial(RepeatSpec),
    /// Sylvester layers with an orthogonal `Q` (van den Berg et al., 2018).
    SylvesterOrthogonal(OrthogonalSpec),
    /// Sylvester layers whose `Q` is a product of Householder reflections.
    SylvesterHouseholder(HouseholderSpec),
    /// Householder reflections (Tomczak & Welling, 2016), one per layer: a volume-preserving
    /// posterior, amortized by default in a VAE.
    Householder(RepeatSpec),
    /// Sylvester layers with `Q` a permutation (identity or reversal, alternating).
    SylvesterTriangular(RepeatSpec),
    /// Affine coupling layers (RealNVP) with alternating masks.
    AffineCoupling(NetSpec),
    /// Additive coupling layers (NICE): volume-preserving shifts with alternating masks.
    AdditiveCoupling(AdditiveSpec),
    /// Masked autoregressive flow: fast density, sequential sampling.
    Maf(NetSpec),
    /// Inverse autoregressive flow: fast sampling, sequential density.
    Iaf(NetSpec),
    /// Spline coupling layers (neural spline flow, coupling form) with alternating masks.
    RqCoupling(SplineSpec),
    /// Spline MAF: autoregressive splines, fast density, sequential sampling.
    RqMaf(SplineSpec),
    /// Spline IAF: autoregressive splines, fast sampling, sequential density.
    RqIaf(SplineSpec),
    /// Element-wise splines with global or amortized knots.
    RqSpline(ElementSplineSpec),
    /// LU-decomposed linear map `P L U` (Glow's invertible 1×1 convolution for vectors); the
    /// settings' `seed` draws the permutation, `inverted: true` swaps its directions.
    LuLinear(Option<LuSpec>),
    /// Per-dimension scale and shift, initialised from the first batch.
    ActNorm(Option<NoSettings>),
    /// Batch normalization (MAF, RealNVP): batch statistics in training, running averages
    /// in evaluation.
    BatchNorm(Option<BatchNormSpec>),
    /// A learned per-dimension scale and shift.
    Affine(Option<NoSettings>),
    /// Element-wise leaky ReLU.
    LeakyRelu(LeakyReluSpec),
    /// Element-wise logistic sigmoid, ℝ → (0, 1).
    Sigmoid(Option<NoSettings>),
    /// Element-wise logit, (0, 1) → ℝ.
    Logit(Option<NoSettings>),
    /// Element-wise exponential, ℝ → (0, ∞).
    Exp(Option<NoSettings>),
    /// Element-wise logarithm, (0, ∞) → ℝ.
    Log(Option<NoSettings>),
    /// Reverses the order of the coordinates.
    Reverse(Option<NoSettings>),
    /// A fixed random permutation of the coordinates.
    Permute(Option<PermuteSpec>),
}

impl FlowSpec {
    /// The YAML name of this entry.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Planar(_) => "planar",
            Self::Radial(_) => "radial",
            Self::Householder(_) => "householder",
            Self::SylvesterOrthogonal(_) => "sylvester_orthogonal",
            Self::SylvesterHouseholder(_) => "sylvester_householder",
            Self::SylvesterTriangular(_) => "sylvester_triangular",
            Self::AffineCoupling(_) => "affine_coupling",
            Self::AdditiveCoupling(_) => "additive_coupling",
            Self::LuLinear(_) => "lu_linear",
            Self::Maf(_) => "maf",
            Self::Iaf(_) => "iaf",
            Self::RqCoupling(_) => "rq_coupling",
            Self::RqMaf(_) => "rq_maf",
            Self::RqIaf(_) => "rq_iaf",
            Self::RqSpline(_) => "rq_spline",
            Self::ActNorm(_) => "act_norm",
            Self::BatchNorm(_) => "batch_norm",
            Self::Affine(_) => "affine",
            Self::LeakyRelu(_) => "leaky_relu",
            Self::Sigmoid(_) => "sigmoid",
            Self::Logit(_) => "logit",
            Self::Exp(_) => "exp",
            Self::Log(_) => "log",
            Self::Reverse(_) => "reverse",
            Self::Permute(_) => "permute",
        }
    }

    /// The width of the context this entry's layers read, for the kinds whose networks can
    /// read one (couplings, MAF/IAF and their spline forms); `None` for the others.
    pub fn context_mut(&mut self) -> Option<&mut usize> {
        match self {
            Self::AffineCoupling(s) | Self::Maf(s) | Self::Iaf(s) => Some(&mut s.context),
            Self::AdditiveCoupling(s) => Some(&mut s.context),
            Self::RqCoupling(s) | Self::RqMaf(s) | Self::RqIaf(s) => Some(&mut s.context),
            _ => None,
        }
    }

    /// The number of layers the entry asks for (`k`; 1 for the single-layer kinds).
    fn layer_count(&self) -> usize {
        match self {
            Self::Planar(s) | Self::Radial(s) | Self::SylvesterTriangular(s) => s.k,
            Self::Householder(s) => s.k,
            Self::SylvesterOrthogonal(s) => s.k,
            Self::SylvesterHouseholder(s) => s.k,
            Self::AffineCoupling(s) | Self::Maf(s) | Self::Iaf(s) => s.k,
            Self::AdditiveCoupling(s) => s.k,
            Self::RqCoupling(s) | Self::RqMaf(s) | Self::RqIaf(s) => s.k,
            Self::RqSpline(s) => s.k,
            _ => 1,
        }
    }

    /// Checks values serde cannot: counts ≥ 1, positive widths and bounds. `field` is the
    /// entry's path for messages, e.g. `flow[2]`.
    pub fn validate(&self, field: &str, dim: usize) -> Result<()> {
        let path = format!("{field}.{}", self.kind());
        let bad = |leaf: &str, message: String| {
            Err(FlowError::InvalidConfig {
                field: format!("{path}.{leaf}"),
                message,
            })
        };
        let k = self.layer_count();
        if k == 0 {
            return bad("k", "must be at least 1 (the number of layers)".into());
        }
        if k > MAX_LAYERS {
            return bad("k", format!("{k} layers; at most {MAX_LAYERS} are allowed"));
        }
        match self {
            Self::SylvesterOrthogonal(OrthogonalSpec { m: Some(m), .. }) if *m == 0 || *m > dim => {
                bad(
                    "m",
                    format!("must be between 1 and the dimension {dim}, got {m}"),
                )
            }
            Self::SylvesterHouseholder(s) if s.reflections == 0 || s.reflections > MAX_LAYERS => {
                bad(
                    "reflections",
                    format!("must be between 1 and {MAX_LAYERS}, got {}", s.reflections),
                )
            }
            Self::AffineCoupling(_) | Self::AdditiveCoupling(_) | Self::RqCoupling(_)
                if dim < 2 =>
            {
                bad(
                    "k",
                    format!("coupling needs dimension ≥ 2 (a side would be empty), got {dim}"),
                )
            }
            Self::RqCoupling(s) | Self::RqMaf(s) | Self::RqIaf(s) => {
                match check_network(&s.hidden, s.context) {
                    Some((leaf, message)) => bad(leaf, message),
                    None => s.spline().validate(&path),
                }
            }
            Self::RqSpline(s) => s.spline().validate(&path),
            Self::AdditiveCoupling(s) => {
                check_network(&s.hidden, s.context).map_or(Ok(()), |(leaf, m)| bad(leaf, m))
            }
            Self::AffineCoupling(s) | Self::Maf(s) | Self::Iaf(s) => {
                if let Some((leaf, message)) = check_network(&s.hidden, s.context) {
                    bad(leaf, message)
                } else if !(s.scale_bound > 0.0 && s.scale_bound.is_finite()) {
                    bad(
                        "scale_bound",
                        format!("must be positive, got {}", s.scale_bound),
                    )
                } else {
                    Ok(())
                }
            }
            Self::BatchNorm(Some(s)) if !(s.momentum > 0.0 && s.momentum <= 1.0) => {
                bad("momentum", format!("must be in (0, 1], got {}", s.momentum))
            }
            Self::LeakyRelu(s) if !(s.slope > 0.0 && s.slope.is_finite()) => {
                bad("slope", format!("must be positive, got {}", s.slope))
            }
            _ => Ok(()),
        }
    }
}

/// The field and message when a conditioner's widths are out of range.
fn check_network(hidden: &[usize], context: usize) -> Option<(&'static str, String)> {
    if hidden.is_empty() || hidden.iter().any(|&w| w == 0 || w > MAX_WIDTH) {
        let message = format!("must list widths between 1 and {MAX_WIDTH}, got {hidden:?}");
        return Some(("hidden", message));
    }
    (context > MAX_WIDTH).then(|| ("context", format!("at most {MAX_WIDTH}, got {context}")))
}

/// The most layers one entry of a stack may ask for (`k`, Householder `reflections`): far
/// beyond any published stack, and small enough that a typo cannot exhaust memory.
pub const MAX_LAYERS: usize = 4096;
/// The widest hidden layer or context a flow's network may ask for.
pub const MAX_WIDTH: usize = 65_536;
