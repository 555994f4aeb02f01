//! The checkpoint's metadata path: random bytes can hardly pass the checksum, so the parsing
//! of the loop state behind it would never be reached by the `checkpoint` target. Here the
//! fuzzer's bytes become the metadata entries (`key=value` lines) of a correctly checksummed
//! file, which the loader must turn into a checkpoint or a typed error, never a panic.
#![no_main]

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::OnceLock;

use candle_core::{Device, Tensor};
use libfuzzer_sys::fuzz_target;

fn scratch() -> &'static PathBuf {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        std::env::temp_dir().join(format!(
            "flowvae-fuzz-metadata-{}.safetensors",
            std::process::id()
        ))
    })
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut metadata = BTreeMap::new();
    metadata.insert("format".to_string(), "flowvae-checkpoint-2".to_string());
    for line in text.lines() {
        if let Some((key, value)) = line.split_once('=') {
            metadata.insert(key.to_string(), value.to_string());
        }
    }
    let device = Device::Cpu;
    let w = Tensor::zeros((2, 3), candle_core::DType::F32, &device).expect("a tensor");
    let tensors: BTreeMap<String, Tensor> = [
        ("w".to_string(), w.clone()),
        ("optimizer.first.w".to_string(), w.clone()),
        ("optimizer.second.w".to_string(), w),
    ]
    .into();
    let Ok(bytes) = flowvae_nn::serialize_checked(&tensors, metadata) else {
        return;
    };
    let path = scratch();
    std::fs::write(path, bytes).expect("cannot write the scratch file");
    let _ = flowvae_runner::checkpoint::load(path, &device);
});
