//! Flow stacks from YAML: an externally tagged list such as `[{planar: {k: 16}}, {reverse: {}}]`.

use candle_nn::VarBuilder;
use serde::{Deserialize, Serialize};

use crate::actnorm::ActNorm;
use crate::autoregressive::AutoregressiveAffine;
use crate::composed::{Composed, Inverted};
use crate::coupling::AffineCoupling;
use crate::elementwise::{Elementwise, ElementwiseAffine, ElementwiseMap};
use crate::error::{FlowError, Result};
use crate::flow::Flow;
use crate::permutation::Permutation;
use crate::planar::Planar;
use crate::radial::Radial;
use crate::sylvester::{Sylvester, SylvesterKind};
use flowvae_nn::dense::Activation;
use flowvae_nn::params::ParamStore;

fn one() -> usize {
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
    #[serde(default = "one")]
    pub k: usize,
    /// Columns of `Q`; default: the dimension.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub m: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub amortized: Option<bool>,
}

/// `k` Householder Sylvester layers, each `Q` a product of `reflections` reflections.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HouseholderSpec {
    #[serde(default = "one")]
    pub k: usize,
    #[serde(default = "one")]
    pub reflections: usize,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub amortized: Option<bool>,
}

fn default_hidden() -> Vec<usize> {
    vec![64, 64]
}
fn default_scale_bound() -> f64 {
    3.0
}

/// `k` layers with a conditioner network (affine coupling, MAF, IAF).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetSpec {
    #[serde(default = "one")]
    pub k: usize,
    /// Hidden widths of the conditioner.
    #[serde(default = "default_hidden")]
    pub hidden: Vec<usize>,
    #[serde(default)]
    pub activation: Activation,
    /// Log-scales are soft-clamped to (−scale_bound, scale_bound).
    #[serde(default = "default_scale_bound")]
    pub scale_bound: f64,
    /// Width of the context these layers read (0: none; in a VAE the encoder provides it).
    #[serde(default)]
    pub context: usize,
}

/// A leaky-ReLU layer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LeakyReluSpec {
    pub slope: f64,
}

/// A random permutation; the seed defaults to the experiment's seed and the layer position.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct PermuteSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
}

/// A layer without settings, written `act_norm: {}` (or `act_norm:`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct NoSettings {}

/// One entry of a flow stack in YAML; each is a block of one or more layers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FlowSpec {
    Planar(RepeatSpec),
    Radial(RepeatSpec),
    SylvesterOrthogonal(OrthogonalSpec),
    SylvesterHouseholder(HouseholderSpec),
    SylvesterTriangular(RepeatSpec),
    AffineCoupling(NetSpec),
    /// Masked autoregressive flow: fast density, sequential sampling.
    Maf(NetSpec),
    /// Inverse autoregressive flow: fast sampling, sequential density.
    Iaf(NetSpec),
    ActNorm(Option<NoSettings>),
    Affine(Option<NoSettings>),
    LeakyRelu(LeakyReluSpec),
    Sigmoid(Option<NoSettings>),
    Logit(Option<NoSettings>),
    Exp(Option<NoSettings>),
    Log(Option<NoSettings>),
    Reverse(Option<NoSettings>),
    Permute(Option<PermuteSpec>),
}

/// What a stack is built for: the defaults that depend on the use.
#[derive(Debug, Clone, Copy)]
pub struct StackOptions {
    /// Whether planar / radial / Sylvester layers take per-sample parameters by default.
    pub amortized_default: bool,
    /// Seed of random permutations without their own seed.
    pub seed: u64,
}

impl FlowSpec {
    /// The YAML name of this entry.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Planar(_) => "planar",
            Self::Radial(_) => "radial",
            Self::SylvesterOrthogonal(_) => "sylvester_orthogonal",
            Self::SylvesterHouseholder(_) => "sylvester_householder",
            Self::SylvesterTriangular(_) => "sylvester_triangular",
            Self::AffineCoupling(_) => "affine_coupling",
            Self::Maf(_) => "maf",
            Self::Iaf(_) => "iaf",
            Self::ActNorm(_) => "act_norm",
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
        let k = match self {
            Self::Planar(s) | Self::Radial(s) | Self::SylvesterTriangular(s) => s.k,
            Self::SylvesterOrthogonal(s) => s.k,
            Self::SylvesterHouseholder(s) => s.k,
            Self::AffineCoupling(s) | Self::Maf(s) | Self::Iaf(s) => s.k,
            _ => 1,
        };
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
            Self::AffineCoupling(_) if dim < 2 => {
                bad("k", format!("coupling needs dimension ≥ 2, got {dim}"))
            }
            Self::AffineCoupling(s) | Self::Maf(s) | Self::Iaf(s) => {
                if s.hidden.is_empty() || s.hidden.iter().any(|&w| w == 0 || w > MAX_WIDTH) {
                    bad(
                        "hidden",
                        format!(
                            "must list widths between 1 and {MAX_WIDTH}, got {:?}",
                            s.hidden
                        ),
                    )
                } else if s.context > MAX_WIDTH {
                    bad("context", format!("at most {MAX_WIDTH}, got {}", s.context))
                } else if !(s.scale_bound > 0.0 && s.scale_bound.is_finite()) {
                    bad(
                        "scale_bound",
                        format!("must be positive, got {}", s.scale_bound),
                    )
                } else {
                    Ok(())
                }
            }
            Self::LeakyRelu(s) if !(s.slope > 0.0 && s.slope.is_finite()) => {
                bad("slope", format!("must be positive, got {}", s.slope))
            }
            _ => Ok(()),
        }
    }
}

/// The most layers one entry of a stack may ask for (`k`, Householder `reflections`): far
/// beyond any published stack, and small enough that a typo cannot exhaust memory.
pub const MAX_LAYERS: usize = 4096;
/// The widest hidden layer or context a flow's network may ask for.
pub const MAX_WIDTH: usize = 65_536;

/// Builds the stack described by `specs` on dimension `dim`; parameters live under `vb`
/// as `<index>.<kind>.<layer>.<tensor>` (e.g. `flow.0.planar.3.u` with `vb = flow`).
///
/// A density on ℝ³ from a YAML stack, its samples and their log-density:
/// ```
/// use candle_core::{DType, Device};
/// use flowvae_flows::{build_stack, seeded, Conditioning, FlowDistribution, FlowSpec, ParamStore, StackOptions};
///
/// let specs: Vec<FlowSpec> = serde_yaml::with::singleton_map_recursive::deserialize(
///     serde_yaml::Deserializer::from_str("- affine_coupling: {k: 2, hidden: [16]}\n- planar: {k: 2}\n"),
/// )?;
/// let store = ParamStore::new(0);
/// let vb = store.var_builder(DType::F64, &Device::Cpu).pp("flow");
/// let options = StackOptions { amortized_default: false, seed: 0 };
/// let stack = build_stack(&specs, 3, &store, vb, options)?;
/// assert_eq!(stack.layers().len(), 4);
/// let dist = FlowDistribution::new(Box::new(stack));
/// let (x, log_q) = dist.sample(5, &mut seeded(0, "doc"), DType::F64, &Device::Cpu, Conditioning::none())?;
/// assert_eq!(x.dims(), &[5, 3]);
/// assert_eq!(log_q.dims(), &[5]);
/// // The density of the samples, through the inverse, is the one they were drawn with.
/// let log_p = dist.log_prob(&x, Conditioning::none())?;
/// let gap: f64 = (log_p - log_q)?.abs()?.max(0)?.to_scalar()?;
/// assert!(gap < 1e-6);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn build_stack(
    specs: &[FlowSpec],
    dim: usize,
    store: &ParamStore,
    vb: VarBuilder<'static>,
    options: StackOptions,
) -> Result<Composed> {
    let mut layers: Vec<Box<dyn Flow>> = Vec::new();
    for (index, spec) in specs.iter().enumerate() {
        spec.validate(&format!("flow[{index}]"), dim)?;
        let vb = vb.pp(index.to_string()).pp(spec.kind());
        let amortized = |a: Option<bool>| a.unwrap_or(options.amortized_default);
        let dev = vb.device().clone();
        match spec {
            FlowSpec::Planar(s) => {
                for j in 0..s.k {
                    layers.push(Box::new(Planar::new(
                        vb.pp(j),
                        dim,
                        amortized(s.amortized),
                    )?));
                }
            }
            FlowSpec::Radial(s) => {
                for j in 0..s.k {
                    layers.push(Box::new(Radial::new(
                        vb.pp(j),
                        dim,
                        amortized(s.amortized),
                    )?));
                }
            }
            FlowSpec::SylvesterOrthogonal(s) => {
                let kind = SylvesterKind::Orthogonal {
                    m: s.m.unwrap_or(dim),
                };
                for j in 0..s.k {
                    layers.push(Box::new(Sylvester::new(
                        vb.pp(j),
                        dim,
                        kind,
                        amortized(s.amortized),
                    )?));
                }
            }
            FlowSpec::SylvesterHouseholder(s) => {
                let kind = SylvesterKind::Householder {
                    reflections: s.reflections,
                };
                for j in 0..s.k {
                    layers.push(Box::new(Sylvester::new(
                        vb.pp(j),
                        dim,
                        kind,
                        amortized(s.amortized),
                    )?));
                }
            }
            FlowSpec::SylvesterTriangular(s) => {
                for j in 0..s.k {
                    let kind = SylvesterKind::Triangular {
                        reversed: j % 2 == 1,
                    };
                    layers.push(Box::new(Sylvester::new(
                        vb.pp(j),
                        dim,
                        kind,
                        amortized(s.amortized),
                    )?));
                }
            }
            FlowSpec::AffineCoupling(s) => {
                for j in 0..s.k {
                    layers.push(Box::new(AffineCoupling::new(
                        vb.pp(j),
                        dim,
                        &s.hidden,
                        s.activation,
                        j % 2,
                        s.scale_bound,
                        s.context,
                    )?));
                }
            }
            FlowSpec::Maf(s) | FlowSpec::Iaf(s) => {
                let is_maf = matches!(spec, FlowSpec::Maf(_));
                for j in 0..s.k {
                    if j > 0 {
                        // Alternate the autoregressive order so every coordinate gets to see others.
                        layers.push(Box::new(Permutation::reverse(dim, &dev)?));
                    }
                    let ar = AutoregressiveAffine::new(
                        vb.pp(j),
                        dim,
                        &s.hidden,
                        s.activation,
                        s.scale_bound,
                        s.context,
                    )?;
                    layers.push(if is_maf {
                        Box::new(Inverted::new(Box::new(ar)))
                    } else {
                        Box::new(ar)
                    });
                }
            }
            FlowSpec::ActNorm(_) => layers.push(Box::new(ActNorm::new(vb, store, dim)?)),
            FlowSpec::Affine(_) => layers.push(Box::new(ElementwiseAffine::new(vb, dim)?)),
            FlowSpec::LeakyRelu(s) => layers.push(Box::new(Elementwise::new(
                dim,
                ElementwiseMap::LeakyRelu { slope: s.slope },
            )?)),
            FlowSpec::Sigmoid(_) => {
                layers.push(Box::new(Elementwise::new(dim, ElementwiseMap::Sigmoid)?))
            }
            FlowSpec::Logit(_) => layers.push(Box::new(Inverted::new(Box::new(Elementwise::new(
                dim,
                ElementwiseMap::Sigmoid,
            )?)))),
            FlowSpec::Exp(_) => layers.push(Box::new(Elementwise::new(dim, ElementwiseMap::Exp)?)),
            FlowSpec::Log(_) => layers.push(Box::new(Inverted::new(Box::new(Elementwise::new(
                dim,
                ElementwiseMap::Exp,
            )?)))),
            FlowSpec::Reverse(_) => layers.push(Box::new(Permutation::reverse(dim, &dev)?)),
            FlowSpec::Permute(s) => {
                let seed = s
                    .as_ref()
                    .and_then(|s| s.seed)
                    .unwrap_or(options.seed.wrapping_add(index as u64));
                layers.push(Box::new(Permutation::random(dim, seed, &dev)?));
            }
        }
    }
    Composed::new(dim, layers)
}
