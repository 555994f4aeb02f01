//! Atomic file writes on background threads, so that a training loop does not wait for the
//! disk: a density run's checkpoint (weights and both Adam moments, 150 MB for MAF on MNIST)
//! took over a second per epoch to write and sync, most of it idle.

use std::path::{Path, PathBuf};
use std::sync::mpsc::{sync_channel, SyncSender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use crate::error::{Result, TrainError};
use crate::run_dir::write_atomic;

/// Writes done queued, in order, by one background thread, each with [`write_atomic`]'s
/// guarantee (a file is its old or its complete new content). Writes land in the order they
/// were asked for, so a checkpoint never lands before the best weights it refers to; after a
/// failed write nothing later is written, and the error comes back from the next call.
/// Dropping the writer waits for every write.
#[derive(Debug, Default)]
pub struct BackgroundWriter {
    queue: Option<Queue>,
    error: Arc<Mutex<Option<TrainError>>>,
}

/// The sending end of the writer thread's queue, and the thread.
type Queue = (SyncSender<(PathBuf, Vec<u8>)>, JoinHandle<()>);

/// Writes waiting behind the one in progress before [`BackgroundWriter::write`] blocks.
const QUEUED: usize = 2;

impl BackgroundWriter {
    /// A writer with nothing in flight.
    pub fn new() -> Self {
        Self::default()
    }

    /// Queues `bytes` for `path`; an earlier write's error instead, if one failed.
    pub fn write(&mut self, path: &Path, bytes: Vec<u8>) -> Result<()> {
        self.earlier_error()?;
        if self.queue.is_none() {
            self.queue = Some(self.start(path)?);
        }
        let sent = match &self.queue {
            Some((sender, _)) => sender.send((path.to_path_buf(), bytes)).is_ok(),
            None => false,
        };
        if sent {
            Ok(())
        } else {
            self.wait()?;
            Err(TrainError::File {
                file: path.to_path_buf(),
                message: "the writer thread stopped unexpectedly".into(),
            })
        }
    }

    /// Waits until every queued write has landed; the first error, if any.
    pub fn wait(&mut self) -> Result<()> {
        if let Some((sender, worker)) = self.queue.take() {
            drop(sender);
            let _ = worker.join();
        }
        self.earlier_error()
    }

    fn earlier_error(&self) -> Result<()> {
        match self.error.lock().map(|mut slot| slot.take()) {
            Ok(Some(e)) => Err(e),
            _ => Ok(()),
        }
    }

    fn start(&self, path: &Path) -> Result<Queue> {
        let (sender, receiver) = sync_channel::<(PathBuf, Vec<u8>)>(QUEUED);
        let error = Arc::clone(&self.error);
        let worker = std::thread::Builder::new()
            .name("flowvae-writer".into())
            .spawn(move || {
                for (path, bytes) in receiver {
                    let Ok(slot) = error.lock() else { return };
                    if slot.is_none() {
                        drop(slot);
                        if let Err(e) = write_atomic(&path, &bytes) {
                            if let Ok(mut slot) = error.lock() {
                                *slot = Some(e);
                            }
                        }
                    }
                }
            })
            .map_err(|e| TrainError::io(path, "cannot start the writer thread", e))?;
        Ok((sender, worker))
    }
}

impl Drop for BackgroundWriter {
    fn drop(&mut self) {
        let _ = self.wait();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_land_in_order_and_errors_come_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.bin");
        let mut writer = BackgroundWriter::new();
        for n in 0..5u8 {
            writer.write(&path, vec![n; 1 << 16]).unwrap();
        }
        writer.wait().unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), vec![4u8; 1 << 16]);
        // A failed write stops the ones behind it: `c.bin` must not land after `b.bin` failed.
        let missing = dir.path().join("no-such-folder").join("b.bin");
        let after = dir.path().join("c.bin");
        writer.write(&missing, vec![1]).unwrap();
        writer.write(&after, vec![2]).unwrap();
        let err = writer.wait().unwrap_err().to_string();
        assert!(err.contains("b.bin"), "{err}");
        assert!(!after.exists());
        writer.wait().unwrap();
        writer.write(&after, vec![3]).unwrap();
        drop(writer);
        assert_eq!(std::fs::read(&after).unwrap(), vec![3]);
    }
}
