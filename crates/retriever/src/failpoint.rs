//! Failpoints: named places where the crate's own tests make the code fail,
//! to check that a failure part way through loses nothing. Outside those
//! tests [`hit`] is a no-op the compiler removes.

use crate::RetrieverError;

#[cfg(test)]
thread_local! {
    static ARMED: std::cell::RefCell<Vec<&'static str>> = const { std::cell::RefCell::new(Vec::new()) };
    /// `(hits so far, the hit that fails)` of [`arm_nth`].
    static NTH: std::cell::Cell<Option<(usize, usize)>> = const { std::cell::Cell::new(None) };
}

/// Make the `n`-th failpoint hit from now on this thread fail (counting
/// from 0, whatever its name), until [`disarm`]: a loop over `n` fails each
/// step of an operation in turn.
#[cfg(test)]
pub(crate) fn arm_nth(n: usize) {
    NTH.with(|c| c.set(Some((0, n))));
}

/// Whether the failpoint armed by [`arm_nth`] has been reached.
#[cfg(test)]
pub(crate) fn nth_reached() -> bool {
    NTH.with(|c| c.get().is_some_and(|(hits, n)| hits > n))
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
    NTH.with(|c| c.set(None));
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
    let nth = NTH.with(|c| match c.get() {
        Some((hits, n)) => {
            c.set(Some((hits + 1, n)));
            hits == n
        }
        None => false,
    });
    #[cfg(test)]
    if nth || ARMED.with(|a| a.borrow().contains(&name)) {
        return Err(RetrieverError::InvalidParameter {
            name: "failpoint",
            reason: format!("{name} failed (a test armed it)"),
        });
    }
    let _ = name;
    Ok(())
}
