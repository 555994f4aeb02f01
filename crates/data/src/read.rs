//! Reading whole files, transparently gunzipping those that start with the gzip magic.

use std::io::Read;
use std::path::{Path, PathBuf};

use flate2::read::MultiGzDecoder;

use crate::error::{DataError, Location, Result};

/// The first two bytes of every gzip stream.
const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// The bytes of a file, decompressed if they were gzipped.
#[derive(Debug)]
pub(crate) struct FileBytes {
    /// The file they came from, for error messages.
    pub path: PathBuf,
    /// The (decompressed) content.
    pub bytes: Vec<u8>,
    /// Whether the file was gzipped.
    pub gzipped: bool,
}

/// Reads `path` whole; if it starts with `1f 8b` it is gunzipped (by content, not by name).
pub(crate) fn read_file(path: &Path) -> Result<FileBytes> {
    let raw = std::fs::read(path).map_err(|cause| DataError::Io {
        path: path.to_path_buf(),
        cause,
    })?;
    decode(path, raw)
}

/// The most bytes a gzipped data file may decompress to: 16x the largest real data set we read
/// (MNIST's 47 MB of training images would fit many times), so that a "gzip bomb" of a few MB
/// is refused before it fills memory.
pub(crate) const MAX_DECOMPRESSED: u64 = 1 << 30;

/// Gunzips `raw` if it starts with the gzip magic; `path` is used for error messages only.
pub(crate) fn decode(path: &Path, raw: Vec<u8>) -> Result<FileBytes> {
    decode_with_limit(path, raw, MAX_DECOMPRESSED)
}

/// [`decode`] with the decompressed size capped at `limit` bytes.
pub(crate) fn decode_with_limit(path: &Path, raw: Vec<u8>, limit: u64) -> Result<FileBytes> {
    if !raw.starts_with(&GZIP_MAGIC) {
        return Ok(FileBytes {
            path: path.to_path_buf(),
            bytes: raw,
            gzipped: false,
        });
    }
    let capacity = raw.len().saturating_mul(4).min(limit as usize);
    let mut bytes = Vec::with_capacity(capacity);
    MultiGzDecoder::new(raw.as_slice())
        .take(limit.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(|cause| DataError::Gzip {
            path: path.to_path_buf(),
            cause,
        })?;
    if bytes.len() as u64 > limit {
        return Err(DataError::TooLarge {
            path: path.to_path_buf(),
            limit,
        });
    }
    Ok(FileBytes {
        path: path.to_path_buf(),
        bytes,
        gzipped: true,
    })
}

/// The first of `names` that exists in `dir`.
pub(crate) fn find_first(dir: &Path, names: &[String]) -> Result<PathBuf> {
    names
        .iter()
        .map(|n| dir.join(n))
        .find(|p| p.is_file())
        .ok_or_else(|| DataError::NotFound {
            dir: dir.to_path_buf(),
            candidates: names.to_vec(),
        })
}

/// Non-blank lines of a text file as `(1-based line number, line)`, without `\r\n` / `\n`.
pub(crate) fn text_lines(bytes: &[u8]) -> impl Iterator<Item = (usize, &[u8])> {
    bytes
        .split(|&b| b == b'\n')
        .enumerate()
        .map(|(i, line)| (i + 1, line.strip_suffix(b"\r").unwrap_or(line)))
        .filter(|(_, line)| !line.iter().all(u8::is_ascii_whitespace))
}

/// Parses one numeric text token found at `location` of `path`; NaN and infinities are
/// errors. `expected` describes valid tokens for the message.
pub(crate) fn parse_number(
    path: &Path,
    token: &[u8],
    location: Location,
    expected: &str,
) -> Result<f64> {
    match token {
        b"0" => return Ok(0.0),
        b"1" => return Ok(1.0),
        _ => {}
    }
    let text = String::from_utf8_lossy(token);
    let value: f64 = text.trim().parse().map_err(|_| DataError::Parse {
        path: path.to_path_buf(),
        location,
        message: format!("`{text}` is not a number, expected {expected}"),
    })?;
    if !value.is_finite() {
        return Err(DataError::NonFinite {
            path: path.to_path_buf(),
            location,
            value,
        });
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::{write::GzEncoder, Compression};
    use std::io::Write;

    #[test]
    fn raw_and_gzipped_files_read_the_same() {
        let dir = tempfile::tempdir().unwrap();
        let raw = dir.path().join("raw");
        let gz = dir.path().join("gz");
        std::fs::write(&raw, b"hello").unwrap();
        let mut enc = GzEncoder::new(Vec::new(), Compression::default());
        enc.write_all(b"hello").unwrap();
        std::fs::write(&gz, enc.finish().unwrap()).unwrap();
        let a = read_file(&raw).unwrap();
        let b = read_file(&gz).unwrap();
        assert_eq!((a.bytes.as_slice(), a.gzipped), (&b"hello"[..], false));
        assert_eq!((b.bytes.as_slice(), b.gzipped), (&b"hello"[..], true));
    }

    #[test]
    fn lines_and_numbers() {
        let lines: Vec<_> = text_lines(b"a b\r\n\n  \nc\n").collect();
        assert_eq!(lines, vec![(1, &b"a b"[..]), (4, &b"c"[..])]);
        let p = Path::new("f");
        let loc = Location::Line(2);
        assert_eq!(parse_number(p, b"0.25", loc, "x").unwrap(), 0.25);
        assert_eq!(parse_number(p, b"1", loc, "x").unwrap(), 1.0);
        let e = parse_number(p, b"abc", loc, "a float").unwrap_err();
        assert_eq!(
            e.to_string(),
            "f: parse error on line 2: `abc` is not a number, expected a float"
        );
        for bad in [&b"nan"[..], b"NaN", b"inf", b"-inf"] {
            let e = parse_number(p, bad, loc, "x").unwrap_err();
            assert!(matches!(e, DataError::NonFinite { .. }), "{e}");
        }
    }

    #[test]
    fn broken_gzip_and_missing_files_are_errors_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let bad = dir.path().join("bad.gz");
        std::fs::write(&bad, [0x1f, 0x8b, 8, 0, 1, 2]).unwrap();
        let e = read_file(&bad).unwrap_err();
        assert!(matches!(e, DataError::Gzip { .. }), "{e}");
        assert!(e.to_string().contains("bad.gz"), "{e}");
        let e = read_file(&dir.path().join("nope")).unwrap_err();
        assert!(matches!(e, DataError::Io { .. }) && e.to_string().contains("nope"));
        let e = find_first(dir.path(), &["x".into(), "y.gz".into()]).unwrap_err();
        assert!(e.to_string().contains("none of x, y.gz found"), "{e}");
    }

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut enc = GzEncoder::new(Vec::new(), Compression::best());
        enc.write_all(data).unwrap();
        enc.finish().unwrap()
    }

    #[test]
    fn a_gzip_stream_that_inflates_past_the_limit_is_refused() {
        let bomb = gzip(&vec![0u8; 1 << 20]);
        assert!(
            bomb.len() < 4096,
            "1 MiB of zeros compresses to {} bytes",
            bomb.len()
        );
        let err = decode_with_limit(Path::new("bomb.gz"), bomb.clone(), 1 << 16).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("bomb.gz") && text.contains("65536"), "{text}");
        let ok = decode_with_limit(Path::new("bomb.gz"), bomb, 1 << 20).unwrap();
        assert_eq!(ok.bytes.len(), 1 << 20);
        assert!(ok.gzipped);
    }
}
