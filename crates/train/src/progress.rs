//! Progress reporting: an indicatif bar on a terminal, sparse plain lines otherwise.

use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressStyle};

/// A progress indicator for `total` units of work.
#[derive(Debug)]
pub struct Progress {
    label: String,
    /// What is counted, e.g. `epochs`.
    unit: String,
    total: u64,
    bar: Option<ProgressBar>,
    last_decile: u64,
}

impl Progress {
    /// A bar when stderr is a terminal; otherwise a line at every 10% (none when quiet),
    /// `<label> <done>/<total> <unit>[: <message>]`.
    pub fn new(label: &str, total: u64, unit: &str) -> Self {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = ProgressBar::new(total);
            let template =
                format!("{{prefix:>8}} [{{elapsed_precise}}] {{wide_bar}} {{pos}}/{{len}} {unit} ({{eta}}) {{msg}}");
            let style = ProgressStyle::with_template(&template)
            .unwrap_or_else(|_| ProgressStyle::default_bar());
            bar.set_style(style);
            bar.set_prefix(label.to_string());
            bar
        });
        Self {
            label: label.to_string(),
            unit: unit.to_string(),
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
                    tracing::info!("{}", self.line(done, message));
                }
            }
        }
    }

    /// The plain line for `done` units: never a dangling colon.
    fn line(&self, done: u64, message: &str) -> String {
        let counted = format!("{} {done}/{} {}", self.label, self.total, self.unit);
        match message.is_empty() {
            true => counted,
            false => format!("{counted}: {message}"),
        }
    }

    /// Removes the bar.
    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Progress;

    #[test]
    fn plain_lines_say_what_is_counted_and_never_end_in_a_colon() {
        let progress = Progress::new("test NLL", 200, "images");
        assert_eq!(progress.line(20, ""), "test NLL 20/200 images");
        assert_eq!(
            progress.line(3, "loss 1.5"),
            "test NLL 3/200 images: loss 1.5"
        );
    }
}
