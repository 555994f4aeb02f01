//! Reports over finished runs: comparison tables and plots, and the labels that name flows
//! in them.

pub(crate) mod compare;
pub(crate) mod density_compare;
pub(crate) mod labels;
