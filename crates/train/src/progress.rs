//! Progress reporting: an indicatif bar on a terminal, sparse plain lines otherwise.

use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressStyle};

/// A progress indicator for `total` units of work.
#[derive(Debug)]
pub struct Progress {
    label: String,
    total: u64,
    bar: Option<ProgressBar>,
    last_decile: u64,
}

impl Progress {
    /// A bar when stderr is a terminal; otherwise a line at every 10% (none when quiet).
    pub fn new(label: &str, total: u64) -> Self {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = ProgressBar::new(total);
            let style = ProgressStyle::with_template(
                "{prefix:>8} [{elapsed_precise}] {wide_bar} {pos}/{len} ({eta}) {msg}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar());
            bar.set_style(style);
            bar.set_prefix(label.to_string());
            bar
        });
        Self {
            label: label.to_string(),
            total,
            bar,
            last_decile: 0,
        }
    }

    /// Reports `done` units finished with a short status message.
    pub fn set(&mut self, done: u64, message: &str) {
        match &self.bar {
            Some(bar) => {
                bar.set_position(done);
                bar.set_message(message.to_string());
            }
            None => {
                let decile = done * 10 / self.total.max(1);
                if decile > self.last_decile {
                    self.last_decile = decile;
                    tracing::info!("{} {done}/{}: {message}", self.label, self.total);
                }
            }
        }
    }

    /// Removes the bar.
    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}
