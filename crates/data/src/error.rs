//! Typed errors of the data crate.
//!
//! Every error about a file names the file, what was wrong, where (byte offset, line or value
//! index) and what was expected, so that a bad download can be diagnosed from the message alone.

use std::fmt;
use std::path::PathBuf;

/// Where in a file a problem was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Location {
    /// A byte offset (in the decompressed stream for gzipped files).
    Offset(u64),
    /// A 1-based line number of a text file.
    Line(usize),
    /// A 1-based line number and the 1-based index of the value on that line.
    LineValue {
        /// 1-based line number.
        line: usize,
        /// 1-based position of the value on the line.
        value: usize,
    },
    /// A 0-based index into a flat array of values (e.g. a JSON `data` array).
    Index(usize),
    /// A 1-based line and column, as reported by a JSON parser.
    LineColumn {
        /// 1-based line number.
        line: usize,
        /// 1-based column.
        column: usize,
    },
    /// A named field of a structured file as a whole (e.g. the JSON `data` array).
    Field(&'static str),
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Offset(o) => write!(f, "at offset {o}"),
            Self::Line(l) => write!(f, "on line {l}"),
            Self::LineValue { line, value } => write!(f, "on line {line}, value {value}"),
            Self::Index(i) => write!(f, "at index {i}"),
            Self::LineColumn { line, column } => write!(f, "on line {line}, column {column}"),
            Self::Field(name) => write!(f, "in field `{name}`"),
        }
    }
}

/// Everything that can go wrong while reading or preparing a data set.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// The file could not be opened or read. The reason is part of the message and not a
    /// separate source, so that error chains do not print it twice.
    #[error("{}: {cause}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        cause: std::io::Error,
    },
    /// The file starts with the gzip magic but is not a valid gzip stream.
    #[error("{}: invalid gzip stream: {cause}", path.display())]
    Gzip {
        /// The file.
        path: PathBuf,
        /// The underlying error from the decoder.
        cause: std::io::Error,
    },
    /// A gzipped file decompresses to more than the reader accepts.
    #[error(
        "{}: decompresses to more than {limit} bytes; a data file this large is refused (a corrupt or hostile gzip stream?)",
        path.display()
    )]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// The limit in bytes.
        limit: u64,
    },
    /// None of the accepted file names exists in a folder.
    #[error("{}: none of {} found", dir.display(), list_names(candidates))]
    NotFound {
        /// The folder searched.
        dir: PathBuf,
        /// The names tried, in order of preference.
        candidates: Vec<String>,
    },
    /// The file (after decompression) holds no data.
    #[error("{}: empty file, expected {expected}", path.display())]
    Empty {
        /// The file.
        path: PathBuf,
        /// What the file should contain.
        expected: &'static str,
    },
    /// The file ends before a part it announces.
    #[error(
        "{}: truncated: {what} needs {expected} bytes from offset {offset}, only {available} present{}",
        path.display(),
        gz_note(*decompressed)
    )]
    Truncated {
        /// The file.
        path: PathBuf,
        /// What was being read (e.g. "IDX header", "image data").
        what: &'static str,
        /// Offset where the part starts.
        offset: u64,
        /// Bytes the part needs.
        expected: u64,
        /// Bytes present from `offset` to the end of the file.
        available: u64,
        /// Whether offsets refer to the decompressed stream of a gzipped file.
        decompressed: bool,
    },
    /// The file does not start with the expected magic number.
    #[error(
        "{}: wrong magic 0x{found:08x} at offset 0, expected 0x{expected:08x} ({what})",
        path.display()
    )]
    WrongMagic {
        /// The file.
        path: PathBuf,
        /// The magic number found.
        found: u32,
        /// The magic number expected.
        expected: u32,
        /// What the expected magic number stands for.
        what: &'static str,
    },
    /// The file or one of its records has the wrong size.
    #[error("{}: wrong size {location}: got {found}, expected {expected}", path.display())]
    WrongSize {
        /// The file.
        path: PathBuf,
        /// Where the size was checked.
        location: Location,
        /// What was found, with its unit (e.g. "783 values").
        found: String,
        /// What was expected, with its unit (e.g. "784 values").
        expected: String,
    },
    /// A text token or document could not be parsed.
    #[error("{}: parse error {location}: {message}", path.display())]
    Parse {
        /// The file.
        path: PathBuf,
        /// Where the parser stopped.
        location: Location,
        /// What was found and what was expected.
        message: String,
    },
    /// A value is NaN or infinite.
    #[error("{}: non-finite value {value} {location}, expected a finite number", path.display())]
    NonFinite {
        /// The file.
        path: PathBuf,
        /// Where the value is.
        location: Location,
        /// The value as read.
        value: f64,
    },
    /// A value lies outside its valid range.
    #[error("{}: value {value} {location} out of range, expected {expected}", path.display())]
    OutOfRange {
        /// The file.
        path: PathBuf,
        /// Where the value is.
        location: Location,
        /// The value as read.
        value: f64,
        /// The valid range, e.g. "[0, 1]".
        expected: &'static str,
    },
    /// An images file and its labels file disagree on the number of items.
    #[error(
        "{} holds {n_images} images but {} holds {n_labels} labels, expected equal counts",
        images.display(),
        labels.display()
    )]
    CountMismatch {
        /// The images file.
        images: PathBuf,
        /// The labels file.
        labels: PathBuf,
        /// Number of images.
        n_images: usize,
        /// Number of labels.
        n_labels: usize,
    },
    /// Two files of one data set hold images of different sizes.
    #[error(
        "{} holds {first_height}×{first_width} images but {} holds {second_height}×{second_width}; \
         every split of a data set must have one image size",
        first.display(),
        second.display()
    )]
    ImageSizeMismatch {
        /// The first file (the training images).
        first: PathBuf,
        /// Height of its images.
        first_height: usize,
        /// Width of its images.
        first_width: usize,
        /// The file that differs.
        second: PathBuf,
        /// Height of its images.
        second_height: usize,
        /// Width of its images.
        second_width: usize,
    },
    /// Requested split sizes do not fit the data set.
    #[error("data set `{dataset}` has {n} items, cannot split it into {requested:?}: {reason}")]
    Split {
        /// Name of the data set.
        dataset: String,
        /// Number of items it has.
        n: usize,
        /// The sizes asked for.
        requested: Vec<usize>,
        /// Why they do not fit.
        reason: &'static str,
    },
    /// A setting of the `data:` section (or a command-line choice of split) that does not
    /// fit the data.
    #[error("{field}: {message}")]
    Setting {
        /// The setting, e.g. `data.subset.train` or `--split`.
        field: String,
        /// What was expected.
        message: String,
    },
    /// A batch could not be turned into a tensor.
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
    /// Fields of a [`crate::Dataset`] built by hand are inconsistent.
    #[error("data set `{dataset}`: {message}")]
    Shape {
        /// Name of the data set.
        dataset: String,
        /// What is inconsistent.
        message: String,
    },
}

fn gz_note(decompressed: bool) -> &'static str {
    if decompressed {
        " (offsets in the decompressed stream)"
    } else {
        ""
    }
}

fn list_names(names: &[String]) -> String {
    names.join(", ")
}

/// Result type of the data crate.
pub type Result<T> = std::result::Result<T, DataError>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrong_magic_message_names_file_offset_and_expectation() {
        let e = DataError::WrongMagic {
            path: "fashion/train-images-idx3-ubyte.gz".into(),
            found: 0,
            expected: 0x803,
            what: "IDX u8 images",
        };
        assert_eq!(
            e.to_string(),
            "fashion/train-images-idx3-ubyte.gz: wrong magic 0x00000000 at offset 0, \
             expected 0x00000803 (IDX u8 images)"
        );
    }

    #[test]
    fn locations_display() {
        assert_eq!(Location::Offset(16).to_string(), "at offset 16");
        assert_eq!(Location::Line(3).to_string(), "on line 3");
        assert_eq!(
            Location::LineValue { line: 2, value: 7 }.to_string(),
            "on line 2, value 7"
        );
        assert_eq!(Location::Index(5).to_string(), "at index 5");
        assert_eq!(
            Location::LineColumn { line: 1, column: 9 }.to_string(),
            "on line 1, column 9"
        );
        assert_eq!(Location::Field("data").to_string(), "in field `data`");
    }
}
