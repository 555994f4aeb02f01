//! From specs to layers: [`FlowSpec::build`] builds one entry, [`build_stack`] a whole list.

use candle_nn::VarBuilder;

use super::{
    AdditiveSpec, FlowSpec, HouseholderSpec, NetSpec, OrthogonalSpec, PermuteSpec, RepeatSpec,
    SplineSpec,
};
use crate::composed::{Composed, Inverted};
use crate::error::Result;
use crate::flow::Flow;
use crate::layers::actnorm::ActNorm;
use crate::layers::additive_coupling::AdditiveCoupling;
use crate::layers::autoregressive::AutoregressiveAffine;
use crate::layers::batch_norm::BatchNorm;
use crate::layers::coupling::AffineCoupling;
use crate::layers::elementwise::{Elementwise, ElementwiseAffine, ElementwiseMap};
use crate::layers::householder::Householder;
use crate::layers::lu_linear::LuLinear;
use crate::layers::permutation::Permutation;
use crate::layers::planar::Planar;
use crate::layers::planar_stack::PlanarStack;
use crate::layers::radial::Radial;
use crate::layers::spline::layers::{AutoregressiveSpline, ElementwiseSpline, SplineCoupling};
use crate::layers::sylvester::{Sylvester, SylvesterKind};
use flowvae_nn::ParamStore;

/// What a stack is built for: the defaults that depend on the use.
#[derive(Debug, Clone, Copy)]
pub struct StackOptions {
    /// Whether planar / radial / Sylvester / Householder layers take per-sample parameters by
    /// default.
    pub amortized_default: bool,
    /// Seed of random permutations without their own seed.
    pub seed: u64,
}

/// Where one entry of a stack is built: the dimension it acts on, the parameter path of the
/// entry (`<stack>.<index>.<kind>`), its position and the stack's defaults.
#[derive(Clone)]
pub struct LayerSite<'a> {
    /// Dimension `D` of the `(B, D)` inputs.
    pub dim: usize,
    /// Store of stateful parameters (ActNorm's data-dependent initialisation).
    pub store: &'a ParamStore,
    /// Parameter path of this entry; layer `j` of a block lives under `vb.pp(j)`.
    pub vb: VarBuilder<'static>,
    /// Position of the entry in its stack.
    pub index: usize,
    /// The stack's defaults.
    pub options: StackOptions,
}

impl std::fmt::Debug for LayerSite<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LayerSite")
            .field("dim", &self.dim)
            .field("index", &self.index)
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

type Layers = Vec<Box<dyn Flow>>;

impl LayerSite<'_> {
    fn amortized(&self, choice: Option<bool>) -> bool {
        choice.unwrap_or(self.options.amortized_default)
    }

    /// `k` layers made by `make(j, vb of layer j)`.
    fn repeat(
        &self,
        k: usize,
        make: impl Fn(usize, VarBuilder<'static>) -> Result<Box<dyn Flow>>,
    ) -> Result<Layers> {
        (0..k).map(|j| make(j, self.vb.pp(j))).collect()
    }

    /// `k` autoregressive layers made by `make(vb of layer j)`, inverted when `maf` (the
    /// density direction becomes the one-pass one), with a reversal between consecutive
    /// layers so that every coordinate gets to see the others.
    fn autoregressive(
        &self,
        k: usize,
        maf: bool,
        make: impl Fn(VarBuilder<'static>) -> Result<Box<dyn Flow>>,
    ) -> Result<Layers> {
        let mut layers: Layers = Vec::with_capacity(2 * k);
        for j in 0..k {
            if j > 0 {
                layers.push(Box::new(Permutation::reverse(self.dim, self.vb.device())?));
            }
            let layer = make(self.vb.pp(j))?;
            layers.push(if maf {
                Box::new(Inverted::new(layer))
            } else {
                layer
            });
        }
        Ok(layers)
    }
}

impl FlowSpec {
    /// The layers of this entry at `site`, in sampling order (validated first).
    pub fn build(&self, site: &LayerSite<'_>) -> Result<Vec<Box<dyn Flow>>> {
        self.validate(&format!("flow[{}]", site.index), site.dim)?;
        let dim = site.dim;
        let one = |layer: Box<dyn Flow>| -> Result<Layers> { Ok(vec![layer]) };
        let elementwise =
            |map| -> Result<Box<dyn Flow>> { Ok(Box::new(Elementwise::new(dim, map)?)) };
        let inverted = |layer: Result<Box<dyn Flow>>| -> Result<Box<dyn Flow>> {
            Ok(Box::new(Inverted::new(layer?)))
        };
        match self {
            Self::Planar(s) => s.planar(site),
            Self::Radial(s) => s.radial(site),
            Self::Householder(s) => s.householder(site),
            Self::SylvesterOrthogonal(s) => s.build(site),
            Self::SylvesterHouseholder(s) => s.build(site),
            Self::SylvesterTriangular(s) => s.triangular(site),
            Self::AffineCoupling(s) => s.coupling(site),
            Self::AdditiveCoupling(s) => s.build(site),
            Self::LuLinear(s) => {
                let permutation = s.as_ref().map(|s| PermuteSpec { seed: s.seed });
                let seed = PermuteSpec::seed(permutation.as_ref(), site);
                let layer: Box<dyn Flow> = Box::new(LuLinear::new(site.vb.clone(), dim, seed)?);
                let inverted = s.as_ref().is_some_and(|s| s.inverted);
                one(if inverted {
                    Box::new(Inverted::new(layer))
                } else {
                    layer
                })
            }
            Self::Maf(s) => s.autoregressive(site, true),
            Self::Iaf(s) => s.autoregressive(site, false),
            Self::RqCoupling(s) => s.coupling(site),
            Self::RqMaf(s) => s.autoregressive(site, true),
            Self::RqIaf(s) => s.autoregressive(site, false),
            Self::RqSpline(s) => {
                let amortized = site.amortized(s.amortized);
                site.repeat(s.k, |_, vb| {
                    Ok(Box::new(ElementwiseSpline::new(
                        vb,
                        dim,
                        s.spline(),
                        amortized,
                    )?))
                })
            }
            Self::ActNorm(_) => one(Box::new(ActNorm::new(site.vb.clone(), site.store, dim)?)),
            Self::BatchNorm(s) => {
                let momentum = s.clone().unwrap_or_default().momentum;
                let layer = BatchNorm::new(site.vb.clone(), site.store, dim, momentum)?;
                one(Box::new(layer))
            }
            Self::Affine(_) => one(Box::new(ElementwiseAffine::new(site.vb.clone(), dim)?)),
            Self::LeakyRelu(s) => one(elementwise(ElementwiseMap::LeakyRelu { slope: s.slope })?),
            Self::Sigmoid(_) => one(elementwise(ElementwiseMap::Sigmoid)?),
            Self::Logit(_) => one(inverted(elementwise(ElementwiseMap::Sigmoid))?),
            Self::Exp(_) => one(elementwise(ElementwiseMap::Exp)?),
            Self::Log(_) => one(inverted(elementwise(ElementwiseMap::Exp))?),
            Self::Reverse(_) => one(Box::new(Permutation::reverse(dim, site.vb.device())?)),
            Self::Permute(s) => one(PermuteSpec::build(s.as_ref(), site)?),
        }
    }
}

impl RepeatSpec {
    fn planar(&self, site: &LayerSite<'_>) -> Result<Layers> {
        let amortized = site.amortized(self.amortized);
        site.repeat(self.k, |_, vb| {
            Ok(Box::new(Planar::new(vb, site.dim, amortized)?))
        })
    }

    fn radial(&self, site: &LayerSite<'_>) -> Result<Layers> {
        let amortized = site.amortized(self.amortized);
        site.repeat(self.k, |_, vb| {
            Ok(Box::new(Radial::new(vb, site.dim, amortized)?))
        })
    }

    fn householder(&self, site: &LayerSite<'_>) -> Result<Layers> {
        let amortized = site.amortized(self.amortized);
        site.repeat(self.k, |_, vb| {
            Ok(Box::new(Householder::new(vb, site.dim, amortized)?))
        })
    }

    /// Triangular Sylvester layers; odd layers reverse the coordinates so that each
    /// coordinate is eventually updated from all others.
    fn triangular(&self, site: &LayerSite<'_>) -> Result<Layers> {
        let amortized = site.amortized(self.amortized);
        site.repeat(self.k, |j, vb| {
            let kind = SylvesterKind::Triangular {
                reversed: j % 2 == 1,
            };
            Ok(Box::new(Sylvester::new(vb, site.dim, kind, amortized)?))
        })
    }
}

impl OrthogonalSpec {
    fn build(&self, site: &LayerSite<'_>) -> Result<Layers> {
        let kind = SylvesterKind::Orthogonal {
            m: self.m.unwrap_or(site.dim),
        };
        let amortized = site.amortized(self.amortized);
        site.repeat(self.k, |_, vb| {
            Ok(Box::new(Sylvester::new(vb, site.dim, kind, amortized)?))
        })
    }
}

impl HouseholderSpec {
    fn build(&self, site: &LayerSite<'_>) -> Result<Layers> {
        let kind = SylvesterKind::Householder {
            reflections: self.reflections,
        };
        let amortized = site.amortized(self.amortized);
        site.repeat(self.k, |_, vb| {
            Ok(Box::new(Sylvester::new(vb, site.dim, kind, amortized)?))
        })
    }
}

impl NetSpec {
    /// Coupling layers with masks alternating between the two halves.
    fn coupling(&self, site: &LayerSite<'_>) -> Result<Layers> {
        site.repeat(self.k, |j, vb| {
            Ok(Box::new(AffineCoupling::new(
                vb,
                site.dim,
                &self.hidden,
                self.activation,
                j % 2,
                self.scale_bound,
                self.context,
            )?))
        })
    }

    /// MAF (`maf`: density-fast) or IAF layers.
    fn autoregressive(&self, site: &LayerSite<'_>, maf: bool) -> Result<Layers> {
        site.autoregressive(self.k, maf, |vb| {
            let layer = AutoregressiveAffine::new(
                vb,
                site.dim,
                &self.hidden,
                self.activation,
                self.scale_bound,
                self.context,
            )?;
            Ok(Box::new(layer))
        })
    }
}

impl SplineSpec {
    /// Spline coupling layers with masks alternating between the two halves.
    fn coupling(&self, site: &LayerSite<'_>) -> Result<Layers> {
        let net = (self.hidden.as_slice(), self.activation);
        site.repeat(self.k, |j, vb| {
            let layer = SplineCoupling::new(vb, site.dim, net, j % 2, self.spline(), self.context);
            Ok(Box::new(layer?))
        })
    }

    /// Spline MAF (`maf`: density-fast) or spline IAF layers.
    fn autoregressive(&self, site: &LayerSite<'_>, maf: bool) -> Result<Layers> {
        let net = (self.hidden.as_slice(), self.activation);
        site.autoregressive(self.k, maf, |vb| {
            let layer = AutoregressiveSpline::new(vb, site.dim, net, self.spline(), self.context);
            Ok(Box::new(layer?))
        })
    }
}

impl PermuteSpec {
    /// The seed of the entry's permutation: its own, or the stack's plus its index.
    fn seed(spec: Option<&Self>, site: &LayerSite<'_>) -> u64 {
        spec.and_then(|s| s.seed)
            .unwrap_or(site.options.seed.wrapping_add(site.index as u64))
    }

    fn build(spec: Option<&Self>, site: &LayerSite<'_>) -> Result<Box<dyn Flow>> {
        let seed = Self::seed(spec, site);
        Ok(Box::new(Permutation::random(
            site.dim,
            seed,
            site.vb.device(),
        )?))
    }
}

impl AdditiveSpec {
    /// `k` additive couplings with alternating masks, then the optional diagonal scaling.
    fn build(&self, site: &LayerSite<'_>) -> Result<Layers> {
        let mut layers = site.repeat(self.k, |j, vb| {
            Ok(Box::new(AdditiveCoupling::new(
                vb,
                site.dim,
                &self.hidden,
                self.activation,
                j % 2,
                self.context,
            )?))
        })?;
        if self.scale {
            let vb = site.vb.pp("scale");
            layers.push(Box::new(ElementwiseAffine::new(vb, site.dim)?));
        }
        Ok(layers)
    }
}

/// The number of layers when every entry is amortized planar (such a stack runs as one
/// [`PlanarStack`], fused on the CPU); `None` otherwise.
fn all_amortized_planar(specs: &[FlowSpec], options: StackOptions) -> Option<usize> {
    let mut k = 0;
    for spec in specs {
        match spec {
            FlowSpec::Planar(s) if s.amortized.unwrap_or(options.amortized_default) => k += s.k,
            _ => return None,
        }
    }
    (k > 0).then_some(k)
}

/// Builds the stack described by `specs` on dimension `dim`; parameters live under `vb`
/// as `<index>.<kind>.<layer>.<tensor>` (e.g. `flow.0.planar.3.u` with `vb = flow`).
///
/// A stack of amortized planar entries only is built as one [`PlanarStack`] layer, which runs
/// as a single fused op on the CPU.
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
/// let (x, log_q) = dist.sample(5, &mut seeded(0, flowvae_nn::Stream::Scratch("doc")), DType::F64, &Device::Cpu, Conditioning::none())?;
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
    let sites = specs.iter().enumerate().map(|(index, spec)| LayerSite {
        dim,
        store,
        vb: vb.pp(index.to_string()).pp(spec.kind()),
        index,
        options,
    });
    if let Some(k) = all_amortized_planar(specs, options) {
        for (spec, site) in specs.iter().zip(sites) {
            spec.validate(&format!("flow[{}]", site.index), dim)?;
        }
        let stack = PlanarStack::new(vb.pp("0").pp("planar"), dim, k)?;
        return Composed::new(dim, vec![Box::new(stack)]);
    }
    let mut layers: Layers = Vec::new();
    for (spec, site) in specs.iter().zip(sites) {
        layers.extend(spec.build(&site)?);
    }
    Composed::new(dim, layers)
}

#[cfg(test)]
mod tests;
