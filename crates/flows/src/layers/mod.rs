//! The flow layers, one family per file (Sylvester in its own folder).

pub(crate) mod actnorm;
pub(crate) mod additive_coupling;
pub(crate) mod autoregressive;
pub(crate) mod batch_norm;
pub(crate) mod conditioner;
pub(crate) mod coupling;
pub(crate) mod elementwise;
pub(crate) mod householder;
pub(crate) mod lu_linear;
pub(crate) mod made;
pub(crate) mod permutation;
pub(crate) mod planar;
pub(crate) mod planar_stack;
pub(crate) mod radial;
pub(crate) mod spline;
pub(crate) mod sylvester;
