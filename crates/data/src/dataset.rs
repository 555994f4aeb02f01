//! The in-memory image data set and its train/validation/test splits.

use candle_core::{Device, Tensor};

use crate::error::{DataError, Result};
use crate::rng::{derived_rng, permutation, Stream};

/// Images as a row-major `(n, dim)` matrix of `f32` in `[0, 1]`, with optional labels.
///
/// `dim == height * width`; row `i` is image `i` in row-major pixel order.
#[derive(Debug, Clone, PartialEq)]
pub struct Dataset {
    /// Pixels, shape `(n, dim)` row-major, values in `[0, 1]`; for a table read by
    /// [`crate::tabular`] (height 1), any finite values.
    pub images: Vec<f32>,
    /// Class labels, shape `(n,)`; empty when the source has none (binarized MNIST `.amat`).
    pub labels: Vec<u8>,
    /// Number of images.
    pub n: usize,
    /// Pixels per image (`height * width`).
    pub dim: usize,
    /// Image height in pixels.
    pub height: usize,
    /// Image width in pixels.
    pub width: usize,
    /// A short name for logs and tables, e.g. `digits/train`.
    pub name: String,
}

impl Dataset {
    /// Builds a data set from `images` (`(n, height·width)` row-major) and `labels` (`(n,)` or
    /// empty), checking that the shapes agree and that every pixel is finite and in `[0, 1]`.
    pub fn new(
        name: impl Into<String>,
        images: Vec<f32>,
        labels: Vec<u8>,
        height: usize,
        width: usize,
    ) -> Result<Self> {
        let name = name.into();
        let shape_err = |message: String| DataError::Shape {
            dataset: name.clone(),
            message,
        };
        let dim = height * width;
        if dim == 0 {
            return Err(shape_err(format!("image size {height}x{width} is empty")));
        }
        if !images.len().is_multiple_of(dim) {
            return Err(shape_err(format!(
                "{} pixels is not a multiple of {height}x{width} = {dim}",
                images.len()
            )));
        }
        let n = images.len() / dim;
        if !labels.is_empty() && labels.len() != n {
            return Err(shape_err(format!(
                "{} labels for {n} images, expected {n} or none",
                labels.len()
            )));
        }
        if let Some(i) = images.iter().position(|v| !(0.0..=1.0).contains(v)) {
            return Err(shape_err(format!(
                "pixel {} of image {} is {}, expected a value in [0, 1]",
                i % dim,
                i / dim,
                images[i]
            )));
        }
        Ok(Self {
            images,
            labels,
            n,
            dim,
            height,
            width,
            name,
        })
    }

    /// Whether the data set carries class labels.
    pub fn has_labels(&self) -> bool {
        !self.labels.is_empty()
    }

    /// Whether the data set holds no images.
    pub fn is_empty(&self) -> bool {
        self.n == 0
    }

    /// Pixels of image `i`, shape `(dim,)`.
    ///
    /// # Panics
    /// If `i >= n`.
    pub fn row(&self, i: usize) -> &[f32] {
        assert!(i < self.n, "row {i} out of range for {} images", self.n);
        &self.images[i * self.dim..(i + 1) * self.dim]
    }

    /// Mean pixel value over all images (0 for an empty set).
    pub fn mean_pixel(&self) -> f64 {
        if self.images.is_empty() {
            return 0.0;
        }
        self.images.iter().map(|&v| f64::from(v)).sum::<f64>() / self.images.len() as f64
    }

    /// The rows `idx` (in that order) as a new data set named `name`; repeats are allowed.
    ///
    /// # Panics
    /// If an index is `>= n`.
    pub fn subset_named(&self, idx: &[usize], name: impl Into<String>) -> Dataset {
        Dataset {
            images: self.gather(idx),
            labels: if self.has_labels() {
                idx.iter().map(|&i| self.labels[i]).collect()
            } else {
                Vec::new()
            },
            n: idx.len(),
            dim: self.dim,
            height: self.height,
            width: self.width,
            name: name.into(),
        }
    }

    /// The rows `idx` (in that order) as a new data set with the same name.
    ///
    /// # Panics
    /// If an index is `>= n`.
    pub fn subset(&self, idx: &[usize]) -> Dataset {
        self.subset_named(idx, self.name.clone())
    }

    /// The data set with its rows in a random order that depends only on `seed`.
    pub fn shuffled(&self, seed: u64) -> Dataset {
        let order = permutation(self.n, &mut derived_rng(seed, Stream::Split, 0));
        self.subset(&order)
    }

    /// `k` distinct rows drawn at random, in an order that depends only on `(seed, index)`:
    /// a fixed sub-sample of a split (e.g. Fashion-MNIST cut to MNIST-10k's sizes). Use a
    /// different `index` for each split so that their draws are independent; index 0 is the
    /// stream of [`Dataset::shuffled`]. The name gets `[k]` appended. Errors if `k > n`.
    pub fn random_subset(&self, k: usize, seed: u64, index: u64) -> Result<Dataset> {
        if k > self.n {
            return Err(DataError::Split {
                dataset: self.name.clone(),
                n: self.n,
                requested: vec![k],
                reason: "a subset cannot have more items than the data set",
            });
        }
        let order = permutation(self.n, &mut derived_rng(seed, Stream::Split, index));
        Ok(self.subset_named(&order[..k], format!("{}[{k}]", self.name)))
    }

    /// Consecutive pieces of `sizes[0]`, `sizes[1]`, … rows, in order; the sizes must sum to
    /// `n`. Shuffle first ([`Dataset::shuffled`]) for a random split.
    pub fn split(&self, sizes: &[usize]) -> Result<Vec<Dataset>> {
        if sizes.iter().sum::<usize>() != self.n {
            return Err(DataError::Split {
                dataset: self.name.clone(),
                n: self.n,
                requested: sizes.to_vec(),
                reason: "sizes must sum to the number of items",
            });
        }
        let mut start = 0;
        Ok(sizes
            .iter()
            .map(|&len| {
                let idx: Vec<usize> = (start..start + len).collect();
                start += len;
                self.subset(&idx)
            })
            .collect())
    }

    /// Pixels of the rows `idx`, shape `(idx.len(), dim)` row-major.
    ///
    /// # Panics
    /// If an index is `>= n`.
    pub fn gather(&self, idx: &[usize]) -> Vec<f32> {
        let mut out = Vec::with_capacity(idx.len() * self.dim);
        self.gather_into(idx, &mut out);
        out
    }

    /// Like [`Dataset::gather`], but reuses `out`'s allocation (it is cleared first).
    ///
    /// # Panics
    /// If an index is `>= n`.
    pub fn gather_into(&self, idx: &[usize], out: &mut Vec<f32>) {
        out.clear();
        out.reserve(idx.len() * self.dim);
        for &i in idx {
            out.extend_from_slice(self.row(i));
        }
    }

    /// Labels of the rows `idx`, shape `(idx.len(),)`; empty if the set has no labels.
    pub fn gather_labels(&self, idx: &[usize]) -> Vec<u8> {
        if !self.has_labels() {
            return Vec::new();
        }
        idx.iter().map(|&i| self.labels[i]).collect()
    }

    /// The rows `idx` as an `f32` tensor of shape `(idx.len(), dim)` on `device`.
    pub fn batch_tensor(&self, idx: &[usize], device: &Device) -> candle_core::Result<Tensor> {
        Tensor::from_vec(self.gather(idx), (idx.len(), self.dim), device)
    }

    /// All images as an `f32` tensor of shape `(n, dim)` on `device`.
    pub fn to_tensor(&self, device: &Device) -> candle_core::Result<Tensor> {
        Tensor::from_slice(&self.images, (self.n, self.dim), device)
    }
}

/// The three parts of a data set used by an experiment.
#[derive(Debug, Clone, PartialEq)]
pub struct Splits {
    /// Data the model is fitted on.
    pub train: Dataset,
    /// Data for early stopping and model selection.
    pub val: Dataset,
    /// Held-out data for the reported numbers.
    pub test: Dataset,
}

impl Splits {
    /// Shuffles `ds` with `seed`, then takes the last `n_val + n_test` rows as validation and
    /// test sets (in that order) and the rest as the training set. Names get `/train`, `/val`,
    /// `/test` appended. Errors if `n_val + n_test >= ds.n` (empty training set).
    pub fn from_shuffled(ds: &Dataset, n_val: usize, n_test: usize, seed: u64) -> Result<Splits> {
        let n_train =
            ds.n.checked_sub(n_val + n_test)
                .filter(|&t| t > 0)
                .ok_or_else(|| DataError::Split {
                    dataset: ds.name.clone(),
                    n: ds.n,
                    requested: vec![n_val, n_test],
                    reason: "validation and test sets leave no training data",
                })?;
        let order = permutation(ds.n, &mut derived_rng(seed, Stream::Split, 0));
        let (train, rest) = order.split_at(n_train);
        let (val, test) = rest.split_at(n_val);
        Ok(Splits {
            train: ds.subset_named(train, format!("{}/train", ds.name)),
            val: ds.subset_named(val, format!("{}/val", ds.name)),
            test: ds.subset_named(test, format!("{}/test", ds.name)),
        })
    }

    /// Errors unless every split has the training set's image size (a model is built for one).
    pub fn check_same_shape(&self) -> Result<()> {
        for (role, part) in self.iter().skip(1) {
            if (part.height, part.width) != (self.train.height, self.train.width) {
                return Err(DataError::Shape {
                    dataset: part.name.clone(),
                    message: format!(
                        "the {role} images are {}×{}, the training images ({}) {}×{}",
                        part.height,
                        part.width,
                        self.train.name,
                        self.train.height,
                        self.train.width
                    ),
                });
            }
        }
        Ok(())
    }

    /// The three parts with their role names, in the order train, val, test.
    pub fn iter(&self) -> impl Iterator<Item = (&'static str, &Dataset)> {
        [
            ("train", &self.train),
            ("val", &self.val),
            ("test", &self.test),
        ]
        .into_iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toy(n: usize) -> Dataset {
        let images = (0..n * 4).map(|v| (v % 7) as f32 / 6.0).collect();
        let labels = (0..n).map(|i| (i % 10) as u8).collect();
        Dataset::new("toy", images, labels, 2, 2).unwrap()
    }

    #[test]
    fn new_checks_shapes_and_range() {
        assert!(Dataset::new("a", vec![0.0; 7], vec![], 2, 2).is_err());
        assert!(Dataset::new("a", vec![0.0; 8], vec![1], 2, 2).is_err());
        assert!(Dataset::new("a", vec![0.0, 1.5, 0.0, 0.0], vec![], 2, 2).is_err());
        assert!(Dataset::new("a", vec![0.0, f32::NAN, 0.0, 0.0], vec![], 2, 2).is_err());
        let d = Dataset::new("a", vec![0.5; 8], vec![], 2, 2).unwrap();
        assert_eq!((d.n, d.dim, d.has_labels()), (2, 4, false));
    }

    #[test]
    fn subset_row_and_gather_agree() {
        let d = toy(10);
        let s = d.subset(&[3, 1, 3]);
        assert_eq!(s.n, 3);
        assert_eq!(s.row(0), d.row(3));
        assert_eq!(s.row(1), d.row(1));
        assert_eq!(s.labels, vec![3, 1, 3]);
        assert_eq!(d.gather(&[3, 1, 3]), s.images);
        let t = d.batch_tensor(&[3, 1], &Device::Cpu).unwrap();
        assert_eq!(t.dims(), &[2, 4]);
        assert_eq!(t.to_vec2::<f32>().unwrap()[1], d.row(1));
    }

    #[test]
    fn split_is_consecutive_and_checks_sizes() {
        let d = toy(10);
        let parts = d.split(&[6, 3, 1]).unwrap();
        assert_eq!(parts[1].row(0), d.row(6));
        assert_eq!(parts[2].row(0), d.row(9));
        assert!(d.split(&[6, 3]).is_err());
    }

    #[test]
    fn random_subset_is_seeded_distinct_and_checks_size() {
        let mut d = toy(50);
        for i in 0..d.n {
            d.images[i * 4] = i as f32 / 50.0;
        }
        let a = d.random_subset(20, 3, 1).unwrap();
        assert_eq!(a, d.random_subset(20, 3, 1).unwrap());
        assert_ne!(a, d.random_subset(20, 3, 2).unwrap());
        assert_ne!(a, d.random_subset(20, 4, 1).unwrap());
        let mut keys: Vec<u32> = (0..a.n)
            .map(|i| (a.row(i)[0] * 50.0).round() as u32)
            .collect();
        keys.sort_unstable();
        keys.dedup();
        assert_eq!(keys.len(), 20, "rows are drawn without replacement");
        assert_eq!(a.name, "toy[20]");
        assert_eq!(d.random_subset(50, 0, 1).unwrap().n, 50);
        assert!(d.random_subset(51, 0, 1).is_err());
    }

    #[test]
    fn splits_are_deterministic_disjoint_and_cover() {
        let mut d = toy(100);
        // Make every row unique so rows identify items.
        for i in 0..d.n {
            d.images[i * 4] = i as f32 / 100.0;
        }
        let a = Splits::from_shuffled(&d, 10, 20, 5).unwrap();
        let b = Splits::from_shuffled(&d, 10, 20, 5).unwrap();
        let c = Splits::from_shuffled(&d, 10, 20, 6).unwrap();
        assert_eq!(a, b);
        assert_ne!(a.train, c.train);
        assert_eq!((a.train.n, a.val.n, a.test.n), (70, 10, 20));
        let mut keys: Vec<u32> = a
            .iter()
            .flat_map(|(_, s)| (0..s.n).map(|i| (s.row(i)[0] * 100.0).round() as u32))
            .collect();
        keys.sort_unstable();
        assert_eq!(keys, (0..100).collect::<Vec<_>>());
        assert_eq!(a.val.name, "toy/val");
        assert!(Splits::from_shuffled(&d, 50, 50, 0).is_err());
    }
}
