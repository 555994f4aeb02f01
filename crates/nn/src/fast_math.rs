//! Branch-free f32 `exp`, `log1p` and their compositions that the compiler vectorizes, for the
//! fused kernels' inner loops (libm's scalar `expf` and `log1pf` do not vectorize; the gain is
//! measured in `results/bench/README.md`).
//!
//! Accuracy: relative error below 3e-7 against f64 (tested), i.e. a few f32 ulps.

const LOG2_E: f32 = std::f32::consts::LOG2_E;
/// ln 2 split so that `n · LN2_HI` is exact for the `n` that occur (Cody–Waite).
const LN2_HI: f32 = 0.693_359_4;
const LN2_LO: f32 = -2.121_944_4e-4;
/// Adding and subtracting 1.5 · 2²³ rounds an f32 of magnitude < 2²² to the nearest integer.
const ROUND_MAGIC: f32 = 12_582_912.0;

/// `eˣ` for `x ≤ 0`; inputs below −87 give `e⁻⁸⁷` (≈ 1.6e-38, the smallest normal range)
/// instead of a subnormal or 0, which no caller here can tell apart.
#[inline(always)]
pub fn exp_nonpositive(x: f32) -> f32 {
    let x = x.max(-87.0);
    let n = (x * LOG2_E + ROUND_MAGIC) - ROUND_MAGIC;
    let r = x - n * LN2_HI - n * LN2_LO;
    // Minimax polynomial for eʳ on |r| ≤ ln2 / 2 (the Cephes expf coefficients).
    let mut p = 1.987_569_1e-4_f32;
    p = p * r + 1.398_199_9e-3;
    p = p * r + 8.333_452e-3;
    p = p * r + 4.166_579_6e-2;
    p = p * r + 1.666_666_5e-1;
    p = p * r + 0.5;
    let er = p * r * r + r + 1.0;
    // 2ⁿ from its exponent bits; n ∈ [−126, 0] so the biased exponent stays in 1..=127.
    let scale = f32::from_bits(((n as i32 + 127) as u32) << 23);
    er * scale
}

/// `ln(1 + y)` for `y ∈ [0, 1]`, as `2 atanh(s)` with `s = y / (2 + y) ≤ 1/3`: the odd series
/// to `s¹⁵` leaves a relative error near 1e-9 before rounding.
#[inline(always)]
pub fn log1p_unit(y: f32) -> f32 {
    let s = y / (2.0 + y);
    let s2 = s * s;
    let mut q = 1.0 / 15.0_f32;
    q = q * s2 + 1.0 / 13.0;
    q = q * s2 + 1.0 / 11.0;
    q = q * s2 + 1.0 / 9.0;
    q = q * s2 + 1.0 / 7.0;
    q = q * s2 + 1.0 / 5.0;
    q = q * s2 + 1.0 / 3.0;
    q = q * s2 + 1.0;
    2.0 * s * q
}

/// The stable binary cross-entropy with logits, `max(l, 0) − l·t + ln(1 + e^(−|l|))`.
#[inline(always)]
pub fn bce_with_logits(l: f32, t: f32) -> f32 {
    l.max(0.0) - l * t + log1p_unit(exp_nonpositive(-l.abs()))
}

/// The logistic function `1 / (1 + e^(−l))`, without overflow for either sign.
#[inline(always)]
pub fn sigmoid(l: f32) -> f32 {
    let e = exp_nonpositive(-l.abs());
    let inv = 1.0 / (1.0 + e);
    if l >= 0.0 {
        inv
    } else {
        e * inv
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grid() -> impl Iterator<Item = f32> {
        (0..=20_000).map(|i| -100.0 + i as f32 * 0.01)
    }

    fn rel(a: f64, b: f64) -> f64 {
        (a - b).abs() / b.abs().max(1e-30)
    }

    #[test]
    fn exp_matches_f64_to_a_few_ulps() {
        for x in grid().filter(|&x| (-87.0..=0.0).contains(&x)) {
            let err = rel(exp_nonpositive(x) as f64, (x as f64).exp());
            assert!(err < 3e-7, "exp({x}): relative error {err:e}");
        }
        assert!(exp_nonpositive(-1e4) > 0.0 && exp_nonpositive(-1e4) < 1e-37);
        assert_eq!(exp_nonpositive(0.0), 1.0);
    }

    #[test]
    fn log1p_matches_f64_on_the_unit_interval() {
        for i in 0..=10_000 {
            let y = i as f32 / 10_000.0;
            let err = rel(log1p_unit(y) as f64, (y as f64).ln_1p());
            assert!(y == 0.0 || err < 3e-7, "log1p({y}): relative error {err:e}");
        }
        assert_eq!(log1p_unit(0.0), 0.0);
        let tiny = 1e-30f32;
        assert!(rel(log1p_unit(tiny) as f64, tiny as f64) < 1e-6);
    }

    #[test]
    fn bce_and_sigmoid_match_f64_for_logits_of_either_sign() {
        for l in grid() {
            for t in [0.0f32, 0.3, 1.0] {
                let (l64, t64) = (l as f64, t as f64);
                let want = l64.max(0.0) - l64 * t64 + (-l64.abs()).exp().ln_1p();
                let got = bce_with_logits(l, t) as f64;
                assert!(
                    (got - want).abs() <= 2e-7 * (1.0 + want.abs()),
                    "bce({l}, {t})"
                );
            }
            let want = 1.0 / (1.0 + (-(l as f64)).exp());
            let got = sigmoid(l) as f64;
            // Below −87 the true value is an f32 subnormal; the clamp answers e⁻⁸⁷ instead.
            let tolerance = if l < -87.0 { 2e-38 } else { 3e-7 * want };
            assert!(
                (got - want).abs() <= tolerance,
                "sigmoid({l}): {got} vs {want}"
            );
        }
    }
}
