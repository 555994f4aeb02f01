//! The end of a 2-D run: the learned density against the target on a grid, samples, the
//! final metrics and the loss curve.

use candle_core::{DType, Device, Tensor};
use flowvae_flows::Conditioning;
use flowvae_nn::{seeded, SeededRng};
use serde_json::json;

use super::two_d::{
    mean_f64, points_tensor, tensor_points, walled_energy, walled_energy_f64, Model, GRID_CHUNK,
};
use crate::error::Result;
use crate::experiment::{Experiment2d, Target2d};
use flowvae_plot::{density_side_by_side, line_chart, scatter, Grid2d, Series};
use flowvae_train::RunDir;

fn extent(exp: &Experiment2d) -> ((f64, f64), (f64, f64)) {
    if let Some([x0, x1, y0, y1]) = exp.plot.extent {
        return ((x0, x1), (y0, y1));
    }
    let e = match exp.target {
        Target2d::Energy(t) => t.extent(),
        Target2d::Samples(t) => t.extent(),
    };
    ((e.x[0], e.x[1]), (e.y[0], e.y[1]))
}

/// Normalised histogram of points on the grid's cells.
fn histogram(points: &[[f64; 2]], grid: &mut Grid2d) {
    let (w, h) = grid.cell_size();
    for p in points {
        let i = ((p[0] - grid.x_range.0) / w).floor();
        let j = ((p[1] - grid.y_range.0) / h).floor();
        if i >= 0.0 && j >= 0.0 && (i as usize) < grid.nx && (j as usize) < grid.ny {
            grid.values[j as usize * grid.nx + i as usize] += 1.0;
        }
    }
    let scale = 1.0 / (points.len().max(1) as f64 * w * h);
    grid.values.iter_mut().for_each(|v| *v *= scale);
}

fn learned_density(
    model: &Model,
    grid: &mut Grid2d,
    samples: &[[f64; 2]],
    device: &Device,
) -> Result<&'static str> {
    if !model.stack().is_invertible() {
        histogram(samples, grid);
        return Ok("histogram of samples (the stack has no inverse)");
    }
    let centers = grid.cell_centers();
    let mut values = Vec::with_capacity(centers.len());
    for chunk in centers.chunks(GRID_CHUNK) {
        let log_p = model
            .dist
            .log_prob(&points_tensor(chunk, device)?, Conditioning::none())?;
        let v: Vec<f32> = log_p.exp()?.to_vec1()?;
        values.extend(
            v.iter()
                .map(|&p| if p.is_finite() { f64::from(p) } else { 0.0 }),
        );
    }
    grid.values = values;
    Ok("exact density by the inverse")
}

pub(super) fn report_2d(
    exp: &Experiment2d,
    model: &Model,
    run: &RunDir,
    device: &Device,
    noise: &mut SeededRng,
    test_set: Option<&Tensor>,
) -> Result<serde_json::Value> {
    let (xr, yr) = extent(exp);
    let n = exp.plot.grid.get();
    let (samples_t, log_q) = model.dist.sample(
        exp.plot.samples.get().max(20_000),
        noise,
        DType::F32,
        device,
        Conditioning::none(),
    )?;
    let samples = tensor_points(&samples_t)?;
    let mut learned = Grid2d::new(xr, yr, n, n);
    let how = learned_density(model, &mut learned, &samples, device)?;
    let (target_grid, final_metrics) = match exp.target {
        Target2d::Energy(target) => {
            let wall = exp.train.wall;
            let mut grid = Grid2d::evaluate(xr, yr, n, n, |x, y| {
                (-walled_energy_f64(target, x, y, wall)).exp()
            });
            let (w, h) = grid.cell_size();
            let z: f64 = grid.values.iter().sum::<f64>() * w * h;
            grid.values.iter_mut().for_each(|v| *v /= z);
            let energy = walled_energy(target, &samples_t, wall)?;
            let objective = mean_f64(&(log_q + energy)?)?;
            let metrics = json!({
                "reverse_kl_objective": objective,
                "log_z_on_grid": z.ln(),
                "kl_q_p": objective + z.ln(),
                "mass_in_extent": learned.values.iter().sum::<f64>() * w * h,
            });
            (grid, metrics)
        }
        Target2d::Samples(toy) => {
            let mut grid = Grid2d::new(xr, yr, n, n);
            histogram(
                &toy.sample(200_000, &mut seeded(exp.seed, flowvae_nn::Stream::Plot)),
                &mut grid,
            );
            let nll = match test_set {
                Some(t) => mean_f64(&model.dist.log_prob(t, Conditioning::none())?.neg()?)?,
                None => f64::NAN,
            };
            (grid, json!({ "test_nll": nll }))
        }
    };
    let target_title = match exp.target {
        Target2d::Energy(t) => format!("target exp(-{})", t.name().to_uppercase()),
        Target2d::Samples(t) => format!("target {}", t.name()),
    };
    let learned_title = format!("learned: {}", crate::report::labels::stack_label(&exp.flow));
    density_side_by_side(
        &run.file("plots/density.png")?,
        &[(&target_title, &target_grid), (&learned_title, &learned)],
    )?;
    let shown = &samples[..exp.plot.samples.get().min(samples.len())];
    scatter(
        &run.file("plots/samples.png")?,
        &format!("samples: {}", crate::report::labels::stack_label(&exp.flow)),
        shown,
        xr,
        yr,
    )?;
    let mut metrics = final_metrics;
    metrics["learned_density"] = json!(how);
    Ok(metrics)
}

pub(super) fn plot_curve(exp: &Experiment2d, run: &RunDir, curve: Vec<(f64, f64)>) -> Result<()> {
    let label = match exp.target {
        Target2d::Energy(_) => "E_q[log q + U] (beta = 1)",
        Target2d::Samples(_) => "train NLL (nats)",
    };
    let series = [Series {
        name: exp.name.clone(),
        points: curve,
    }];
    line_chart(
        &run.file("plots/loss.png")?,
        &exp.name,
        "step",
        label,
        &series,
    )?;
    Ok(())
}
