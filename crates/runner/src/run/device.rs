//! The device a command computes on, chosen explicitly (`--device cpu|cuda|cuda:N`): the CPU
//! is always available, a GPU only in a build with the `cuda` feature on a machine that has
//! one. Nothing probes for a GPU unless asked, so a CUDA build starts on a machine without a
//! driver as long as it computes on the CPU.

use std::fmt;
use std::str::FromStr;

use candle_core::{Device, DeviceLocation};

use crate::error::{Result, RunnerError};

/// `cpu` (the default) or `cuda:N`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DeviceChoice {
    /// The CPU, with the thread pool of `FLOWVAE_THREADS`.
    #[default]
    Cpu,
    /// CUDA device `N` (`cuda` is `cuda:0`).
    Cuda(usize),
}

impl FromStr for DeviceChoice {
    type Err = String;

    fn from_str(text: &str) -> std::result::Result<Self, String> {
        let expected = "expected cpu, cuda or cuda:N (N the GPU's index, from 0)";
        match text.trim() {
            "cpu" => Ok(Self::Cpu),
            "cuda" => Ok(Self::Cuda(0)),
            other => other
                .strip_prefix("cuda:")
                .and_then(|n| n.parse::<usize>().ok())
                .map(Self::Cuda)
                .ok_or_else(|| format!("`{text}`: {expected}")),
        }
    }
}

impl fmt::Display for DeviceChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Cpu => write!(f, "cpu"),
            Self::Cuda(n) => write!(f, "cuda:{n}"),
        }
    }
}

fn unavailable(choice: DeviceChoice, message: String) -> RunnerError {
    RunnerError::Config {
        file: "--device".into(),
        location: None,
        message: format!("{choice}: {message}"),
    }
}

/// The device of `choice`, or a clear error when CUDA is asked for and this build has no
/// CUDA, no device is present, or the index is out of range.
pub fn select_device(choice: DeviceChoice) -> Result<Device> {
    match choice {
        DeviceChoice::Cpu => Ok(Device::Cpu),
        DeviceChoice::Cuda(index) => cuda_device(choice, index),
    }
}

#[cfg(feature = "cuda")]
fn cuda_device(choice: DeviceChoice, index: usize) -> Result<Device> {
    if !candle_core::utils::cuda_is_available() {
        return Err(unavailable(choice, "no CUDA device is present".into()));
    }
    Device::new_cuda(index).map_err(|e| {
        let first = e.to_string().lines().next().unwrap_or_default().to_string();
        unavailable(choice, format!("cannot open this GPU ({first})"))
    })
}

#[cfg(not(feature = "cuda"))]
fn cuda_device(choice: DeviceChoice, _index: usize) -> Result<Device> {
    Err(unavailable(
        choice,
        "this flowvae was built without CUDA; rebuild it with `cargo build --release -p \
         flowvae --features cuda`, or compute on the CPU with `--device cpu`"
            .into(),
    ))
}

/// `cpu`, or `cuda:N (GPU name)` (`cuda:N` when the driver does not say), for summaries.
pub fn describe_device(device: &Device) -> String {
    match device.location() {
        DeviceLocation::Cpu => "cpu".into(),
        DeviceLocation::Cuda { gpu_id } => match gpu_name(device) {
            Some(name) => format!("cuda:{gpu_id} ({name})"),
            None => format!("cuda:{gpu_id}"),
        },
        DeviceLocation::Metal { gpu_id } => format!("metal:{gpu_id}"),
    }
}

/// The GPU's name as its driver reports it (`NVIDIA H200`), when there is one.
#[cfg(feature = "cuda")]
fn gpu_name(device: &Device) -> Option<String> {
    let cuda = device.as_cuda_device().ok()?;
    cuda.cuda_stream().context().name().ok()
}

#[cfg(not(feature = "cuda"))]
fn gpu_name(_device: &Device) -> Option<String> {
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_names_parse_and_bad_ones_say_what_is_expected() {
        assert_eq!("cpu".parse(), Ok(DeviceChoice::Cpu));
        assert_eq!("cuda".parse(), Ok(DeviceChoice::Cuda(0)));
        assert_eq!("cuda:3".parse(), Ok(DeviceChoice::Cuda(3)));
        for bad in ["foo", "cuda:", "cuda:-1", "gpu", "cuda:x"] {
            let err = bad.parse::<DeviceChoice>().unwrap_err();
            assert!(err.contains("expected cpu, cuda or cuda:N"), "{bad}: {err}");
        }
        assert_eq!(DeviceChoice::Cuda(2).to_string(), "cuda:2");
        assert_eq!(
            describe_device(&select_device(DeviceChoice::Cpu).unwrap()),
            "cpu"
        );
    }

    #[cfg(not(feature = "cuda"))]
    #[test]
    fn cuda_in_a_cpu_build_is_a_clear_error() {
        let err = select_device(DeviceChoice::Cuda(7))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("cuda:7: this flowvae was built without CUDA"),
            "{err}"
        );
    }
}
