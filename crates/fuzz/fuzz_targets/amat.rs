//! `.amat` reader: any bytes (raw or gzipped) give a data set or a typed error, never a panic.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let path = Path::new("fuzz.amat");
    if let Ok(ds) = flowvae_data::amat::load_amat_from_bytes(path, data.to_vec(), "fuzz") {
        assert_eq!(ds.images.len(), ds.n * ds.dim);
        assert!(ds.n > 0 && ds.images.iter().all(|p| (0.0..=1.0).contains(p)));
    }
});
