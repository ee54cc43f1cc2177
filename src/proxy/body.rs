//! Streaming body wrappers: a request body with a size limit, and a response body that
//! counts what it sends and reports when it is done.

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};

use crate::error::BoxError;

/// The request body went past `server.max_request_body`.
#[derive(Debug, thiserror::Error)]
#[error("request body larger than {0} bytes")]
pub struct BodyTooLarge(pub u64);

/// How far a client's request body has come; shared between the body (which sets it) and
/// the request path (which reads it to tell a client's fault from the supplier's).
#[derive(Debug)]
pub struct BodyProgress {
    state: AtomicU8,
    /// Whether the last read of the body waited on the client (it sends slower than the
    /// supplier reads), as opposed to the supplier not reading at all.
    waiting_on_client: AtomicBool,
    limit: u64,
    idle: Duration,
}

/// What [`BodyProgress`] says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    /// Still arriving (or not read yet).
    Arriving,
    /// Read to its end.
    Complete,
    /// Went past `server.max_request_body`.
    TooLarge,
    /// The client's side failed (connection closed or reset mid-body).
    Aborted,
    /// The client sent nothing for `server.idle_timeout` mid-body.
    Stalled,
}

impl BodyProgress {
    /// Progress of a body limited to `limit` bytes whose client may pause for `idle`.
    pub fn new(limit: u64, idle: Duration) -> Self {
        Self {
            state: AtomicU8::new(0),
            waiting_on_client: AtomicBool::new(false),
            limit,
            idle,
        }
    }

    /// `server.idle_timeout`.
    pub fn idle(&self) -> Duration {
        self.idle
    }

    /// `server.max_request_body`.
    pub fn limit(&self) -> u64 {
        self.limit
    }

    /// Whether the body is still arriving and its last read waited on the client.
    pub fn waiting_on_client(&self) -> bool {
        self.get() == Progress::Arriving && self.waiting_on_client.load(Ordering::Acquire)
    }

    /// Where the body stands.
    pub fn get(&self) -> Progress {
        match self.state.load(Ordering::Acquire) {
            1 => Progress::Complete,
            2 => Progress::TooLarge,
            3 => Progress::Aborted,
            4 => Progress::Stalled,
            _ => Progress::Arriving,
        }
    }

    fn set(&self, progress: Progress) {
        let value = match progress {
            Progress::Arriving => 0,
            Progress::Complete => 1,
            Progress::TooLarge => 2,
            Progress::Aborted => 3,
            Progress::Stalled => 4,
        };
        self.state.store(value, Ordering::Release);
    }
}

/// A request body that fails once more than `limit` bytes have passed, and records in its
/// [`BodyProgress`] how it ended, so the handler answers 413 (too large) or 400 (aborted)
/// rather than blame the supplier.
#[derive(Debug)]
pub struct LimitedBody<B> {
    inner: B,
    seen: u64,
    limit: u64,
    progress: Arc<BodyProgress>,
}

impl<B: Body> LimitedBody<B> {
    /// Wraps `inner`, reporting to `progress`.
    pub fn new(inner: B, limit: u64, progress: Arc<BodyProgress>) -> Self {
        if inner.is_end_stream() {
            progress.set(Progress::Complete);
        }
        Self {
            inner,
            seen: 0,
            limit,
            progress,
        }
    }
}

impl<B> Body for LimitedBody<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let frame = Pin::new(&mut self.inner).poll_frame(cx);
        self.progress
            .waiting_on_client
            .store(frame.is_pending(), Ordering::Release);
        let frame = ready!(frame);
        Poll::Ready(match frame {
            Some(Ok(frame)) => {
                if let Some(data) = frame.data_ref() {
                    self.seen = self.seen.saturating_add(data.len() as u64);
                    if self.seen > self.limit {
                        self.progress.set(Progress::TooLarge);
                        return Poll::Ready(Some(Err(Box::new(BodyTooLarge(self.limit)))));
                    }
                }
                if self.inner.is_end_stream() {
                    self.progress.set(Progress::Complete);
                }
                Some(Ok(frame))
            }
            Some(Err(err)) => {
                let err: BoxError = err.into();
                let stalled = err.is::<crate::proxy::idle::BodyStalled>();
                self.progress.set(if stalled {
                    Progress::Stalled
                } else {
                    Progress::Aborted
                });
                Some(Err(err))
            }
            None => {
                self.progress.set(Progress::Complete);
                None
            }
        })
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Told how a response body ended.
pub trait BodyObserver: Send + 'static {
    /// Called once, when the body ended (`complete`) or was dropped early, with the bytes sent.
    fn finished(&mut self, bytes: u64, complete: bool);
}

/// A response body that counts the bytes it yields and tells its observer once at the end
/// (or when dropped, e.g. because the client went away).
pub struct ObservedBody<B: Body, O: BodyObserver> {
    inner: B,
    bytes: u64,
    observer: Option<O>,
}

impl<B: Body, O: BodyObserver> ObservedBody<B, O> {
    /// Wraps `inner`.
    pub fn new(inner: B, observer: O) -> Self {
        Self {
            inner,
            bytes: 0,
            observer: Some(observer),
        }
    }

    fn finish(&mut self, complete: bool) {
        if let Some(mut observer) = self.observer.take() {
            observer.finished(self.bytes, complete);
        }
    }
}

impl<B, O> Body for ObservedBody<B, O>
where
    B: Body<Data = Bytes> + Unpin,
    O: BodyObserver + Unpin,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let frame = ready!(Pin::new(&mut self.inner).poll_frame(cx));
        match &frame {
            Some(Ok(frame)) => {
                if let Some(data) = frame.data_ref() {
                    self.bytes += data.len() as u64;
                }
            }
            Some(Err(_)) => self.finish(false),
            None => self.finish(true),
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl<B: Body, O: BodyObserver> Drop for ObservedBody<B, O> {
    fn drop(&mut self) {
        // A body hyper never polled to its end (HEAD, 204, or the client left) ends here.
        let complete = self.inner.is_end_stream();
        self.finish(complete);
    }
}

/// A supplier's response body that owns its request's concurrency slot: the slot goes back
/// once the body has been read to its end, or dropped (the client left).
#[derive(Debug)]
pub struct Slotted {
    inner: hyper::body::Incoming,
    slot: Option<tokio::sync::OwnedSemaphorePermit>,
}

impl Slotted {
    /// `inner`, holding `slot`.
    pub fn new(inner: hyper::body::Incoming, slot: tokio::sync::OwnedSemaphorePermit) -> Self {
        Self {
            inner,
            slot: Some(slot),
        }
    }
}

impl Body for Slotted {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if matches!(polled, Poll::Ready(None)) {
            self.slot = None;
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::{BodyExt, Full, StreamBody};

    #[tokio::test]
    async fn limited_body_records_how_it_ended() {
        let chunks = (0..4)
            .map(|_| Ok::<_, std::convert::Infallible>(Frame::data(Bytes::from(vec![0u8; 10]))));
        let progress = Arc::new(BodyProgress::new(25, std::time::Duration::from_secs(60)));
        let body = LimitedBody::new(
            StreamBody::new(futures_util::stream::iter(chunks)),
            25,
            progress.clone(),
        );
        assert_eq!(progress.get(), Progress::Arriving);
        let err = body.collect().await.expect_err("limit");
        assert!(err.is::<BodyTooLarge>());
        assert_eq!(progress.get(), Progress::TooLarge);

        let progress = Arc::new(BodyProgress::new(25, std::time::Duration::from_secs(60)));
        let body = LimitedBody::new(Full::new(Bytes::from(vec![1u8; 25])), 25, progress.clone());
        assert_eq!(body.collect().await.expect("fits").to_bytes().len(), 25);
        assert_eq!(progress.get(), Progress::Complete);

        let cut = futures_util::stream::iter([
            Ok(Frame::data(Bytes::from_static(b"ab"))),
            Err(std::io::Error::from(std::io::ErrorKind::ConnectionReset)),
        ]);
        let progress = Arc::new(BodyProgress::new(25, std::time::Duration::from_secs(60)));
        let body = LimitedBody::new(StreamBody::new(cut), 25, progress.clone());
        assert!(body.collect().await.is_err());
        assert_eq!(progress.get(), Progress::Aborted);
    }

    struct Record(Arc<std::sync::Mutex<Vec<(u64, bool)>>>);
    impl BodyObserver for Record {
        fn finished(&mut self, bytes: u64, complete: bool) {
            self.0.lock().expect("lock").push((bytes, complete));
        }
    }

    #[tokio::test]
    async fn observed_body_reports_once_with_the_byte_count() {
        let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
        let body = ObservedBody::new(
            Full::new(Bytes::from_static(b"hello")),
            Record(seen.clone()),
        );
        assert_eq!(body.collect().await.expect("body").to_bytes(), "hello");
        assert_eq!(*seen.lock().expect("lock"), [(5, true)]);
    }
}
