//! Progress bars that appear only once a task has run for more than a second.

use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// A bar hidden for its first second, so quick steps print nothing.
pub struct LazyBar {
    bar: ProgressBar,
    started: Instant,
    shown: bool,
}

const DELAY: Duration = Duration::from_secs(1);

impl LazyBar {
    /// A hidden bar of `len` steps labelled `message`.
    pub fn new(len: u64, message: &'static str) -> Self {
        let bar = ProgressBar::with_draw_target(Some(len), ProgressDrawTarget::hidden());
        let style = ProgressStyle::with_template(
            "{msg:>10} [{elapsed_precise}] {wide_bar} {pos}/{len} ({per_sec}, eta {eta})",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar());
        bar.set_style(style);
        bar.set_message(message);
        Self {
            bar,
            started: Instant::now(),
            shown: false,
        }
    }

    /// Advance by `n` steps, showing the bar once a second has passed.
    pub fn inc(&mut self, n: u64) {
        self.show_when_due();
        self.bar.inc(n);
    }

    /// Move to step `pos` (a stage that counts from the start again moves
    /// it back), showing the bar once a second has passed.
    pub fn set_position(&mut self, pos: u64) {
        self.show_when_due();
        self.bar.set_position(pos);
    }

    fn show_when_due(&mut self) {
        if !self.shown && self.started.elapsed() > DELAY {
            self.bar.set_draw_target(ProgressDrawTarget::stderr());
            self.shown = true;
        }
    }

    /// Replace the label (e.g. with a running reward).
    pub fn set_message(&self, message: String) {
        self.bar.set_message(message);
    }

    /// Finish and clear the bar.
    pub fn finish(self) {
        self.bar.finish_and_clear();
    }
}
