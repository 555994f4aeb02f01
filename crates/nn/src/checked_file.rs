//! Safetensors files that carry a CRC-32 over everything they hold: the metadata (the
//! training loop's state lives there) and every tensor's name, dtype, shape and bytes. Every
//! file flowvae writes goes through [`serialize_checked`]; every file it reads back goes
//! through [`read_checked`], so a flipped bit anywhere is refused with the file's name instead
//! of silently used.
//!
//! The checksum is the metadata entry `checksum = "crc32:<8 hex digits>"`, computed over
//! - each metadata entry but `checksum`, in key order: `key`, NUL, `value`, NUL;
//! - each tensor in name order: `name`, NUL, dtype (`F32`, as in the header), NUL, the shape as
//!   decimal numbers joined by `,`, NUL, then the raw little-endian bytes.
//!
//! `scripts/check_safetensors.py` computes the same in Python (to add a checksum to a file
//! written by another tool).

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use candle_core::{Device, Tensor};
use safetensors::{Dtype, SafeTensors, View};

use crate::error::{NnError, Result};

/// The metadata key of the checksum.
pub const CHECKSUM_KEY: &str = "checksum";
const SCHEME: &str = "crc32:";

/// One tensor as the checksum sees it; also what `safetensors` writes, so that a tensor's
/// bytes are copied out of it once (a checkpoint can be hundreds of MB).
struct Entry<'a> {
    name: &'a str,
    dtype: Dtype,
    shape: &'a [usize],
    data: &'a [u8],
}

impl View for &Entry<'_> {
    fn dtype(&self) -> Dtype {
        self.dtype
    }

    fn shape(&self) -> &[usize] {
        self.shape
    }

    fn data(&self) -> std::borrow::Cow<'_, [u8]> {
        std::borrow::Cow::Borrowed(self.data)
    }

    fn data_len(&self) -> usize {
        self.data.len()
    }
}

fn checksum<'a>(metadata: &BTreeMap<String, String>, tensors: &[Entry<'a>]) -> String {
    let mut hasher = crc32fast::Hasher::new();
    for (key, value) in metadata.iter().filter(|(k, _)| *k != CHECKSUM_KEY) {
        for part in [key.as_bytes(), b"\0", value.as_bytes(), b"\0"] {
            hasher.update(part);
        }
    }
    for entry in tensors {
        let shape: Vec<String> = entry.shape.iter().map(usize::to_string).collect();
        hasher.update(entry.name.as_bytes());
        hasher.update(b"\0");
        hasher.update(format!("{:?}", entry.dtype).as_bytes());
        hasher.update(b"\0");
        hasher.update(shape.join(",").as_bytes());
        hasher.update(b"\0");
        hasher.update(entry.data);
    }
    format!("{SCHEME}{:08x}", hasher.finalize())
}

/// `tensors` and `metadata` as safetensors bytes, with the checksum added to the metadata.
pub fn serialize_checked(
    tensors: &BTreeMap<String, Tensor>,
    mut metadata: BTreeMap<String, String>,
) -> Result<Vec<u8>> {
    let contiguous: Vec<(&String, Tensor)> = tensors
        .iter()
        .map(|(name, t)| Ok((name, t.contiguous()?)))
        .collect::<Result<_>>()?;
    let shapes: Vec<Vec<usize>> = contiguous.iter().map(|(_, t)| t.dims().to_vec()).collect();
    let bytes: Vec<_> = contiguous.iter().map(|(_, t)| t.data()).collect();
    let entries: Vec<Entry<'_>> = contiguous
        .iter()
        .zip(&shapes)
        .zip(&bytes)
        .map(|(((name, t), shape), data)| Entry {
            name: name.as_str(),
            dtype: View::dtype(t),
            shape,
            data: &data[..],
        })
        .collect();
    let sum = checksum(&metadata, &entries);
    metadata.insert(CHECKSUM_KEY.into(), sum);
    let metadata: HashMap<String, String> = metadata.into_iter().collect();
    let bytes = safetensors::serialize(entries.iter().map(|e| (e.name, e)), Some(metadata))
        .map_err(|e| NnError::Params {
            path: "<memory>".into(),
            message: format!("cannot serialise: {e}"),
        })?;
    sorted_header(bytes)
}

/// The same file with its header's keys in sorted order: `safetensors` writes the metadata
/// from a `HashMap`, whose order changes from run to run, and files must be bit-identical for
/// the same numbers. Readers find tensors by their offsets, so the order is free.
fn sorted_header(mut bytes: Vec<u8>) -> Result<Vec<u8>> {
    let bad = |message: String| NnError::Params {
        path: "<memory>".into(),
        message,
    };
    let len_bytes: [u8; 8] = bytes[..8]
        .try_into()
        .map_err(|_| bad("a safetensors file shorter than its header length".into()))?;
    let len = u64::from_le_bytes(len_bytes) as usize;
    let header = bytes
        .get(8..8 + len)
        .ok_or_else(|| bad(format!("a header of {len} bytes in a shorter file")))?;
    let mut entries: BTreeMap<String, serde_json::Value> =
        serde_json::from_slice(header).map_err(|e| bad(format!("unreadable header: {e}")))?;
    if let Some(meta) = entries.get_mut("__metadata__") {
        let sorted: BTreeMap<String, String> = serde_json::from_value(meta.take())
            .map_err(|e| bad(format!("unreadable metadata: {e}")))?;
        *meta = serde_json::to_value(sorted).map_err(|e| bad(e.to_string()))?;
    }
    let mut text = serde_json::to_vec(&entries).map_err(|e| bad(e.to_string()))?;
    // The data that follows starts at a multiple of 8, as safetensors itself pads.
    text.resize(text.len().next_multiple_of(8), b' ');
    // In place: the tensor data (most of the file) is moved, not copied into a second buffer.
    let mut prefix = (text.len() as u64).to_le_bytes().to_vec();
    prefix.extend_from_slice(&text);
    bytes.splice(..8 + len, prefix);
    Ok(bytes)
}

/// A verified file: its tensors (on the asked device) and its metadata (without `checksum`).
#[derive(Debug)]
pub struct CheckedFile {
    /// Every tensor, by name.
    pub tensors: BTreeMap<String, Tensor>,
    /// Every metadata entry but the checksum.
    pub metadata: BTreeMap<String, String>,
}

/// Reads `path`, verifies its checksum and loads its tensors onto `device`. Refuses, naming
/// the file, anything that is not a safetensors file, has no checksum, or whose checksum does
/// not match.
pub fn read_checked(path: &Path, device: &Device) -> Result<CheckedFile> {
    let bytes = std::fs::read(path).map_err(|e| NnError::Params {
        path: path.display().to_string(),
        message: format!("cannot read the file: {}", io_reason(&e)),
    })?;
    parse_checked(path, &bytes, device)
}

/// An I/O error's reason without Rust's `(os error N)` suffix.
fn io_reason(e: &std::io::Error) -> String {
    let text = e.to_string();
    match text.find(" (os error") {
        Some(at) => text[..at].to_string(),
        None => text,
    }
}

/// [`read_checked`] on bytes already in memory (`path` names them in errors).
pub fn parse_checked(path: &Path, bytes: &[u8], device: &Device) -> Result<CheckedFile> {
    let bad = |message: String| NnError::Params {
        path: path.display().to_string(),
        message,
    };
    let parsed =
        SafeTensors::deserialize(bytes).map_err(|e| bad(format!("not a safetensors file: {e}")))?;
    let (_, header) = SafeTensors::read_metadata(bytes)
        .map_err(|e| bad(format!("not a safetensors file: {e}")))?;
    let mut metadata: BTreeMap<String, String> = header
        .metadata()
        .clone()
        .unwrap_or_default()
        .into_iter()
        .collect();
    let Some(expected) = metadata.remove(CHECKSUM_KEY) else {
        return Err(bad(
            "carries no checksum (written by an older flowvae or by another tool), so it \
             cannot be verified; to use it anyway, add one with \
             `python3 scripts/check_safetensors.py FILE --rewrite FILE`"
                .into(),
        ));
    };
    let mut views = parsed.tensors();
    views.sort_by(|a, b| a.0.cmp(&b.0));
    let shapes: Vec<Vec<usize>> = views.iter().map(|(_, v)| v.shape().to_vec()).collect();
    let entries: Vec<Entry<'_>> = views
        .iter()
        .zip(&shapes)
        .map(|((name, view), shape)| Entry {
            name: name.as_str(),
            dtype: view.dtype(),
            shape,
            data: view.data(),
        })
        .collect();
    let found = checksum(&metadata, &entries);
    if found != expected {
        return Err(bad(format!(
            "checksum mismatch (the file says {expected}, its contents give {found}): the file \
             is damaged and is not used"
        )));
    }
    let tensors = candle_core::safetensors::load_buffer(bytes, device)
        .map_err(|e| bad(format!("unreadable tensors: {e}")))?
        .into_iter()
        .collect();
    Ok(CheckedFile { tensors, metadata })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> BTreeMap<String, Tensor> {
        let a = Tensor::new(&[[1f32, 2.], [3., 4.]], &Device::Cpu).unwrap();
        let b = Tensor::new(&[0.5f64, -1.5, 2.5], &Device::Cpu).unwrap();
        [("b".to_string(), b), ("a".to_string(), a)]
            .into_iter()
            .collect()
    }

    fn meta() -> BTreeMap<String, String> {
        [("format".to_string(), "test-1".to_string())].into()
    }

    #[test]
    fn the_same_contents_give_the_same_bytes() {
        let many: BTreeMap<String, String> = (0..20)
            .map(|i| (format!("key{i}"), format!("value{i}")))
            .collect();
        let first = serialize_checked(&sample(), many.clone()).unwrap();
        for _ in 0..5 {
            assert_eq!(serialize_checked(&sample(), many.clone()).unwrap(), first);
        }
        let plain: Vec<u8> = safetensors::serialize(sample().iter(), None).unwrap();
        let file = parse_checked(Path::new("x"), &first, &Device::Cpu).unwrap();
        assert_eq!(file.metadata, many);
        // The data section is safetensors' own, untouched.
        assert!(first.ends_with(&plain[plain.len() - 40..]));
        // Byte for byte what safetensors writes from the tensors themselves (their bytes are
        // only copied out once here), with the header's keys sorted.
        let (_, header) = SafeTensors::read_metadata(&first).unwrap();
        let with_checksum = header.metadata().clone();
        let own = safetensors::serialize(sample().iter(), with_checksum).unwrap();
        assert_eq!(first, sorted_header(own).unwrap());
    }

    #[test]
    fn a_written_file_reads_back_with_its_metadata() {
        let bytes = serialize_checked(&sample(), meta()).unwrap();
        let file = parse_checked(Path::new("x"), &bytes, &Device::Cpu).unwrap();
        assert_eq!(file.metadata, meta());
        let a: Vec<Vec<f32>> = file.tensors["a"].to_vec2().unwrap();
        assert_eq!(a, vec![vec![1., 2.], vec![3., 4.]]);
        let b: Vec<f64> = file.tensors["b"].to_vec1().unwrap();
        assert_eq!(b, vec![0.5, -1.5, 2.5]);
    }

    #[test]
    fn every_single_bit_flip_is_refused() {
        let bytes = serialize_checked(&sample(), meta()).unwrap();
        for byte in 0..bytes.len() {
            for bit in 0..8 {
                let mut damaged = bytes.clone();
                damaged[byte] ^= 1 << bit;
                let result = parse_checked(Path::new("f.safetensors"), &damaged, &Device::Cpu);
                let Err(err) = result else {
                    panic!("a flip of bit {bit} of byte {byte} was accepted");
                };
                assert!(err.to_string().contains("f.safetensors"), "{err}");
            }
        }
    }

    #[test]
    fn a_file_without_checksum_is_refused_with_a_way_out() {
        let plain = safetensors::serialize(sample().iter(), None).unwrap();
        let err = parse_checked(Path::new("old.safetensors"), &plain, &Device::Cpu).unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("old.safetensors") && text.contains("no checksum"),
            "{text}"
        );
        assert!(text.contains("check_safetensors.py"), "{text}");
    }
}
