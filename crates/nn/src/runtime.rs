//! How this process uses the machine: the worker threads of the large products and which
//! fused CPU kernels are on. A program builds one [`Runtime`] value (the `flowvae` binary maps
//! its environment variables onto it, with clear errors for unknown values) and installs it
//! once, before any kernel runs; libraries never read the environment.
//!
//! The kernels consult the installed value instead of taking it as an argument because they
//! sit deep inside `Flow::forward` and candle's custom ops, whose signatures we do not own.

use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;
use std::sync::OnceLock;

/// A fused CPU kernel that can be switched off (for A/B measurements and debugging), falling
/// back to the composition of candle's ops it replaces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum FusedOp {
    /// All planar layers of a stack as one op.
    Planar,
    /// The Sylvester core between the products with `Q`.
    Sylvester,
    /// The Björck orthogonalisation of Sylvester's `Q`.
    Bjorck,
    /// Dense layer with bias (and ReLU).
    Linear,
    /// Bernoulli log-likelihood from logits.
    Bce,
    /// The optimizer's in-place Adam step.
    Adam,
    /// The column split of amortized parameters.
    Split,
    /// The monotone rational-quadratic spline of the `rq_*` flows, forward and inverse.
    Spline,
}

impl FusedOp {
    /// Every kernel, in the order of their names.
    pub const ALL: [FusedOp; 8] = [
        FusedOp::Planar,
        FusedOp::Sylvester,
        FusedOp::Bjorck,
        FusedOp::Linear,
        FusedOp::Bce,
        FusedOp::Adam,
        FusedOp::Split,
        FusedOp::Spline,
    ];

    /// The kernel's name (`planar`, `sylvester`, …).
    pub fn name(self) -> &'static str {
        match self {
            FusedOp::Planar => "planar",
            FusedOp::Sylvester => "sylvester",
            FusedOp::Bjorck => "bjorck",
            FusedOp::Linear => "linear",
            FusedOp::Bce => "bce",
            FusedOp::Adam => "adam",
            FusedOp::Split => "split",
            FusedOp::Spline => "spline",
        }
    }

    /// A comma-separated list of names (or `all`) as a set; an unknown name is an error that
    /// lists the valid ones.
    pub fn parse_list(list: &str) -> Result<BTreeSet<FusedOp>, String> {
        let mut set = BTreeSet::new();
        for item in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            if item.eq_ignore_ascii_case("all") {
                set.extend(FusedOp::ALL);
            } else {
                set.insert(item.parse()?);
            }
        }
        Ok(set)
    }
}

impl fmt::Display for FusedOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for FusedOp {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let lower = s.trim().to_ascii_lowercase();
        FusedOp::ALL
            .into_iter()
            .find(|op| op.name() == lower)
            .ok_or_else(|| {
                let names: Vec<&str> = FusedOp::ALL.iter().map(|op| op.name()).collect();
                format!(
                    "unknown fused kernel `{s}`; expected {} or all",
                    names.join(", ")
                )
            })
    }
}

/// The process's runtime settings; [`Runtime::default`] uses every core and every kernel.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Runtime {
    /// Worker threads for large products and row-parallel kernels; `None`: the available cores.
    pub threads: Option<usize>,
    /// Fused kernels switched off.
    pub unfused: BTreeSet<FusedOp>,
}

static INSTALLED: OnceLock<Runtime> = OnceLock::new();

impl Runtime {
    /// Makes `self` the process's runtime. Call it once, before any kernel runs; a second,
    /// different value is refused (the first one may already have been used).
    pub fn install(self) -> Result<(), String> {
        let installed = INSTALLED.get_or_init(|| self.clone());
        if *installed == self {
            Ok(())
        } else {
            Err(format!(
                "the runtime is installed already ({installed:?}); cannot change it to {self:?}"
            ))
        }
    }

    /// The installed runtime, or the default one if none was installed.
    pub fn current() -> &'static Runtime {
        INSTALLED.get_or_init(Runtime::default)
    }

    /// Whether kernel `op` is on.
    pub fn fused(&self, op: FusedOp) -> bool {
        !self.unfused.contains(&op)
    }

    /// Worker threads: the configured number, or the cores this process may use.
    pub fn workers(&self) -> usize {
        self.threads
            .filter(|&n| n > 0)
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_unknown_names_list_the_valid_ones() {
        for op in FusedOp::ALL {
            assert_eq!(op.name().parse::<FusedOp>().unwrap(), op);
        }
        let set = FusedOp::parse_list(" Planar, bce ,").unwrap();
        assert_eq!(set, [FusedOp::Planar, FusedOp::Bce].into());
        assert_eq!(
            FusedOp::parse_list("all").unwrap().len(),
            FusedOp::ALL.len()
        );
        let err = FusedOp::parse_list("planar,plannar").unwrap_err();
        assert!(
            err.contains("`plannar`")
                && err.contains("sylvester, bjorck")
                && err.contains("split, spline"),
            "{err}"
        );
    }

    #[test]
    fn workers_default_to_the_cores() {
        let runtime = Runtime::default();
        assert!(runtime.workers() >= 1);
        let two = Runtime {
            threads: Some(2),
            ..Runtime::default()
        };
        assert_eq!(two.workers(), 2);
        assert!(!Runtime {
            unfused: [FusedOp::Adam].into(),
            threads: None
        }
        .fused(FusedOp::Adam));
    }
}
