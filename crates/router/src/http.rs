//! The network source natively: an HTTP JSON search endpoint (see
//! [`crate::source`] for the protocol), queried on a thread of its own so that
//! a hop's local and network searches run at the same time.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use crate::SourceKind;
use crate::error::{Fault, RouterError, invalid};
use crate::source::{Hit, SearchRequest, Source, SourceFuture, parse_reply};

/// Largest answer body read (bigger is a lie: 3 queries × k hits of text).
const MAX_BODY_BYTES: u64 = 16 * 1024 * 1024;

/// A network search endpoint: POST `{queries, k}` → `{hits}`.
#[derive(Clone)]
pub struct HttpSource {
    url: String,
    timeout: Duration,
    agent: ureq::Agent,
}

impl HttpSource {
    /// A source for `url` (http or https) that gives up after `timeout`.
    pub fn new(url: &str, timeout: Duration) -> Result<Self, RouterError> {
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(invalid(
                "network url",
                format!("`{url}` is not an http(s) URL"),
            ));
        }
        if timeout.is_zero() {
            return Err(invalid("network timeout", "must be more than 0 ms"));
        }
        // A search endpoint that redirects is answered as the status it
        // sent, never followed: the peer named is the only one asked.
        let agent = ureq::Agent::config_builder()
            .timeout_global(Some(timeout))
            .http_status_as_error(false)
            .max_redirects(0)
            .build()
            .into();
        Ok(Self {
            url: url.to_owned(),
            timeout,
            agent,
        })
    }

    /// The endpoint.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// One blocking request.
    pub fn search_blocking(&self, queries: &[String], k: usize) -> Result<Vec<Vec<Hit>>, Fault> {
        let request = SearchRequest {
            queries: queries.to_vec(),
            k,
        };
        let limit_ms = u64::try_from(self.timeout.as_millis()).unwrap_or(u64::MAX);
        let failed = |e: ureq::Error| match e {
            ureq::Error::Timeout(_) => Fault::Timeout { limit_ms },
            other => Fault::Transport {
                detail: other.to_string(),
            },
        };
        let mut response = self
            .agent
            .post(&self.url)
            .send_json(&request)
            .map_err(failed)?;
        let status = response.status().as_u16();
        if !(200..300).contains(&status) {
            return Err(Fault::Http { status });
        }
        let body = response
            .body_mut()
            .with_config()
            .limit(MAX_BODY_BYTES)
            .read_to_vec()
            .map_err(failed)?;
        parse_reply(&body, queries.len(), k)
    }
}

impl Source for HttpSource {
    fn kind(&self) -> SourceKind {
        SourceKind::Network
    }

    fn search<'a>(&'a self, queries: &'a [String], k: usize) -> SourceFuture<'a> {
        let this = self.clone();
        let queries = queries.to_vec();
        let joined = on_thread(move || this.search_blocking(&queries, k));
        Box::pin(async move {
            joined.await.unwrap_or_else(|| {
                Err(Fault::Transport {
                    detail: "the request thread stopped".into(),
                })
            })
        })
    }
}

struct Slot<T> {
    value: Option<T>,
    finished: bool,
    waker: Option<Waker>,
}

/// Runs `f` on a new thread; the future completes with its result (`None`
/// if the thread panicked or could not start).
pub(crate) fn on_thread<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> impl Future<Output = Option<T>> {
    let slot = Arc::new(Mutex::new(Slot {
        value: None,
        finished: false,
        waker: None,
    }));
    let theirs = Arc::clone(&slot);
    let finish = move |value: Option<T>| {
        if let Ok(mut s) = theirs.lock() {
            s.value = value;
            s.finished = true;
            if let Some(w) = s.waker.take() {
                w.wake();
            }
        }
    };
    let spawned = std::thread::Builder::new()
        .name("rlrag-network".into())
        .spawn({
            let finish = finish.clone();
            move || finish(std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).ok())
        });
    if spawned.is_err() {
        finish(None);
    }
    ThreadFuture { slot }
}

struct ThreadFuture<T> {
    slot: Arc<Mutex<Slot<T>>>,
}

impl<T> Future for ThreadFuture<T> {
    type Output = Option<T>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<T>> {
        let Ok(mut s) = self.slot.lock() else {
            return Poll::Ready(None);
        };
        if s.finished {
            return Poll::Ready(s.value.take());
        }
        s.waker = Some(cx.waker().clone());
        Poll::Pending
    }
}
