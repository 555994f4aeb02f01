//! Loading YAML with errors that name the file, the line and the field.

use std::path::Path;

use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_yaml::with::singleton_map_recursive;

use crate::error::{Result, RunnerError};

/// Parses `text` (read from `file`) into `T`; serde's message already names the field path
/// (`flow[0].planar: unknown field ...`) and we add `file:line:column`.
///
/// Enums are written as single-key maps (`- planar: {k: 16}`, `target: {energy: u1}`), the
/// form researchers expect, rather than serde_yaml's `!tag` form.
pub fn parse<T: DeserializeOwned>(file: &Path, text: &str) -> Result<T> {
    // Editors on Windows start UTF-8 files with a byte-order mark; it is not YAML content.
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut track = serde_path_to_error::Track::new();
    let de = serde_yaml::Deserializer::from_str(text);
    let tracked = serde_path_to_error::Deserializer::new(de, &mut track);
    singleton_map_recursive::deserialize(tracked).map_err(|inner: serde_yaml::Error| {
        let path = track.path().to_string();
        let location = inner.location().map(|l| (l.line(), l.column()));
        let mut message = strip_location(&inner.to_string());
        // serde_yaml may already prefix the enclosing path (`flow[0].planar: unknown field`).
        if let Some((head, rest)) = message.split_once(": ") {
            if path.starts_with(head) && !head.contains(' ') {
                message = rest.to_string();
            }
        }
        if path != "." {
            message = format!("{path}: {message}");
        }
        RunnerError::Config {
            file: file.to_path_buf(),
            location,
            message,
        }
    })
}

/// YAML text of `value`, enums as single-key maps (the form [`parse`] reads).
pub fn to_string<T: Serialize>(value: &T) -> String {
    let mut out = Vec::new();
    let mut ser = serde_yaml::Serializer::new(&mut out);
    match singleton_map_recursive::serialize(value, &mut ser) {
        Ok(()) => String::from_utf8_lossy(&out).into_owned(),
        Err(e) => format!("# cannot serialise: {e}\n"),
    }
}

/// Reads and parses a YAML file.
pub fn load<T: DeserializeOwned>(file: &Path) -> Result<T> {
    let text = std::fs::read_to_string(file)
        .map_err(|e| RunnerError::io(file, "cannot read the YAML file", e))?;
    parse(file, &text)
}

/// serde_yaml appends " at line L column C"; we print the location up front instead.
fn strip_location(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(i) => message[..i].to_string(),
        None => message.to_string(),
    }
}

/// Finds the 1-based line of the key `leaf` of a dotted field path (`train.steps` → `steps:`)
/// for errors found after parsing; the first line whose key matches, or `None`.
pub fn locate_field(text: &str, field: &str) -> Option<usize> {
    let leaf = field
        .rsplit('.')
        .next()?
        .trim_end_matches(|c: char| c == ']' || c.is_ascii_digit());
    let leaf = leaf.trim_end_matches('[');
    text.lines()
        .position(|line| {
            let trimmed = line.trim_start().trim_start_matches("- ");
            trimmed.starts_with(&format!("{leaf}:"))
                || trimmed.contains(&format!(" {leaf}:"))
                || trimmed.contains(&format!("{{{leaf}:"))
        })
        .map(|i| i + 1)
}
