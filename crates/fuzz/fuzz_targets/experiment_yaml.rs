//! YAML experiment loader: any text gives an experiment or a typed error, never a panic.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(exp) = flowvae_runner::Experiment::parse(Path::new("fuzz.yaml"), text) {
        // The resolved configuration is printed into every run folder: it must not panic either.
        let _ = exp.name();
        let _ = exp.to_yaml();
    }
});
