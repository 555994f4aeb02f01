//! IDX reader: any bytes (raw or gzipped) give images/labels or a typed error, never a panic
//! nor an allocation larger than the file justifies.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let path = Path::new("fuzz-idx-ubyte");
    if let Ok((n, rows, cols, pixels)) =
        flowvae_data::idx::read_idx_images_from_bytes(path, data.to_vec())
    {
        assert_eq!(pixels.len(), n * rows * cols);
        assert!(pixels.iter().all(|p| (0.0..=1.0).contains(p)));
    }
    let _ = flowvae_data::idx::read_idx_labels_from_bytes(path, data.to_vec());
});
