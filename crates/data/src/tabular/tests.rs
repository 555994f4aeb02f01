use std::path::{Path, PathBuf};

use super::*;

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

fn csv(path: PathBuf) -> CsvSource {
    CsvSource {
        path,
        columns: None,
        header: true,
    }
}

/// An `.npy` file of `values` with the given header fields.
fn npy(descr: &str, fortran: bool, shape: &str, payload: &[u8]) -> Vec<u8> {
    let fortran = if fortran { "True" } else { "False" };
    let mut header =
        format!("{{'descr': '{descr}', 'fortran_order': {fortran}, 'shape': {shape}, }}");
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
    bytes.extend((header.len() as u16).to_le_bytes());
    bytes.extend(header.as_bytes());
    bytes.extend(payload);
    bytes
}

#[test]
fn a_csv_with_a_header_and_chosen_columns_reads_back() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        dir.path(),
        "t.csv",
        b"\xef\xbb\xbfa,b,c\n1,2,3\n4.5,-5,6e1\n\n7,8,9\n",
    );
    let (data, names) = load_csv(&csv(path.clone())).unwrap();
    assert_eq!((data.n, data.dim, data.height), (3, 3, 1));
    assert_eq!(data.row(1), &[4.5, -5.0, 60.0]);
    assert_eq!(names, vec!["a", "b", "c"]);
    let mut source = csv(path);
    source.columns = Some(vec!["c".into(), "a".into()]);
    let (data, names) = load_csv(&source).unwrap();
    assert_eq!(data.row(2), &[9.0, 7.0]);
    assert_eq!(names, vec!["c", "a"]);
}

#[test]
fn bad_csv_files_name_the_file_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    for (text, expected) in [
        (
            "a,b\n1,2\n3,x\n",
            "line 3, value 2: `x` is not a number, expected a number in column `b`",
        ),
        ("a,b\n1,2\n3\n", "wrong size on line 3: got 1 columns"),
        (
            "a,b\n1,2\n3,NaN\n",
            "non-finite value NaN on line 3, value 2",
        ),
        ("a,b\n1,inf\n", "non-finite value inf on line 2"),
        ("a,b\n1,2\n1,3\n", "column 1 is constant (1)"),
        ("a,b\n", "empty file"),
        ("", "empty file"),
    ] {
        let path = write(dir.path(), "bad.csv", text.as_bytes());
        let err = load_csv(&csv(path)).unwrap_err().to_string();
        assert!(
            err.contains("bad.csv") && err.contains(expected),
            "{text:?}: {err}"
        );
    }
    let path = write(dir.path(), "ok.csv", b"a,b\n1,2\n3,4\n");
    let mut source = csv(path);
    source.columns = Some(vec!["z".into()]);
    let err = load_csv(&source).unwrap_err().to_string();
    assert!(
        err.contains("`z` is not a column") && err.contains("a, b"),
        "{err}"
    );
}

#[test]
fn npy_arrays_of_f4_and_f8_read_back() {
    let dir = tempfile::tempdir().unwrap();
    let f8: Vec<u8> = [1.0f64, 2.0, 3.0, 4.5, 5.0, 6.0]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    let path = write(dir.path(), "a.npy", &npy("<f8", false, "(3, 2)", &f8));
    let data = load_npy(&path).unwrap();
    assert_eq!((data.n, data.dim), (3, 2));
    assert_eq!(data.row(1), &[3.0, 4.5]);
    let f4: Vec<u8> = [1.0f32, -2.0]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    let path = write(dir.path(), "b.npy", &npy("<f4", false, "(2, 1)", &f4));
    assert_eq!(load_npy(&path).unwrap().images, vec![1.0, -2.0]);
}

#[test]
fn bad_npy_files_say_what_was_expected() {
    let dir = tempfile::tempdir().unwrap();
    let six: Vec<u8> = (0..6).flat_map(|v| (v as f64).to_le_bytes()).collect();
    for (bytes, expected) in [
        (
            npy("<i8", false, "(3, 2)", &six),
            "dtype <i8; expected float32 or float64",
        ),
        (
            npy("<f8", true, "(3, 2)", &six),
            "Fortran order; expected C order",
        ),
        (
            npy("<f8", false, "(6,)", &six),
            "shape [6]; expected 2 dimensions",
        ),
        (
            npy("<f8", false, "(4, 2)", &six),
            "truncated: array data needs 64 bytes",
        ),
        (b"PK\x03\x04 not numpy".to_vec(), "not an .npy file"),
    ] {
        let path = write(dir.path(), "bad.npy", &bytes);
        let err = load_npy(&path).unwrap_err().to_string();
        assert!(
            err.contains("bad.npy") && err.contains(expected),
            "{expected}: {err}"
        );
    }
}
