//! Helpers every subcommand uses: the device, `--set` overrides, and refusing to overwrite.

use std::path::Path;

use anyhow::Context;
use flowvae_runner::DeviceChoice;

/// The `--set KEY=VALUE` arguments, parsed and type-checked later against the config.
pub(crate) fn parse_overrides(set: &[String]) -> anyhow::Result<Vec<flowvae_runner::Override>> {
    set.iter()
        .map(|s| flowvae_runner::Override::parse(s).map_err(anyhow::Error::from))
        .collect()
}

/// The compute device of `--device` (the CPU unless asked for a GPU).
pub(crate) fn device(choice: DeviceChoice) -> anyhow::Result<flowvae_runner::Device> {
    flowvae_runner::select_device(choice).context("cannot select a device")
}

/// Fails when `path` exists and `--force` was not given: nothing a user wrote is replaced
/// without being asked. `alternative` names another way out (e.g. "or --out to choose
/// another file").
pub(crate) fn refuse_existing(path: &Path, force: bool, alternative: &str) -> anyhow::Result<()> {
    if path.exists() && !force {
        anyhow::bail!(
            "{} exists already; pass --force to replace it{alternative}",
            path.display()
        );
    }
    Ok(())
}
