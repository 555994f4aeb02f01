//! Sylvester flows (van den Berg et al., 2018): `f(z) = z + Q R h(R̃ Qᵀ z + b)`.

use candle_core::{DType, Device, Tensor, D};
use candle_nn::VarBuilder;

use crate::error::{FlowError, Result};
use crate::flow::{Conditioning, Flow};
use crate::param_source::{split_columns, Block, ParamSource};

/// How the `D × M` matrix `Q` with orthonormal columns is made.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum SylvesterKind {
    /// `M ≤ D` columns from a free matrix by iterative orthogonalisation.
    Orthogonal { m: usize },
    /// `Q` (M = D) as a product of `reflections` Householder reflections.
    Householder { reflections: usize },
    /// `Q` (M = D) the identity or, when `reversed`, the reversal permutation.
    Triangular { reversed: bool },
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
    /// `(M, M)` ones strictly above the diagonal.
    strict_upper: Tensor,
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
        let upper: Vec<f64> = (0..m * m)
            .map(|i| if i % m > i / m { 1.0 } else { 0.0 })
            .collect();
        Ok(Self {
            dim,
            m,
            kind,
            source,
            strict_upper: Tensor::from_vec(upper, (m, m), &device)?.to_dtype(dtype)?,
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

/// `(1, D, D)` identity or reversal permutation.
fn permutation_matrix(d: usize, reversed: bool, dtype: DType, dev: &Device) -> Result<Tensor> {
    let values: Vec<f64> = (0..d * d)
        .map(|i| {
            let (row, col) = (i / d, i % d);
            let target = if reversed { d - 1 - row } else { row };
            if col == target {
                1.0
            } else {
                0.0
            }
        })
        .collect();
    Ok(Tensor::from_vec(values, (1, d, d), dev)?.to_dtype(dtype)?)
}

/// Iterative orthogonalisation `Q ← Q (I + ½(I − QᵀQ))` after scaling to spectral norm ≤ 1;
/// converges quadratically once close. Runs until `max|QᵀQ − I|` is below the dtype's
/// tolerance (checked every few steps) or 100 steps. A `Q` already within tolerance (one from
/// [`Flow::prepare_amortized`]) is returned as it is, at the cost of one `QᵀQ`.
fn orthogonalize(q: &Tensor, eye_m: &Tensor) -> Result<Tensor> {
    let tol = if q.dtype() == DType::F64 { 1e-13 } else { 1e-6 };
    let defect_of = |q: &Tensor| -> Result<Tensor> {
        let qtq = q.transpose(1, 2)?.contiguous()?.matmul(q)?;
        Ok(eye_m.broadcast_sub(&qtq)?)
    };
    if worst_entry(&defect_of(q)?)? < tol {
        return Ok(q.clone());
    }
    let norm = q.sqr()?.sum_keepdim((1, 2))?.sqrt()?;
    let mut q = q.broadcast_div(&norm)?;
    for step in 0..100 {
        let defect = defect_of(&q)?;
        if step % 4 == 0 && worst_entry(&defect)? < tol {
            break;
        }
        q = q.matmul(&(defect * 0.5)?.broadcast_add(eye_m)?)?;
    }
    Ok(q)
}

/// `max |a_ij|` over a batch of matrices `(rows, M, M)`.
fn worst_entry(a: &Tensor) -> Result<f64> {
    Ok(a.abs()?
        .max_keepdim(1)?
        .max_keepdim(2)?
        .flatten_all()?
        .max(0)?
        .to_dtype(DType::F64)?
        .to_scalar()?)
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
        let mut parts = split_columns(params, &self.block_widths())?;
        let q = self.q_matrix(parts.last())?;
        *parts.last_mut().expect("five blocks") = q.reshape((rows, self.dim * self.m))?;
        Ok(Tensor::cat(&parts, 1)?)
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
        let q_width = self.q_width();
        let parts = split_columns(&raw, &self.block_widths())?;
        let full = parts[0].reshape((rows, m, m))?;
        let (diag1, diag2) = (parts[1].tanh()?, parts[2].tanh()?);
        let b = parts[3].unsqueeze(1)?; // (rows, 1, M)
        let q = self.q_matrix((q_width > 0).then_some(&parts[4]))?; // (rows or 1, D, M)
        let diag_embed = |v: &Tensor| v.unsqueeze(2)?.broadcast_mul(&self.eye_m);
        let r = (full.broadcast_mul(&self.strict_upper)? + diag_embed(&diag1)?)?;
        let r_tilde =
            (full.transpose(1, 2)?.broadcast_mul(&self.strict_upper)? + diag_embed(&diag2)?)?;
        // A Q shared by every row (triangular kind) is one plain product over all n rows.
        let shared_q = (q.dim(0)? == 1 && rows > 1)
            .then(|| q.squeeze(0))
            .transpose()?;
        // Row-vector form on (rows, k, ·) blocks: zᵀ Q R̃ᵀ = (R̃ Qᵀ z)ᵀ, hᵀ Rᵀ Qᵀ = (Q R h)ᵀ.
        let zq = match &shared_q {
            Some(q) => z.matmul(q)?.reshape((rows, k, m))?,
            None => z.reshape((rows, k, d))?.matmul(&q)?,
        };
        let pre = zq
            .matmul(&r_tilde.transpose(1, 2)?.contiguous()?)?
            .broadcast_add(&b)?;
        let h = pre.tanh()?; // (rows, k, M)
        let rh = h.matmul(&r.transpose(1, 2)?.contiguous()?)?;
        let out = match &shared_q {
            Some(q) => rh.reshape((n, m))?.matmul(&q.t()?.contiguous()?)?,
            None => rh
                .matmul(&q.transpose(1, 2)?.contiguous()?)?
                .reshape((n, d))?,
        };
        let y = (z + out)?;
        let diag_product = (diag1 * diag2)?.unsqueeze(1)?; // (rows, 1, M)
        let derivative = h.sqr()?.affine(-1.0, 1.0)?; // (rows, k, M)
        let log_det = derivative
            .broadcast_mul(&diag_product)?
            .affine(1.0, 1.0)?
            .abs()?
            .log()?
            .sum(D::Minus1)?
            .reshape(n)?;
        Ok((y, log_det))
    }
}
