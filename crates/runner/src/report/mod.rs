//! Reports over finished runs: comparison tables and plots, the self-contained HTML report,
//! and the labels that name flows in them.

pub(crate) mod compare;
pub(crate) mod density_compare;
pub(crate) mod groups;
pub(crate) mod html;
pub(crate) mod labels;
pub(crate) mod records;
pub(crate) mod stats;
