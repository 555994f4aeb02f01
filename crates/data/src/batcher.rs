//! Seeded mini-batch index orders, reproducible per epoch.
//!
//! The order of epoch `e` depends only on `(seed, e)` (the RNG is derived from both, see
//! [`crate::rng::derived_rng`]), so a run resumed at epoch `e` sees exactly the batches an
//! uninterrupted run would have seen. Gather the pixels of a batch with
//! [`crate::Dataset::gather_into`] or [`crate::Dataset::batch_tensor`].

use crate::rng::{derived_rng, permutation, Stream};

/// Splits `0..n` into batches of `batch_size` indices, in a fresh seeded order each epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Batcher {
    n: usize,
    batch_size: usize,
    seed: u64,
    drop_last: bool,
    shuffle: bool,
}

impl Batcher {
    /// A shuffling batcher over `n` items, keeping a smaller last batch.
    ///
    /// # Panics
    /// If `batch_size == 0`.
    pub fn new(n: usize, batch_size: usize, seed: u64) -> Self {
        assert!(batch_size > 0, "Batcher: batch_size must be positive");
        Self {
            n,
            batch_size,
            seed,
            drop_last: false,
            shuffle: true,
        }
    }

    /// Whether to drop a last batch smaller than `batch_size` (default: keep it).
    #[must_use]
    pub fn drop_last(mut self, drop_last: bool) -> Self {
        self.drop_last = drop_last;
        self
    }

    /// Whether to shuffle (default); without, every epoch visits `0..n` in order (evaluation).
    #[must_use]
    pub fn shuffle(mut self, shuffle: bool) -> Self {
        self.shuffle = shuffle;
        self
    }

    /// Number of items.
    pub fn len_items(&self) -> usize {
        self.n
    }

    /// Indices per full batch.
    pub fn batch_size(&self) -> usize {
        self.batch_size
    }

    /// Batches per epoch.
    pub fn num_batches(&self) -> usize {
        if self.drop_last {
            self.n / self.batch_size
        } else {
            self.n.div_ceil(self.batch_size)
        }
    }

    /// Items visited per epoch (`n`, less the dropped remainder with `drop_last`).
    pub fn items_per_epoch(&self) -> usize {
        if self.drop_last {
            self.num_batches() * self.batch_size
        } else {
            self.n
        }
    }

    /// The order in which epoch `epoch` visits the items, shape `(n,)`: a permutation of
    /// `0..n` that depends only on `(seed, epoch)`.
    pub fn epoch_order(&self, epoch: u64) -> Vec<usize> {
        if self.shuffle {
            permutation(self.n, &mut derived_rng(self.seed, Stream::Shuffle, epoch))
        } else {
            (0..self.n).collect()
        }
    }

    /// The batches of epoch `epoch`, each a `Vec` of `batch_size` indices (the last may be
    /// shorter unless `drop_last`). Use `.skip(k)` to resume after `k` batches.
    pub fn epoch(&self, epoch: u64) -> EpochBatches {
        let mut order = self.epoch_order(epoch);
        order.truncate(self.items_per_epoch());
        EpochBatches {
            order,
            batch_size: self.batch_size,
            pos: 0,
        }
    }
}

/// Iterator over the index batches of one epoch (see [`Batcher::epoch`]).
#[derive(Debug, Clone)]
pub struct EpochBatches {
    order: Vec<usize>,
    batch_size: usize,
    pos: usize,
}

impl EpochBatches {
    /// The whole order of the epoch (all batches concatenated).
    pub fn order(&self) -> &[usize] {
        &self.order
    }
}

impl Iterator for EpochBatches {
    type Item = Vec<usize>;

    fn next(&mut self) -> Option<Vec<usize>> {
        if self.pos >= self.order.len() {
            return None;
        }
        let end = (self.pos + self.batch_size).min(self.order.len());
        let batch = self.order[self.pos..end].to_vec();
        self.pos = end;
        Some(batch)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = (self.order.len() - self.pos).div_ceil(self.batch_size);
        (left, Some(left))
    }

    fn nth(&mut self, n: usize) -> Option<Vec<usize>> {
        self.pos = self
            .pos
            .saturating_add(n.saturating_mul(self.batch_size))
            .min(self.order.len());
        self.next()
    }
}

impl ExactSizeIterator for EpochBatches {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_index_once_per_epoch_with_short_last_batch() {
        let b = Batcher::new(103, 10, 42);
        assert_eq!(b.num_batches(), 11);
        let batches: Vec<Vec<usize>> = b.epoch(0).collect();
        assert_eq!(batches.len(), 11);
        assert!(batches[..10].iter().all(|x| x.len() == 10));
        assert_eq!(batches[10].len(), 3);
        let mut all: Vec<usize> = batches.concat();
        all.sort_unstable();
        assert_eq!(all, (0..103).collect::<Vec<_>>());
    }

    #[test]
    fn order_depends_only_on_seed_and_epoch() {
        let b = Batcher::new(500, 32, 7);
        let e3: Vec<_> = b.epoch(3).collect();
        // A fresh batcher (a resumed run) reproduces epoch 3 without visiting epochs 0..3.
        assert_eq!(Batcher::new(500, 32, 7).epoch(3).collect::<Vec<_>>(), e3);
        assert_ne!(b.epoch(4).collect::<Vec<_>>(), e3);
        assert_ne!(Batcher::new(500, 32, 8).epoch(3).collect::<Vec<_>>(), e3);
        assert_ne!(b.epoch_order(3), (0..500).collect::<Vec<_>>());
        // Skipping batches resumes mid-epoch.
        assert_eq!(b.epoch(3).nth(5).unwrap(), e3[5]);
        assert_eq!(b.epoch(3).skip(15).collect::<Vec<_>>(), e3[15..].to_vec());
    }

    #[test]
    fn drop_last_and_no_shuffle() {
        let b = Batcher::new(103, 10, 1).drop_last(true);
        assert_eq!((b.num_batches(), b.items_per_epoch()), (10, 100));
        let it = b.epoch(0);
        assert_eq!(it.len(), 10);
        assert!(it.into_iter().all(|x| x.len() == 10));
        let seq = Batcher::new(5, 2, 1).shuffle(false);
        let v: Vec<_> = seq.epoch(9).collect();
        assert_eq!(v, vec![vec![0, 1], vec![2, 3], vec![4]]);
        assert_eq!(Batcher::new(0, 4, 0).epoch(0).count(), 0);
    }
}
