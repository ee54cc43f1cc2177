//! Streaming body wrappers: a request body with a size limit, and a response body that
//! counts what it sends and reports when it is done.

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};

/// Errors a boxed body may carry.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The request body went past `server.max_request_body`.
#[derive(Debug, thiserror::Error)]
#[error("request body larger than {0} bytes")]
pub struct BodyTooLarge(pub u64);

/// A request body that fails once more than `limit` bytes have passed, and raises a flag the
/// handler reads to answer 413 rather than 502.
#[derive(Debug)]
pub struct LimitedBody<B> {
    inner: B,
    seen: u64,
    limit: u64,
    exceeded: Arc<AtomicBool>,
}

impl<B> LimitedBody<B> {
    /// Wraps `inner`; `exceeded` is set when the limit is passed.
    pub fn new(inner: B, limit: u64, exceeded: Arc<AtomicBool>) -> Self {
        Self {
            inner,
            seen: 0,
            limit,
            exceeded,
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
        let frame = ready!(Pin::new(&mut self.inner).poll_frame(cx));
        Poll::Ready(match frame {
            Some(Ok(frame)) => {
                if let Some(data) = frame.data_ref() {
                    self.seen = self.seen.saturating_add(data.len() as u64);
                    if self.seen > self.limit {
                        self.exceeded.store(true, Ordering::Relaxed);
                        return Poll::Ready(Some(Err(Box::new(BodyTooLarge(self.limit)))));
                    }
                }
                Some(Ok(frame))
            }
            Some(Err(err)) => Some(Err(err.into())),
            None => None,
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

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::{BodyExt, Full, StreamBody};

    #[tokio::test]
    async fn limited_body_fails_past_the_limit_and_raises_the_flag() {
        let chunks = (0..4)
            .map(|_| Ok::<_, std::convert::Infallible>(Frame::data(Bytes::from(vec![0u8; 10]))));
        let flag = Arc::new(AtomicBool::new(false));
        let body = LimitedBody::new(
            StreamBody::new(futures_util::stream::iter(chunks)),
            25,
            flag.clone(),
        );
        let err = body.collect().await.expect_err("limit");
        assert!(err.is::<BodyTooLarge>());
        assert!(flag.load(Ordering::Relaxed));

        let flag = Arc::new(AtomicBool::new(false));
        let body = LimitedBody::new(Full::new(Bytes::from(vec![1u8; 25])), 25, flag.clone());
        assert_eq!(body.collect().await.expect("fits").to_bytes().len(), 25);
        assert!(!flag.load(Ordering::Relaxed));
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
