//! Checkpoint loader and parameter-file loader: any bytes give a checkpoint / parameter
//! store or a typed error, never a panic. Both readers take a path, so the bytes go to a
//! per-process temporary file first.
#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;

use candle_core::{DType, Device};
use libfuzzer_sys::fuzz_target;

fn scratch() -> &'static PathBuf {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        std::env::temp_dir().join(format!(
            "flowvae-fuzz-checkpoint-{}.safetensors",
            std::process::id()
        ))
    })
}

fuzz_target!(|data: &[u8]| {
    let path = scratch();
    std::fs::write(path, data).expect("cannot write the scratch file");
    let device = Device::Cpu;
    let _ = flowvae_runner::checkpoint::load(path, &device);
    let _ = flowvae_flows::ParamStore::from_safetensors(path, DType::F32, &device);
});
