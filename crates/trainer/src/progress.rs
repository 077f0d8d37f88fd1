//! Progress on the terminal: bars that appear only once a task has run for
//! more than a second, notes on stderr.

use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use rlrag_eval::progress::{Bar, Progress};

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

    fn show_when_due(&mut self) {
        if !self.shown && self.started.elapsed() > DELAY {
            self.bar.set_draw_target(ProgressDrawTarget::stderr());
            self.shown = true;
        }
    }
}

impl Bar for LazyBar {
    fn inc(&mut self, n: u64) {
        self.show_when_due();
        self.bar.inc(n);
    }

    fn set_position(&mut self, pos: u64) {
        self.show_when_due();
        self.bar.set_position(pos);
    }

    fn set_message(&mut self, message: String) {
        self.bar.set_message(message);
    }

    fn finish(self: Box<Self>) {
        self.bar.finish_and_clear();
    }
}

/// The terminal: lazy bars, notes on stderr.
pub struct Terminal;

impl Progress for Terminal {
    fn bar(&self, len: u64, label: &'static str) -> Box<dyn Bar> {
        Box::new(LazyBar::new(len, label))
    }

    fn note(&self, message: &str) {
        eprintln!("{message}");
    }
}
