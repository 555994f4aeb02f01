//! IDX readers (raw and gzipped) on small files the tests write themselves. Every bad-file
//! error must name the file and the problem.

mod common;

use common::{err_text, gzip, write};
use flowvae_data::idx::{read_idx_images, IDX_U8_IMAGES, IDX_U8_LABELS};
use flowvae_data::{load_idx_pair, load_mnist_dir, DataError, MnistKind, ValidationSplit};

/// IDX images `(n, rows, cols)` with pixel `(i, p)` = `(7 i + p) mod 256`.
fn idx_images(n: usize, rows: usize, cols: usize) -> Vec<u8> {
    let mut b = IDX_U8_IMAGES.to_be_bytes().to_vec();
    for d in [n, rows, cols] {
        b.extend((d as u32).to_be_bytes());
    }
    b.extend(
        (0..n * rows * cols).map(|k| ((7 * (k / (rows * cols)) + k % (rows * cols)) % 256) as u8),
    );
    b
}

fn idx_labels(n: usize) -> Vec<u8> {
    let mut b = IDX_U8_LABELS.to_be_bytes().to_vec();
    b.extend((n as u32).to_be_bytes());
    b.extend((0..n).map(|i| (i % 10) as u8));
    b
}

#[test]
fn idx_raw_and_gz_read_the_same() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let img = write(d, "i", &idx_images(5, 3, 4));
    let lab = write(d, "l", &idx_labels(5));
    let img_gz = write(d, "i.gz", &gzip(&idx_images(5, 3, 4)));
    let lab_gz = write(d, "l.gz", &gzip(&idx_labels(5)));
    let a = load_idx_pair(&img, &lab).unwrap();
    let b = load_idx_pair(&img_gz, &lab_gz).unwrap();
    assert_eq!((a.n, a.height, a.width, a.dim), (5, 3, 4, 12));
    assert_eq!(a.images, b.images);
    assert_eq!(a.labels, vec![0, 1, 2, 3, 4]);
    assert_eq!(a.row(1)[2], 9.0 / 255.0);
    assert!(a.images.iter().all(|v| (0.0..=1.0).contains(v)));
}

#[test]
fn idx_wrong_magic_names_file_offset_and_expected_magic() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let lab = write(d, "train-labels-idx1-ubyte", &idx_labels(5));
    // A labels file passed as images.
    let (e, s) = err_text(read_idx_images(&lab));
    assert!(
        matches!(e, DataError::WrongMagic { found: 0x801, .. }),
        "{s}"
    );
    assert!(
        s.contains("train-labels-idx1-ubyte: wrong magic 0x00000801 at offset 0"),
        "{s}"
    );
    assert!(s.contains("expected 0x00000803 (IDX u8 images)"), "{s}");
    let zeros = write(d, "z.gz", &gzip(&[0u8; 32]));
    let (_, s) = err_text(read_idx_images(&zeros));
    assert!(
        s.contains("z.gz: wrong magic 0x00000000 at offset 0, expected 0x00000803"),
        "{s}"
    );
}

#[test]
fn idx_truncated_reports_offset_and_expected_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let full = idx_images(5, 3, 4); // 16-byte header + 60 pixels
    let short = write(d, "short", &full[..full.len() - 7]);
    let (e, s) = err_text(read_idx_images(&short));
    assert!(
        matches!(
            e,
            DataError::Truncated {
                offset: 16,
                expected: 60,
                available: 53,
                ..
            }
        ),
        "{s}"
    );
    assert!(
        s.contains("short: truncated") && s.contains("needs 60 bytes from offset 16"),
        "{s}"
    );
    let short_gz = write(d, "short.gz", &gzip(&full[..full.len() - 7]));
    let (_, s) = err_text(read_idx_images(&short_gz));
    assert!(s.contains("decompressed"), "{s}");
    let header = write(d, "header", &full[..10]);
    let (e, s) = err_text(read_idx_images(&header));
    assert!(
        matches!(
            e,
            DataError::Truncated {
                offset: 4,
                expected: 12,
                ..
            }
        ),
        "{s}"
    );
    let tiny = write(d, "tiny", &full[..2]);
    assert!(matches!(
        read_idx_images(&tiny),
        Err(DataError::Truncated { .. })
    ));
    let empty = write(d, "empty", &[]);
    let (e, s) = err_text(read_idx_images(&empty));
    assert!(
        matches!(e, DataError::Empty { .. }) && s.contains("empty: empty file"),
        "{s}"
    );
}

#[test]
fn idx_wrong_size_and_count_mismatch() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let mut long = idx_images(5, 3, 4);
    long.extend([1, 2, 3]);
    let long = write(d, "long", &long);
    let (e, s) = err_text(read_idx_images(&long));
    assert!(matches!(e, DataError::WrongSize { .. }), "{s}");
    assert!(
        s.contains("long: wrong size at offset 76: got 79 bytes, expected 76 bytes"),
        "{s}"
    );
    let img = write(d, "img", &idx_images(5, 3, 4));
    let lab = write(d, "lab", &idx_labels(4));
    let (e, s) = err_text(load_idx_pair(&img, &lab));
    assert!(
        matches!(
            e,
            DataError::CountMismatch {
                n_images: 5,
                n_labels: 4,
                ..
            }
        ),
        "{s}"
    );
    assert!(
        s.contains("img holds 5 images but") && s.contains("lab holds 4 labels"),
        "{s}"
    );
}

#[test]
fn mnist_dir_finds_standard_names_and_carves_validation() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write(
        d,
        "train-images-idx3-ubyte.gz",
        &gzip(&idx_images(20, 2, 2)),
    );
    write(d, "train-labels-idx1-ubyte", &idx_labels(20));
    write(d, "t10k-images.idx3-ubyte", &idx_images(6, 2, 2));
    write(d, "t10k-labels-idx1-ubyte.gz", &gzip(&idx_labels(6)));
    let s = load_mnist_dir(d, MnistKind::FashionMnist, ValidationSplit::Last(5)).unwrap();
    assert_eq!((s.train.n, s.val.n, s.test.n), (15, 5, 6));
    assert_eq!(s.val.labels, vec![5, 6, 7, 8, 9]);
    assert_eq!(s.val.name, "fashion_mnist/val");
    assert_eq!(s.test.name, "fashion_mnist/test");

    let random = ValidationSplit::Random { size: 5, seed: 3 };
    let a = load_mnist_dir(d, MnistKind::Mnist, random).unwrap();
    assert_eq!(a, load_mnist_dir(d, MnistKind::Mnist, random).unwrap());
    assert_eq!((a.train.n, a.val.n), (15, 5));
    // Validation and training rows are disjoint and together make up the IDX training set
    // (row i starts with pixel 7 i, a unique key here).
    let key = |v: f32| (v * 255.0).round() as u32 / 7;
    let mut keys: Vec<u32> = [&a.train, &a.val]
        .iter()
        .flat_map(|s| (0..s.n).map(|i| key(s.row(i)[0])))
        .collect();
    keys.sort_unstable();
    assert_eq!(keys, (0..20).collect::<Vec<_>>());
    assert_ne!(
        a.val.labels, s.val.labels,
        "random split picked the last rows"
    );

    let (e, msg) = err_text(load_mnist_dir(
        d,
        MnistKind::Mnist,
        ValidationSplit::Last(20),
    ));
    assert!(matches!(e, DataError::Split { .. }), "{msg}");
    std::fs::remove_file(d.join("t10k-labels-idx1-ubyte.gz")).unwrap();
    let (e, msg) = err_text(load_mnist_dir(
        d,
        MnistKind::Mnist,
        ValidationSplit::Last(5),
    ));
    assert!(matches!(e, DataError::NotFound { .. }), "{msg}");
    assert!(msg.contains("t10k-labels-idx1-ubyte.gz"), "{msg}");
}
