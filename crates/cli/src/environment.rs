//! The only place flowvae reads environment variables: each is mapped onto a typed value that
//! the libraries receive ([`flowvae_flows::Runtime`], the test-only faults), and an unknown
//! value is an error naming the variable and what it accepts.
//! - `FLOWVAE_THREADS`: worker threads for the large products (default: the cores);
//! - `FLOWVAE_UNFUSED`: fused CPU kernels to switch off (`planar,bce`, or `all`);
//! - `FLOWVAE_FAULT`: fault injection for the reliability tests (debug builds only);
//! - `NO_COLOR`: plain log lines even on a terminal (they are plain when piped anyway);
//! - `RAYON_NUM_THREADS`: candle's own pool, pinned to 1 unless set (see
//!   `flowvae_runner::threads`).

use std::io::IsTerminal;

use anyhow::{anyhow, Context};
use flowvae_flows::{FusedOp, Runtime};

/// Whether log lines may carry colour: only on a terminal, and never when `NO_COLOR` is set
/// to anything (<https://no-color.org>).
pub(crate) fn log_colours() -> bool {
    std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

/// Pins candle's thread count, installs the runtime and the faults. Call it first thing in
/// `main`, while the process has one thread (changing the environment of a multi-threaded
/// process is racy). Returns the number of worker threads.
pub(crate) fn configure() -> anyhow::Result<usize> {
    let set_by_user = var("RAYON_NUM_THREADS")
        .and_then(|s| s.trim().parse::<usize>().ok())
        .is_some_and(|n| n > 0);
    if !set_by_user {
        // Also stops candle 0.11 from re-reading /proc/cpuinfo on every matmul.
        std::env::set_var("RAYON_NUM_THREADS", "1");
    }
    let threads = match var("FLOWVAE_THREADS") {
        Some(text) => Some(
            text.trim()
                .parse::<usize>()
                .ok()
                .filter(|&n| n > 0)
                .with_context(|| {
                    format!("FLOWVAE_THREADS={text:?}: expected a positive whole number")
                })?,
        ),
        None => None,
    };
    let unfused = FusedOp::parse_list(&var("FLOWVAE_UNFUSED").unwrap_or_default())
        .map_err(|e| anyhow!("FLOWVAE_UNFUSED: {e}"))?;
    let runtime = Runtime { threads, unfused };
    let workers = runtime.workers();
    runtime.install().map_err(|e| anyhow!(e))?;
    let faults = flowvae_train::Faults::parse(&var("FLOWVAE_FAULT").unwrap_or_default())
        .map_err(|e| anyhow!("FLOWVAE_FAULT: {e}"))?;
    flowvae_train::install_faults(faults).map_err(|e| anyhow!("FLOWVAE_FAULT: {e}"))?;
    Ok(workers)
}
