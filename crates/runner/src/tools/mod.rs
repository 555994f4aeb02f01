//! The subcommands beside training: `flowvae bench`, `flowvae check`, `flowvae transform`.

pub(crate) mod agreement;
pub(crate) mod bench;
pub(crate) mod check;
pub(crate) mod density;
pub(crate) mod transform;
