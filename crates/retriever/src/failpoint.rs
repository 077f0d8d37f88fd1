//! Failpoints: named places where the crate's own tests make the code fail,
//! to check that a failure part way through loses nothing. Outside those
//! tests [`hit`] is a no-op the compiler removes.

use crate::RetrieverError;

#[cfg(test)]
thread_local! {
    static ARMED: std::cell::RefCell<Vec<&'static str>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Make `name` fail on this thread until [`disarm`].
#[cfg(test)]
pub(crate) fn arm(name: &'static str) {
    ARMED.with(|a| a.borrow_mut().push(name));
}

/// Let every failpoint of this thread pass again.
#[cfg(test)]
pub(crate) fn disarm() {
    ARMED.with(|a| a.borrow_mut().clear());
}

/// An I/O error when `name` is armed on this thread.
#[inline]
pub(crate) fn hit_io(name: &'static str) -> std::io::Result<()> {
    hit(name).map_err(|e| std::io::Error::other(e.to_string()))
}

/// An error when `name` is armed on this thread.
#[inline]
pub(crate) fn hit(name: &'static str) -> Result<(), RetrieverError> {
    #[cfg(test)]
    if ARMED.with(|a| a.borrow().contains(&name)) {
        return Err(RetrieverError::InvalidParameter {
            name: "failpoint",
            reason: format!("{name} failed (a test armed it)"),
        });
    }
    let _ = name;
    Ok(())
}
