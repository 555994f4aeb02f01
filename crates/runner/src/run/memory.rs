//! Memory a run will need, estimated before anything large is allocated: a config with an
//! absurd size (`latent: 100000000`, `hidden: [4000000000]`) is refused with the field's name
//! and the estimate against the machine's memory, instead of aborting the process.

use candle_core::Device;
use flowvae_data::Dataset;
use flowvae_flows::ParamStore;
use flowvae_nn::human_bytes;
use flowvae_vae::Architecture;

use crate::error::{Result, RunnerError};
use crate::experiment::vae::ExperimentVae;

/// Bytes of memory the system can still hand out (`MemAvailable`), or `None` where it cannot
/// tell (then nothing is refused on memory grounds).
pub fn available_bytes() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib.saturating_mul(1024))
}

/// The share of memory parameters may take: training keeps four copies (values, gradients
/// and two Adam moments).
pub fn parameter_budget(available: Option<u64>) -> u64 {
    available.map_or(u64::MAX, |a| a / 4)
}

/// A store for a model that must fit in memory: it refuses parameters past
/// [`parameter_budget`] of the memory available, before allocating them.
pub fn limited_store(seed: u64) -> ParamStore {
    ParamStore::new(seed).with_memory_limit(parameter_budget(available_bytes()))
}

/// `err` from building a model on a [`limited_store`], said as the memory refusal it was
/// (naming `field`) when the store refused a parameter; otherwise `err` as it is.
pub fn explain_refusal(store: &ParamStore, err: RunnerError, field: &str) -> RunnerError {
    match store.refused() {
        Some(name) => RunnerError::Config {
            file: field.into(),
            location: None,
            message: format!(
                "the parameters do not fit in memory (refused at `{name}`, {} available for \
                 parameters); choose smaller layer counts or widths",
                human_bytes(parameter_budget(available_bytes()))
            ),
        },
        None => err,
    }
}

/// Bytes of a `rows × floats` block of f32.
fn block(rows: usize, floats: usize) -> u64 {
    (rows as u64)
        .saturating_mul(floats as u64)
        .saturating_mul(4)
}

/// Which field of the experiment sets the size of parameter `name`.
fn field_of(name: &str) -> &'static str {
    if name.starts_with("encoder") {
        "model.encoder / model.latent (encoder widths and heads)"
    } else if name.starts_with("decoder") {
        "model.decoder / model.latent (decoder widths)"
    } else {
        "flow (a layer of the stack)"
    }
}

fn too_large(field: String, needed: u64, available: u64, what: &str) -> RunnerError {
    RunnerError::Config {
        file: field.into(),
        location: None,
        message: format!(
            "{what} needs about {}, more than the {} of memory available; choose smaller sizes",
            human_bytes(needed),
            human_bytes(available)
        ),
    }
}

/// Refuses a Flow-VAE experiment whose parameters (×4 for training), training batch or
/// evaluation chunk would not fit in the memory available, naming the field responsible.
/// Builds the model once on a store that refuses oversized parameters before allocating them.
pub fn check_vae(exp: &ExperimentVae, train: &Dataset, device: &Device) -> Result<()> {
    let Some(available) = available_bytes() else {
        return Ok(());
    };
    check_vae_against(exp, train, device, available)
}

/// [`check_vae`] against a given amount of memory.
pub fn check_vae_against(
    exp: &ExperimentVae,
    train: &Dataset,
    device: &Device,
    available: u64,
) -> Result<()> {
    let input_dim = train.dim;
    for (_, single) in exp.expand() {
        let store =
            ParamStore::new(single.seed).with_memory_limit(parameter_budget(Some(available)));
        if let Err(err) = flowvae_train::build_model(&single.sections(), &store, input_dim, device)
        {
            return Err(match store.refused() {
                Some(name) => too_large(
                    field_of(&name).to_string(),
                    store.bytes_used().saturating_mul(4),
                    available,
                    &format!("training its parameters (refused at `{name}`)"),
                ),
                None => err.into(),
            });
        }
        let params = store.bytes_used().saturating_mul(4);
        let widths: usize = match single.model.architecture {
            Architecture::Mlp => {
                single.model.encoder.hidden.iter().sum::<usize>()
                    + single.model.decoder.hidden.iter().sum::<usize>()
            }
            // Feature maps of up to 2·channels per pixel, in both networks.
            Architecture::GatedConv => single
                .model
                .conv
                .channels
                .saturating_mul(input_dim)
                .saturating_mul(4),
        };
        // Per row: the input and its reconstruction, every hidden layer, the latent path
        // through the flows; forward, backward and temporaries about triple it.
        let per_row = input_dim
            .saturating_mul(4)
            .saturating_add(widths.saturating_mul(2))
            .saturating_add(
                single
                    .model
                    .latent
                    .saturating_mul(single.flow.len() * 4 + 8),
            )
            .saturating_mul(3);
        let batch = single.train.batch_size.get().min(train.n);
        let train_rows = batch.saturating_mul(single.objective.samples.get());
        let chunk = single.eval.nll_chunk.min(single.eval.nll_samples).get();
        let eval_rows = single.eval.nll_batch.get().saturating_mul(chunk);
        let training = params.saturating_add(block(train_rows, per_row));
        if training > available {
            let field = "train.batch_size × objective.samples".to_string();
            return Err(too_large(field, training, available, "training"));
        }
        let eval = params.saturating_add(block(eval_rows, per_row));
        if eval > available {
            let field = "eval.nll_batch × eval.nll_chunk".to_string();
            return Err(too_large(field, eval, available, "the test NLL's chunk"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::experiment::Experiment;

    fn experiment(extra: &str) -> ExperimentVae {
        let text = format!(
            "name: m\ndata:\n  source: digits\nmodel:\n  latent: 4\n  encoder: {{hidden: [64]}}\n  \
             decoder: {{hidden: [64]}}\n{extra}"
        );
        match Experiment::parse(std::path::Path::new("m.yaml"), &text).unwrap() {
            Experiment::Vae(e) => e,
            _ => unreachable!("a data section without `density:` makes a Flow-VAE experiment"),
        }
    }

    fn digits() -> Dataset {
        flowvae_data::digits_splits(0).unwrap().train
    }

    #[test]
    fn parameters_that_do_not_fit_name_the_part_and_the_estimate() {
        let err = check_vae_against(&experiment(""), &digits(), &Device::Cpu, 20_000)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("model.encoder") && err.contains("encoder."),
            "{err}"
        );
        assert!(err.contains("KiB of memory available"), "{err}");
        check_vae_against(&experiment(""), &digits(), &Device::Cpu, 1 << 30).unwrap();
    }

    #[test]
    fn a_refused_parameter_is_explained_with_the_field_and_its_name() {
        let store = ParamStore::new(0).with_memory_limit(64);
        let vb = store.var_builder(candle_core::DType::F32, &Device::Cpu);
        let err = RunnerError::from(vb.get(100, "w").unwrap_err());
        let text = explain_refusal(&store, err, "flow").to_string();
        assert!(
            text.starts_with("flow: ") && text.contains("refused at `w`"),
            "{text}"
        );
        let fine = ParamStore::new(0);
        let other = RunnerError::NonFinite {
            what: "x".into(),
            step: 0,
        };
        assert!(matches!(
            explain_refusal(&fine, other, "flow"),
            RunnerError::NonFinite { .. }
        ));
    }

    #[test]
    fn the_default_evaluation_of_an_mlp_fits_a_small_machine() {
        // Digits at the default NLL chunk (10 images × 500 samples) need well under 64 MiB;
        // counting convolution feature maps for an MLP would ask for several times more.
        check_vae_against(&experiment(""), &digits(), &Device::Cpu, 64 << 20).unwrap();
    }

    #[test]
    fn batches_and_nll_chunks_that_do_not_fit_name_their_fields() {
        let big_batch = experiment("objective: {bound: importance_weighted, samples: 100000}\n");
        let err = check_vae_against(&big_batch, &digits(), &Device::Cpu, 1 << 30)
            .unwrap_err()
            .to_string();
        assert!(err.contains("objective.samples"), "{err}");
        let big_chunk =
            experiment("eval: {nll_samples: 100000, nll_chunk: 100000, nll_batch: 1000}\n");
        let err = check_vae_against(&big_chunk, &digits(), &Device::Cpu, 1 << 30)
            .unwrap_err()
            .to_string();
        assert!(err.contains("eval.nll_chunk"), "{err}");
    }
}
