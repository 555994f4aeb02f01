//! Config value types that validate while parsing, so that a bad value is reported with the
//! YAML line it is on.

use serde::{Deserialize, Serialize};

/// A finite number > 0 (learning rates, bounds, scales).
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd, Serialize, Deserialize)]
#[serde(try_from = "f64", into = "f64")]
pub struct Positive(f64);

impl Positive {
    /// A constant known in code to be positive (not checked: for defaults only).
    pub const fn new_const(v: f64) -> Self {
        Self(v)
    }
    /// The value.
    pub fn get(self) -> f64 {
        self.0
    }
}

impl TryFrom<f64> for Positive {
    type Error = String;
    fn try_from(v: f64) -> Result<Self, String> {
        if v > 0.0 && v.is_finite() {
            Ok(Self(v))
        } else {
            Err(format!("invalid value {v}, expected a finite number > 0"))
        }
    }
}

impl From<Positive> for f64 {
    fn from(p: Positive) -> f64 {
        p.0
    }
}

/// A number in [0, 1) (Adam's betas, dropout rates).
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd, Serialize, Deserialize)]
#[serde(try_from = "f64", into = "f64")]
pub struct UnitInterval(f64);

impl UnitInterval {
    /// A constant known in code to lie in [0, 1) (not checked: for defaults only).
    pub const fn new_const(v: f64) -> Self {
        Self(v)
    }
    /// The value.
    pub fn get(self) -> f64 {
        self.0
    }
}

impl TryFrom<f64> for UnitInterval {
    type Error = String;
    fn try_from(v: f64) -> Result<Self, String> {
        if (0.0..1.0).contains(&v) {
            Ok(Self(v))
        } else {
            Err(format!("invalid value {v}, expected a number in [0, 1)"))
        }
    }
}

impl From<UnitInterval> for f64 {
    fn from(p: UnitInterval) -> f64 {
        p.0
    }
}
