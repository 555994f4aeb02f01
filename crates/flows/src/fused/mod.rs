//! Flow-specific CPU kernels: candle custom ops with their own backward, each checked in
//! value and gradient against the unfused composition it replaces (which stays the path on
//! other devices and when the op is switched off in the [`flowvae_nn::Runtime`]).

pub(crate) mod bjorck;
pub(crate) mod planar;
pub(crate) mod spline;
mod spline_bin;
mod spline_grad;
pub(crate) mod sylvester;

#[cfg(test)]
mod spline_tests;
#[cfg(test)]
mod tests;
