//! Sylvester flows (van den Berg et al., 2018): `f(z) = z + Q R h(R̃ Qᵀ z + b)`.

use candle_core::{Tensor, D};
use candle_nn::VarBuilder;

use crate::error::{FlowError, Result};
use crate::flow::{Conditioning, Flow};
use crate::fused::sylvester::{applicable as fused_applicable, sylvester_core};
use crate::param_source::{split_columns, Block, ParamSource};
use q::{orthogonalize, permutation_matrix, reflect, unit_reflections};

pub(crate) mod q;

/// How the `D × M` matrix `Q` with orthonormal columns is made.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum SylvesterKind {
    /// `M ≤ D` columns from a free matrix by iterative orthogonalisation.
    Orthogonal {
        /// Columns of `Q`, `1 ≤ M ≤ D`.
        m: usize,
    },
    /// `Q` (M = D) as a product of `reflections` Householder reflections.
    Householder {
        /// Number of reflections.
        reflections: usize,
    },
    /// `Q` (M = D) the identity or, when `reversed`, the reversal permutation.
    Triangular {
        /// Whether `Q` reverses the coordinates.
        reversed: bool,
    },
}

/// One Sylvester layer, global or amortized. `R`, `R̃` are upper triangular `M × M` with
/// diagonals through tanh, so `R_ii R̃_ii ∈ (−1, 1)` and the map is invertible for `h = tanh`.
/// With `QᵀQ = I`, `log|det J| = Σ_i log|1 + h'(·)_i R_ii R̃_ii|`.
#[derive(Debug)]
pub struct Sylvester {
    dim: usize,
    m: usize,
    kind: SylvesterKind,
    source: ParamSource,
    /// `(M, M)` ones strictly below the diagonal.
    strict_lower: Tensor,
    eye_m: Tensor,
    /// Fixed `Q` of the triangular kind, `(1, D, D)`.
    fixed_q: Option<Tensor>,
}

impl Sylvester {
    /// A Sylvester layer of the given kind on dimension `D`.
    pub fn new(vb: VarBuilder, dim: usize, kind: SylvesterKind, amortized: bool) -> Result<Self> {
        let m = match kind {
            SylvesterKind::Orthogonal { m } => m,
            _ => dim,
        };
        if m == 0 || m > dim {
            return Err(FlowError::InvalidConfig {
                field: "m".into(),
                message: format!("must be between 1 and the dimension {dim}, got {m}"),
            });
        }
        let mut blocks = vec![
            Block::normal("r_full", m * m, 0.05),
            Block::normal("diag1", m, 0.5),
            Block::normal("diag2", m, 0.5),
            Block::constant("b", m, 0.0),
        ];
        match kind {
            SylvesterKind::Orthogonal { .. } => blocks.push(Block::normal("q", dim * m, 1.0)),
            SylvesterKind::Householder { reflections } => {
                blocks.push(Block::normal("v", dim * reflections, 1.0))
            }
            SylvesterKind::Triangular { .. } => {}
        }
        let (dtype, device) = (vb.dtype(), vb.device().clone());
        let source = ParamSource::new(&vb, amortized, &blocks)?;
        let fixed_q = match kind {
            SylvesterKind::Triangular { reversed } => {
                Some(permutation_matrix(dim, reversed, dtype, &device)?)
            }
            _ => None,
        };
        let lower: Vec<f64> = (0..m * m)
            .map(|i| if i / m > i % m { 1.0 } else { 0.0 })
            .collect();
        Ok(Self {
            dim,
            m,
            kind,
            source,
            strict_lower: Tensor::from_vec(lower, (m, m), &device)?.to_dtype(dtype)?,
            eye_m: Tensor::eye(m, dtype, &device)?,
            fixed_q,
        })
    }

    /// Width of the block `Q` is made from.
    fn q_width(&self) -> usize {
        match self.kind {
            SylvesterKind::Orthogonal { m } => self.dim * m,
            SylvesterKind::Householder { reflections } => self.dim * reflections,
            SylvesterKind::Triangular { .. } => 0,
        }
    }

    /// Widths of the parameter blocks `R` (full), `diag R`, `diag R̃`, `b`, `Q` (raw), in the
    /// order of a parameter row; the one place that knows the layout.
    fn block_widths(&self) -> [usize; 5] {
        let m = self.m;
        [m * m, m, m, m, self.q_width()]
    }

    /// The parameter row as `[R, R̃, b` blocks (`M·M + 3M`)`, Q` block (raw)`]`.
    fn core_and_q(&self, raw: &Tensor) -> Result<(Tensor, Option<Tensor>)> {
        let [full, d1, d2, b, q] = self.block_widths();
        if q == 0 {
            return Ok((raw.clone(), None));
        }
        let mut parts = split_columns(raw, &[full + d1 + d2 + b, q])?;
        let q = parts.pop();
        Ok((parts.remove(0), q))
    }

    /// `(rows, D, M)` orthonormal columns from the raw block.
    fn q_matrix(&self, raw: Option<&Tensor>) -> Result<Tensor> {
        let (d, m) = (self.dim, self.m);
        match (self.kind, raw) {
            (SylvesterKind::Orthogonal { .. }, Some(raw)) => {
                let rows = raw.dim(0)?;
                orthogonalize(&raw.reshape((rows, d, m))?, &self.eye_m)
            }
            (SylvesterKind::Householder { reflections }, Some(raw)) => {
                let rows = raw.dim(0)?;
                let vs = raw.reshape((rows, reflections, d))?;
                let eye = Tensor::eye(d, raw.dtype(), raw.device())?;
                let mut q = eye.unsqueeze(0)?.repeat((rows, 1, 1))?;
                for i in 0..reflections {
                    let v = vs.narrow(1, i, 1)?; // (rows, 1, D)
                    let norm_sq = v.sqr()?.sum_keepdim(2)?; // (rows, 1, 1)
                    let qv = q.matmul(&v.transpose(1, 2)?.contiguous()?)?; // (rows, D, 1)
                    let update = qv.matmul(&v)?.broadcast_div(&norm_sq)?;
                    q = (q - (update * 2.0)?)?;
                }
                Ok(q)
            }
            _ => Ok(self.fixed_q.clone().expect("triangular kind has a fixed Q")),
        }
    }
}

impl Flow for Sylvester {
    fn name(&self) -> String {
        match self.kind {
            SylvesterKind::Orthogonal { .. } => "sylvester_orthogonal".into(),
            SylvesterKind::Householder { .. } => "sylvester_householder".into(),
            SylvesterKind::Triangular { .. } => "sylvester_triangular".into(),
        }
    }
    fn dim(&self) -> usize {
        self.dim
    }
    fn num_amortized_params(&self) -> usize {
        self.source.amortized_width()
    }

    /// Orthogonalises the amortized `Q` block once per data point (the costly part of this
    /// flow when `S` samples share it); the other blocks pass through.
    fn prepare_amortized(&self, params: &Tensor) -> Result<Tensor> {
        if !matches!(self.kind, SylvesterKind::Orthogonal { .. }) {
            return Ok(params.clone());
        }
        let rows = params.dim(0)?;
        let (core, raw_q) = self.core_and_q(params)?;
        let q = self.q_matrix(raw_q.as_ref())?;
        Ok(Tensor::cat(
            &[core, q.reshape((rows, self.dim * self.m))?],
            1,
        )?)
    }

    /// `(B, D) → (B, D)`. Parameter rows may be shared by consecutive input rows
    /// ([`Conditioning`]): the `k` rows of one parameter row run as one `(k, D)` block, so
    /// `Q`, `R` and `R̃` are built once per parameter row.
    fn forward(&self, z: &Tensor, cond: Conditioning<'_>) -> Result<(Tensor, Tensor)> {
        let m = self.m;
        let (n, d) = z.dims2()?;
        let raw = self.source.resolve_shared(&cond, &self.name(), n)?;
        let rows = raw.dim(0)?; // 1 (global) or a divisor of n (amortized)
        let k = n / rows;
        let (core, raw_q) = self.core_and_q(&raw)?;
        if let (SylvesterKind::Householder { reflections }, 1, Some(raw_q)) = (self.kind, k, &raw_q)
        {
            // One input row per parameter row (training): reflect the row vectors instead of
            // building each row's D × D matrix Q.
            let units = unit_reflections(raw_q, reflections, d)?;
            let zq = reflect(z, &units, false)?.reshape((rows, 1, m))?;
            let (rh, log_det) = self.core(&zq, &core)?;
            let out = reflect(&rh.reshape((n, m))?, &units, true)?;
            return Ok(((z + out)?, log_det));
        }
        let q = self.q_matrix(raw_q.as_ref())?; // (rows or 1, D, M)
                                                // A Q shared by every row (triangular kind) is one plain product over all n rows.
        let shared_q = (q.dim(0)? == 1 && rows > 1)
            .then(|| q.squeeze(0))
            .transpose()?;
        // Row-vector form on (rows, k, ·) blocks: zᵀ Q R̃ᵀ = (R̃ Qᵀ z)ᵀ, hᵀ Rᵀ Qᵀ = (Q R h)ᵀ.
        let zq = match &shared_q {
            Some(q) => z.matmul(q)?.reshape((rows, k, m))?,
            None => z.reshape((rows, k, d))?.matmul(&q)?,
        };
        let (rh, log_det) = self.core(&zq, &core)?;
        let out = match &shared_q {
            Some(q) => rh.reshape((n, m))?.matmul(&q.t()?.contiguous()?)?,
            None => rh
                .matmul(&q.transpose(1, 2)?.contiguous()?)?
                .reshape((n, d))?,
        };
        Ok(((z + out)?, log_det))
    }
}

impl Sylvester {
    /// `R h` `(rows, k, M)` and `log|det J|` `(rows·k,)` from `zq = zᵀQ` `(rows, k, M)` and the
    /// `[R, R̃, b]` blocks `(rows, M·M + 3M)`: one fused op on the CPU
    /// ([`crate::fused::sylvester`]), the composition of [`Self::triangular_part`] and
    /// [`log_det`] elsewhere.
    fn core(&self, zq: &Tensor, core: &Tensor) -> Result<(Tensor, Tensor)> {
        if fused_applicable(zq, core) {
            return Ok(sylvester_core(zq, core)?);
        }
        self.core_unfused(zq, core)
    }

    /// The reference composition of [`Self::core`].
    fn core_unfused(&self, zq: &Tensor, core: &Tensor) -> Result<(Tensor, Tensor)> {
        let m = self.m;
        let (rows, k, _) = zq.dims3()?;
        let parts = split_columns(core, &[m * m, m, m, m])?;
        let full = parts[0].reshape((rows, m, m))?;
        let (diag1, diag2) = (parts[1].tanh()?, parts[2].tanh()?);
        let b = parts[3].unsqueeze(1)?; // (rows, 1, M)
        let (h, rh) = self.triangular_part(zq, &full, &diag1, &diag2, &b)?;
        Ok((rh, log_det(&h, &diag1, &diag2, rows * k)?))
    }

    /// The part between the two products with `Q`, on `(rows, k, M)` blocks `zq = zᵀQ`:
    /// `h = tanh(zq R̃ᵀ + b)` and `h Rᵀ`, both `(rows, k, M)`. `R`'s strict upper triangle is
    /// `full`'s, `R̃`'s is `fullᵀ`'s; their diagonals are `diag1`, `diag2` `(rows, M)`.
    fn triangular_part(
        &self,
        zq: &Tensor,
        full: &Tensor,
        diag1: &Tensor,
        diag2: &Tensor,
        b: &Tensor,
    ) -> Result<(Tensor, Tensor)> {
        // Row-vector form without building R or R̃: (zq R̃ᵀ)_i = diag2_i zq_i + Σ_{j>i} full_ji
        // zq_j = (zq ⊙ diag2 + zq L)_i with L = full's strict lower triangle, and
        // (h Rᵀ)_i = diag1_i h_i + Σ_{j>i} full_ij h_j = (h ⊙ diag1 + h Uᵀ)_i with
        // Uᵀ = fullᵀ's strict lower triangle. Two (M, M) products and two masks per block.
        let lower = full.broadcast_mul(&self.strict_lower)?;
        let upper_t = full.transpose(1, 2)?.broadcast_mul(&self.strict_lower)?;
        let pre = (zq.matmul(&lower)? + zq.broadcast_mul(&diag2.unsqueeze(1)?)?)?;
        let h = pre.broadcast_add(b)?.tanh()?;
        let rh = (h.matmul(&upper_t)? + h.broadcast_mul(&diag1.unsqueeze(1)?)?)?;
        Ok((h, rh))
    }
}

/// `log|det J| = Σ_i log|1 + h'_i R_ii R̃_ii|` per input row, `(n,)`; `h` `(rows, k, M)`.
fn log_det(h: &Tensor, diag1: &Tensor, diag2: &Tensor, n: usize) -> Result<Tensor> {
    let diag_product = (diag1 * diag2)?.unsqueeze(1)?; // (rows, 1, M)
    let derivative = h.sqr()?.affine(-1.0, 1.0)?; // (rows, k, M)
    Ok(derivative
        .broadcast_mul(&diag_product)?
        .affine(1.0, 1.0)?
        .abs()?
        .log()?
        .sum(D::Minus1)?
        .reshape(n)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device};
    use flowvae_nn::ParamStore;

    /// The masked products give what the explicit matrices of van den Berg et al. give:
    /// `R = triu(full, 1) + diag(d1)`, `R̃ = triu(fullᵀ, 1) + diag(d2)`, `h = tanh(R̃ zq + b)`,
    /// `R h` (their `full_d * triu_mask` and `full_d.transpose * triu_mask`).
    #[test]
    fn triangular_part_matches_the_explicit_r_and_r_tilde() {
        let (rows, m) = (3, 4);
        let store = ParamStore::new(0);
        let layer = Sylvester::new(
            store.var_builder(DType::F64, &Device::Cpu),
            m,
            SylvesterKind::Triangular { reversed: false },
            true,
        )
        .unwrap();
        let values = |n: usize, seed: f64| -> Vec<f64> {
            (0..n).map(|i| ((i as f64 + seed) * 0.37).sin()).collect()
        };
        let (full, d1, d2, b, zq) = (
            values(rows * m * m, 1.0),
            values(rows * m, 2.0),
            values(rows * m, 3.0),
            values(rows * m, 4.0),
            values(rows * m, 5.0),
        );
        let t = |v: &[f64], shape: &[usize]| Tensor::from_slice(v, shape, &Device::Cpu).unwrap();
        let (h, rh) = layer
            .triangular_part(
                &t(&zq, &[rows, 1, m]),
                &t(&full, &[rows, m, m]),
                &t(&d1, &[rows, m]),
                &t(&d2, &[rows, m]),
                &t(&b, &[rows, 1, m]),
            )
            .unwrap();
        let (h, rh) = (
            h.flatten_all().unwrap().to_vec1::<f64>().unwrap(),
            rh.flatten_all().unwrap().to_vec1::<f64>().unwrap(),
        );
        for r in 0..rows {
            let f = |i: usize, j: usize| full[r * m * m + i * m + j];
            let upper = |i: usize, j: usize, diag: &[f64], transposed: bool| match i.cmp(&j) {
                std::cmp::Ordering::Less if transposed => f(j, i),
                std::cmp::Ordering::Less => f(i, j),
                std::cmp::Ordering::Equal => diag[r * m + i],
                std::cmp::Ordering::Greater => 0.0,
            };
            for i in 0..m {
                let pre: f64 = (0..m)
                    .map(|j| upper(i, j, &d2, true) * zq[r * m + j])
                    .sum::<f64>()
                    + b[r * m + i];
                assert!((h[r * m + i] - pre.tanh()).abs() < 1e-12);
            }
            for i in 0..m {
                let expected: f64 = (0..m).map(|j| upper(i, j, &d1, false) * h[r * m + j]).sum();
                assert!((rh[r * m + i] - expected).abs() < 1e-12);
            }
        }
    }
}
