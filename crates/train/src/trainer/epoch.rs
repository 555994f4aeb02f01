//! One epoch of the training loop: its batches, the NaN policy's reactions, and the end of
//! the epoch (validation, metrics, checkpoints) or the rollback to the last checkpoint.

use candle_core::DType;
use flowvae_data::BatchMaker;
use flowvae_nn::{backward_with_sink, seeded, standard_normal, SeededRng, Stream};
use flowvae_vae::{bound_terms, warmup_beta, with_free_bits};

use super::evaluate::{evaluate_elbo, sum_f64, Averages};
use super::Trainer;
use crate::checkpoint::{load as load_checkpoint, save as save_checkpoint, LoopState};
use crate::error::{Result, TrainError};
use crate::nan_guard::{non_finite_parameter, non_finite_term, Reaction};
use crate::optim::Optimizer;
use crate::run_dir::write_atomic;

/// What became of one batch.
enum Batch {
    /// Trained on; its terms count towards the epoch's averages.
    Trained,
    /// Skipped by the NaN policy.
    Skipped,
    /// The NaN policy asks to go back to the last checkpoint.
    Rollback,
}

/// The per-epoch state the batches of one epoch share.
struct EpochDraws {
    maker: BatchMaker,
    noise: SeededRng,
    beta: f64,
}

impl Trainer<'_> {
    /// Trains epoch `self.epoch` and records it; `false` when the NaN policy asks for a
    /// rollback instead (nothing of the epoch is recorded then).
    pub(super) fn train_epoch(&mut self) -> Result<bool> {
        let (seed, epoch) = (self.sections.seed, self.epoch);
        let objective = self.sections.objective;
        let mut draws = EpochDraws {
            beta: warmup_beta(epoch, objective.warmup_epochs, objective.beta_start),
            maker: BatchMaker::for_training(self.sections.data.binarization, seed, epoch),
            noise: seeded(seed, Stream::EpochNoise(epoch)),
        };
        let mut totals = Averages::default();
        let order: Vec<Vec<usize>> = self.batcher.epoch(epoch as u64).collect();
        for (step, idx) in order.iter().enumerate() {
            match self.train_batch(&mut draws, idx, step, &mut totals)? {
                Batch::Trained | Batch::Skipped => {}
                Batch::Rollback => return Ok(false),
            }
        }
        self.end_epoch(draws.beta, totals)?;
        Ok(true)
    }

    /// One optimizer step on the rows `idx`, the `step`-th batch of the epoch.
    fn train_batch(
        &mut self,
        draws: &mut EpochDraws,
        idx: &[usize],
        step: usize,
        totals: &mut Averages,
    ) -> Result<Batch> {
        let samples = self.sections.objective.samples.get();
        let x = draws.maker.batch(&self.splits.train, idx, self.device)?;
        let shape = (idx.len() * samples, self.model.latent());
        let eps = standard_normal(&mut draws.noise, shape, DType::F32, self.device)?;
        let bound = self.sections.objective.bound;
        let mut terms = bound_terms(&self.model, &x, &eps, bound, samples, draws.beta)?;
        if let Some(free_bits) = self.sections.objective.free_bits {
            terms.objective = with_free_bits(&terms, free_bits.nats, draws.beta)?;
        }
        if crate::faults::nan_at(self.epoch, step) {
            terms.reconstruction = (&terms.reconstruction * f64::NAN)?;
            terms.objective = (&terms.objective + &terms.reconstruction)?;
        }
        let loss = terms.objective.mean_all()?.neg()?;
        let loss_value: f64 = loss.to_dtype(DType::F64)?.to_scalar()?;
        let fault = match loss_value.is_finite() {
            true => self.step_optimizer(&loss)?,
            false => {
                // Created now if this is the first batch, as an uninterrupted run would.
                self.optimizer()?;
                Some(format!("loss ({})", non_finite_term(&terms)?))
            }
        };
        if let Some(what) = fault {
            let at = format!("{what} at epoch {}, batch {step}", self.epoch);
            return Ok(match self.guard.react(&at, self.run)? {
                Reaction::Skip => Batch::Skipped,
                Reaction::Rollback => Batch::Rollback,
            });
        }
        totals.neg_elbo += sum_f64(&terms.neg_elbo)?;
        totals.recon += sum_f64(&terms.reconstruction)?;
        totals.kl += sum_f64(&terms.kl)?;
        Ok(Batch::Trained)
    }

    /// The optimizer, created at the current learning rate on first use.
    fn optimizer(&mut self) -> Result<&mut Optimizer> {
        Ok(match self.optimizer {
            Some(ref mut optimizer) => optimizer,
            None => {
                let created = self
                    .guard
                    .optimizer(self.store.vars(), self.sections.optimizer)?;
                self.optimizer.insert(created)
            }
        })
    }

    /// Backward pass and update; the name of a parameter whose gradient is not finite.
    fn step_optimizer(&mut self, loss: &candle_core::Tensor) -> Result<Option<String>> {
        self.optimizer()?;
        let grads = backward_with_sink(loss)?;
        let Some(optimizer) = self.optimizer.as_mut() else {
            return Ok(None);
        };
        match optimizer.step(&grads) {
            Ok(()) => Ok(None),
            Err(TrainError::NonFinite { .. }) => Ok(Some(format!(
                "gradient of {}",
                non_finite_parameter(&self.store, &grads)?
            ))),
            Err(e) => Err(e),
        }
    }

    /// Back to the last checkpoint, at the learning rate the NaN guard now asks for.
    pub(super) fn rollback(&mut self) -> Result<()> {
        let ck = load_checkpoint(&self.last_path, self.device)?;
        for (name, var) in self.store.named_vars() {
            var.set(&ck.params[&name])?;
        }
        let mut optimizer = self
            .guard
            .optimizer(self.store.vars(), self.sections.optimizer)?;
        ck.restore_optimizer(&mut optimizer, &self.store, &self.last_path)?;
        self.optimizer = Some(optimizer);
        self.epoch = ck.state.epochs_done;
        self.best = (ck.state.best_val, ck.state.best_epoch);
        Ok(())
    }

    /// Validation at β = 1, the metrics row, the best and last checkpoints, the log line.
    fn end_epoch(&mut self, beta: f64, totals: Averages) -> Result<()> {
        let epoch = self.epoch;
        let seen = self.batcher.items_per_epoch().max(1) as f64;
        let seed = self.sections.seed;
        let val = evaluate_elbo(
            &self.model,
            &self.splits.val,
            500,
            seed,
            Stream::Validation,
            self.device,
        )?;
        self.metrics.row(&[
            epoch as f64,
            beta,
            totals.neg_elbo / seen,
            totals.recon / seen,
            totals.kl / seen,
            val.neg_elbo,
            val.recon,
            val.kl,
            self.clock(),
        ])?;
        // Validation is always at β = 1, so epochs of the warm-up compare with the rest.
        if val.neg_elbo < self.best.0 {
            self.best = (val.neg_elbo, epoch);
            write_atomic(&self.best_path, &self.store.to_safetensors_bytes()?)?;
        }
        let loop_state = LoopState {
            epochs_done: epoch + 1,
            optimizer_steps: self.optimizer.as_ref().map_or(0, |o| o.steps_taken()),
            best_val: self.best.0,
            best_epoch: self.best.1,
            elapsed: self.clock(),
            lr_scale: self.guard.lr_scale,
            cpu_seconds: self.cpu_clock(),
        };
        let rows = self.metrics.rows_text();
        let optimizer = self.optimizer.as_ref();
        save_checkpoint(&self.last_path, &self.store, optimizer, &loop_state, &rows)?;
        self.epochs_run = epoch + 1;
        let note = format!("val -ELBO {:.3}", val.neg_elbo);
        self.progress.set(self.epochs_run as u64, &note);
        self.run.log(&format!(
            "epoch {epoch}: beta {beta:.3}, train -ELBO {:.4}, val -ELBO {:.4}",
            totals.neg_elbo / seen,
            val.neg_elbo
        ));
        self.epoch += 1;
        Ok(())
    }
}
