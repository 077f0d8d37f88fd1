//! Progress of long runs, reported to whoever drives them: the command
//! line draws bars and prints notes; tests and libraries stay silent.

/// Receives the progress of a run.
pub trait Progress: Sync {
    /// A new task of `len` steps labelled `label`.
    fn bar(&self, len: u64, label: &'static str) -> Box<dyn Bar>;
    /// A line for the user (a warning, a stage finished).
    fn note(&self, message: &str);
}

/// One task's progress.
pub trait Bar {
    /// Advance by `n` steps.
    fn inc(&mut self, n: u64);
    /// Move to step `pos` (a stage that counts from the start again moves it back).
    fn set_position(&mut self, pos: u64);
    /// Replace the label (e.g. with a running reward).
    fn set_message(&mut self, message: String);
    /// The task is done.
    fn finish(self: Box<Self>);
}

/// Progress that goes nowhere.
#[derive(Debug, Clone, Copy, Default)]
pub struct Silent;

struct NoBar;

impl Bar for NoBar {
    fn inc(&mut self, _: u64) {}
    fn set_position(&mut self, _: u64) {}
    fn set_message(&mut self, _: String) {}
    fn finish(self: Box<Self>) {}
}

impl Progress for Silent {
    fn bar(&self, _: u64, _: &'static str) -> Box<dyn Bar> {
        Box::new(NoBar)
    }
    fn note(&self, _: &str) {}
}
