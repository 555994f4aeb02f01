//! The YAML settings of the spline flows (`rq_coupling`, `rq_maf`, `rq_iaf`, `rq_spline`).

use serde::{Deserialize, Serialize};

use super::{default_hidden, one};
use crate::layers::spline::RqSpline;
use flowvae_nn::Activation;

fn default_bins() -> usize {
    8
}
fn default_bound() -> f64 {
    3.0
}
fn default_min_fraction() -> f64 {
    1e-3
}

/// `k` rational-quadratic spline layers with a conditioner network (`rq_coupling`, `rq_maf`,
/// `rq_iaf`; Durkan et al., 2019): `bins` bins on `[−bound, bound]`, identity outside.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SplineSpec {
    /// Number of layers.
    #[serde(default = "one")]
    pub k: usize,
    /// Hidden widths of the conditioner.
    #[serde(default = "default_hidden")]
    pub hidden: Vec<usize>,
    /// Non-linearity of the conditioner's hidden layers.
    #[serde(default)]
    pub activation: Activation,
    /// Width of the context these layers read (0: none; in a VAE the encoder provides it).
    #[serde(default)]
    pub context: usize,
    /// Bins per spline.
    #[serde(default = "default_bins")]
    pub bins: usize,
    /// The splines act on `[−bound, bound]`; the identity outside.
    #[serde(default = "default_bound")]
    pub bound: f64,
    /// Smallest bin width, as a fraction of the interval.
    #[serde(default = "default_min_fraction")]
    pub min_bin_width: f64,
    /// Smallest bin height, as a fraction of the interval.
    #[serde(default = "default_min_fraction")]
    pub min_bin_height: f64,
    /// Smallest derivative at an inner knot.
    #[serde(default = "default_min_fraction")]
    pub min_derivative: f64,
}

impl SplineSpec {
    /// The spline shape these settings describe.
    pub fn spline(&self) -> RqSpline {
        RqSpline {
            bins: self.bins,
            bound: self.bound,
            min_bin_width: self.min_bin_width,
            min_bin_height: self.min_bin_height,
            min_derivative: self.min_derivative,
        }
    }
}

/// `k` element-wise rational-quadratic splines (`rq_spline`) whose knots are learned globals
/// or per-sample parameters from the encoder.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ElementSplineSpec {
    /// Number of layers.
    #[serde(default = "one")]
    pub k: usize,
    /// Bins per spline.
    #[serde(default = "default_bins")]
    pub bins: usize,
    /// The splines act on `[−bound, bound]`; the identity outside.
    #[serde(default = "default_bound")]
    pub bound: f64,
    /// Per-sample knots from the encoder (`true`) or learned globals; default: the stack's
    /// default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub amortized: Option<bool>,
}

impl ElementSplineSpec {
    /// The spline shape these settings describe (minimum sizes at their defaults).
    pub fn spline(&self) -> RqSpline {
        RqSpline {
            bins: self.bins,
            bound: self.bound,
            min_bin_width: default_min_fraction(),
            min_bin_height: default_min_fraction(),
            min_derivative: default_min_fraction(),
        }
    }
}
