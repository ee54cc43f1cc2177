//! Idle timeouts for what a request holds while its response streams (`server.idle_timeout`):
//! a client that stops reading, and a supplier that stops sending mid-body, must not hold a
//! concurrency slot (and a quota unit's worth of capacity) forever.
//!
//! hyper 1.x has a timeout for reading a request head but none for writing a response, so
//! both are written here: a timer armed while the other side makes no progress, polled with
//! the same waker, so it fires even when nothing else wakes the task.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::Notify;
use tokio::time::{Instant, Sleep};

use crate::error::BoxError;
use crate::proxy::head_scan::HeadScan;

/// A deadline armed only when needed and disarmed when no longer: its timer is made the
/// first time it is armed (most requests never need it: no timer and no allocation on the
/// fast path) and reused after.
#[derive(Debug, Default)]
pub(crate) struct Deadline {
    sleep: Option<Pin<Box<Sleep>>>,
    armed: bool,
}

impl Deadline {
    pub(crate) fn disarm(&mut self) {
        self.armed = false;
    }

    /// Arms at `at()` unless armed already, and tells whether the deadline has passed.
    pub(crate) fn passed(&mut self, cx: &mut Context<'_>, at: impl FnOnce() -> Instant) -> bool {
        if !self.armed {
            self.armed = true;
            let deadline = at();
            match &mut self.sleep {
                Some(sleep) => sleep.as_mut().reset(deadline),
                None => self.sleep = Some(Box::pin(tokio::time::sleep_until(deadline))),
            }
        }
        self.sleep
            .as_mut()
            .is_some_and(|sleep| sleep.as_mut().poll(cx).is_ready())
    }
}

/// A timer that is armed while the other side makes no progress.
#[derive(Debug)]
struct Stall {
    limit: Duration,
    deadline: Deadline,
}

impl Stall {
    fn new(limit: Duration) -> Self {
        Self {
            limit,
            deadline: Deadline::default(),
        }
    }

    /// Progress was made: disarm.
    fn progress(&mut self) {
        self.deadline.disarm();
    }

    /// No progress: arm (the first time) and tell whether the limit has passed.
    fn stalled(&mut self, cx: &mut Context<'_>) -> bool {
        let limit = self.limit;
        self.deadline.passed(cx, || Instant::now() + limit)
    }
}

/// A client connection whose writes fail with `TimedOut` once the client has accepted no
/// byte for `limit` (it stopped reading): hyper then closes the connection and drops the
/// response, which gives its slot back.
#[derive(Debug)]
pub struct WriteStallGuard<IO> {
    inner: IO,
    stall: Stall,
    read_end: Arc<ReadEnd>,
    /// `server.header_read_timeout`, and the deadline of the head being read, if any.
    head_limit: Option<(Duration, prometheus::IntCounter)>,
    /// When the first bytes of the head being read came, if any.
    head_started: Option<Instant>,
    /// The timer of that head: armed only once a head needs a second read (most arrive
    /// whole).
    head_deadline: Deadline,
    /// The head being read, scanned for what hyper would hide (see [`HeadScan`]).
    head_scan: HeadScan,
    /// Which head that is: the connection's count of requests started when it began.
    head_of: Option<usize>,
    /// Bytes read from the client already, given to the next reader first (see
    /// [`WriteStallGuard::replay`]).
    unread: Bytes,
}

/// Tells when a client's side of its connection has ended (it half-closed, or closed): a
/// request still waiting for quota then gives up its place, since a client that closed its
/// connection cannot be told from one that half-closed, and must cost no quota; a request
/// already under way is still answered. hyper does not read a half-closed connection while a
/// request is in flight, so this peeks at the socket itself (shared with hyper's side, see
/// [`SharedStream`]), and only while a request waits.
#[derive(Debug, Default)]
pub struct ReadEnd {
    ended: AtomicBool,
    notify: Notify,
    /// The client socket; weak, so that the connection closes when hyper drops it.
    socket: std::sync::Weak<tokio::net::TcpStream>,
    /// Requests whose head was read, and responses finished: equal when the connection
    /// is between requests, so the next bytes begin a request head.
    requests: std::sync::atomic::AtomicUsize,
    responses: std::sync::atomic::AtomicUsize,
    /// The head just read carried both `Content-Length` and `Transfer-Encoding`.
    ambiguous_length: AtomicBool,
    /// hyper's last read found nothing new, and no byte of a next head had come (see
    /// [`ReadEnd::idle`]).
    read_nothing: AtomicBool,
    /// hyper's last write found the client's socket full.
    write_blocked: AtomicBool,
    /// The last response closes the connection (`Connection: close`).
    closing: AtomicBool,
}

/// How often a waiting request looks again when the client's socket holds unread bytes (a
/// body or a pipelined request), which hide whether the client has closed after them.
const PEEK_AGAIN: Duration = Duration::from_millis(50);

impl ReadEnd {
    /// Watches `stream`.
    pub fn watching(stream: &SharedStream) -> Self {
        Self {
            socket: Arc::downgrade(&stream.0),
            ..Self::default()
        }
    }

    /// A request head was read on this connection.
    pub fn request_started(&self) {
        self.requests.fetch_add(1, Ordering::AcqRel);
    }

    /// Whether the head of the request just started carried both `Content-Length` and
    /// `Transfer-Encoding` (hyper drops the length before the handler sees the request).
    pub fn take_ambiguous_length(&self) -> bool {
        self.ambiguous_length.swap(false, Ordering::AcqRel)
    }

    /// A response on this connection was sent (or given up).
    pub fn response_finished(&self) {
        self.responses.fetch_add(1, Ordering::AcqRel);
    }

    /// The response being sent closes the connection after it, or not.
    pub fn set_closing(&self, closing: bool) {
        self.closing.store(closing, Ordering::Release);
    }

    /// Whether hyper holds this connection idle: its last response written whole and kept
    /// alive, and nothing read of a next request, so it can be taken back from hyper and
    /// parked (see `crate::proxy::connection`).
    pub fn idle(&self) -> bool {
        // Whether the last response is finished is read now, not at the read: hyper may make
        // its last read of a request before it lets go of the response body.
        self.read_nothing.load(Ordering::Acquire)
            && self.between_requests()
            && !self.write_blocked.load(Ordering::Acquire)
            && !self.closing.load(Ordering::Acquire)
    }

    /// How many requests this connection has begun.
    pub fn requests_started(&self) -> usize {
        self.requests.load(Ordering::Acquire)
    }

    /// Whether no request is under way: the next bytes begin a request head.
    fn between_requests(&self) -> bool {
        self.requests.load(Ordering::Acquire) == self.responses.load(Ordering::Acquire)
    }

    fn mark(&self) {
        if !self.ended.swap(true, Ordering::AcqRel) {
            self.notify.notify_waiters();
        }
    }

    /// Whether the client's side has ended.
    pub fn ended(&self) -> bool {
        self.ended.load(Ordering::Acquire)
    }

    /// Resolves once the client's side has ended (never, when it cannot be watched).
    pub async fn wait(&self) {
        let Some(socket) = self.socket.upgrade() else {
            return self.marked().await;
        };
        let mut byte = [0u8; 1];
        loop {
            tokio::select! {
                () = self.marked() => return,
                peeked = socket.peek(&mut byte) => match peeked {
                    // End of stream, or the connection reset: the client's side is gone.
                    Ok(0) | Err(_) => {
                        self.mark();
                        return;
                    }
                    Ok(_) => tokio::time::sleep(PEEK_AGAIN).await,
                },
            }
        }
    }

    /// Resolves once [`ReadEnd::mark`] was called (a read of the connection saw its end).
    async fn marked(&self) {
        notified_when(&self.notify, || self.ended().then_some(())).await;
    }
}

thread_local! {
    /// Each thread's buffer for client socket reads (see [`SharedStream`]).
    static SCRATCH: std::cell::RefCell<Box<[u8]>> =
        std::cell::RefCell::new(vec![0; 64 * 1024].into_boxed_slice());
}

/// A client connection's socket, shared between hyper (which reads and writes it through
/// this) and the connection's [`ReadEnd`] (which peeks at it while a request waits). tokio
/// keeps readiness for `poll_*` callers and for awaited `peek`s apart, so the two never take
/// each other's wake-ups. Written here because tokio's own halves (`into_split`) do not let
/// a third party peek; sharing the one registered socket costs no descriptor and no epoll
/// registration per connection (a duplicate did, twice over while a request waited).
#[derive(Debug)]
pub struct SharedStream(Arc<tokio::net::TcpStream>);

impl SharedStream {
    /// Shares `stream`.
    pub fn new(stream: tokio::net::TcpStream) -> Self {
        Self(Arc::new(stream))
    }

    /// Resolves once the socket is readable (bytes, or its end), holding no buffer.
    pub async fn readable(&self) -> io::Result<()> {
        self.0.readable().await
    }

    /// Writes with `write` once the socket is writable (again, when readiness was stale).
    fn poll_write_with(
        &self,
        cx: &mut Context<'_>,
        mut write: impl FnMut(&tokio::net::TcpStream) -> io::Result<usize>,
    ) -> Poll<io::Result<usize>> {
        loop {
            std::task::ready!(self.0.poll_write_ready(cx))?;
            match write(&self.0) {
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => {}
                written => return Poll::Ready(written),
            }
        }
    }
}

impl AsyncRead for SharedStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        loop {
            std::task::ready!(self.0.poll_read_ready(cx))?;
            // hyper hands over its buffer uninitialized; without `unsafe` the bytes must be
            // read into initialized memory. Zeroing hyper's whole spare buffer on every read
            // would also make all of it resident on every idle connection, so the read goes
            // through this thread's scratch buffer and only what came is copied.
            let read = SCRATCH.with(|scratch| {
                let mut scratch = scratch.borrow_mut();
                let room = buf.remaining().min(scratch.len());
                let n = self.0.try_read(&mut scratch[..room])?;
                buf.put_slice(&scratch[..n]);
                Ok::<_, io::Error>(n)
            });
            match read {
                Ok(_) => return Poll::Ready(Ok(())),
                // Readiness was stale (tokio cleared it): wait for the next.
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => {}
                Err(err) => return Poll::Ready(Err(err)),
            }
        }
    }
}

impl AsyncWrite for SharedStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.poll_write_with(cx, |socket| socket.try_write(buf))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.poll_write_with(cx, |socket| socket.try_write_vectored(bufs))
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(socket2::SockRef::from(&*self.0).shutdown(std::net::Shutdown::Write))
    }
}

impl<IO> WriteStallGuard<IO> {
    /// Wraps `inner`; `read_end` is told when a read finds the end of the stream.
    pub fn new(inner: IO, limit: Duration, read_end: Arc<ReadEnd>) -> Self {
        Self {
            inner,
            stall: Stall::new(limit),
            read_end,
            head_limit: None,
            head_started: None,
            head_deadline: Deadline::default(),
            head_scan: HeadScan::default(),
            head_of: None,
            unread: Bytes::new(),
        }
    }

    /// Gives `bytes`, read from the client earlier and not used (the start of a next head),
    /// to the next reads before anything new.
    pub fn replay(&mut self, bytes: Bytes) {
        self.unread = bytes;
    }

    /// Also cuts a client whose request head, once its first byte came, takes longer than
    /// `limit` to arrive (a client trickling its head); each cut counts in `timeouts`.
    #[must_use]
    pub fn with_header_read_timeout(
        mut self,
        limit: Duration,
        timeouts: prometheus::IntCounter,
    ) -> Self {
        self.head_limit = Some((limit, timeouts));
        self
    }

    /// What tells when the client's side of this connection ends.
    pub fn read_end(&self) -> Arc<ReadEnd> {
        Arc::clone(&self.read_end)
    }

    /// The wrapped connection.
    pub fn get_ref(&self) -> &IO {
        &self.inner
    }

    fn check<T>(
        &mut self,
        cx: &mut Context<'_>,
        polled: Poll<io::Result<T>>,
    ) -> Poll<io::Result<T>> {
        match polled {
            Poll::Pending if self.stall.stalled(cx) => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "the client accepted nothing for server.idle_timeout",
            ))),
            Poll::Pending => {
                self.read_end.write_blocked.store(true, Ordering::Release);
                Poll::Pending
            }
            ready => {
                self.read_end.write_blocked.store(false, Ordering::Release);
                self.stall.progress();
                ready
            }
        }
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for WriteStallGuard<IO> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        // Bytes hyper read and gave back when the connection was parked: the start of a
        // next head (pipelined), read, timed and scanned as one.
        let polled = if !self.unread.is_empty() {
            let n = self.unread.len().min(buf.remaining());
            buf.put_slice(&self.unread.split_to(n));
            Poll::Ready(Ok(()))
        } else {
            Pin::new(&mut self.inner).poll_read(cx, buf)
        };
        let between = self.read_end.between_requests();
        // hyper may not read at all while a request is under way, so a new head is told by
        // the count of requests started, not by a read in between.
        let head = self.read_end.requests_started();
        // Bytes of the head being read have come (an idle connection has none: its time is
        // the keep-alive's, not this one).
        let in_head = between && self.head_of == Some(head);
        self.read_end
            .read_nothing
            .store(polled.is_pending() && !in_head, Ordering::Release);
        match polled {
            Poll::Ready(Ok(())) if buf.filled().len() > before => {
                if between {
                    if !in_head {
                        // The first bytes of a head: its clock starts, its scan too.
                        self.head_of = Some(head);
                        self.head_started = self.head_limit.is_some().then(Instant::now);
                        self.head_deadline.disarm();
                        self.head_scan = HeadScan::default();
                    }
                    if !self.head_scan.done() {
                        self.head_scan.feed(&buf.filled()[before..]);
                        if self.head_scan.ambiguous_length() {
                            self.read_end
                                .ambiguous_length
                                .store(true, Ordering::Release);
                        }
                    }
                }
            }
            Poll::Ready(Ok(())) if buf.remaining() > 0 => self.read_end.mark(),
            Poll::Pending if in_head => {
                // The head did not come whole: time the rest of it from its first byte.
                let deadline = self
                    .head_started
                    .zip(self.head_limit.as_ref().map(|(limit, _)| *limit))
                    .map(|(started, limit)| started + limit);
                let expired = deadline.is_some_and(|at| self.head_deadline.passed(cx, || at));
                if expired {
                    self.head_started = None;
                    self.head_deadline.disarm();
                    if let Some((_, timeouts)) = &self.head_limit {
                        timeouts.inc();
                    }
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "the client's request head took longer than server.header_read_timeout",
                    )));
                }
            }
            Poll::Pending | Poll::Ready(_) => {}
        }
        polled
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for WriteStallGuard<IO> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.check(cx, polled)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let polled = Pin::new(&mut self.inner).poll_flush(cx);
        self.check(cx, polled)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.check(cx, polled)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// A body's sender (the supplier for a response, the client for a request) sent nothing
/// for `server.idle_timeout`.
#[derive(Debug, thiserror::Error)]
#[error("nothing arrived for {}", humantime::format_duration(*.0))]
pub struct BodyStalled(pub Duration);

/// A body that fails once its sender has sent nothing for `limit`: a supplier's response
/// (the client then sees a cut response, and the slot comes back) or a client's request body
/// being read (answered `408 request_timeout`).
#[derive(Debug)]
pub struct IdleBody<B> {
    inner: B,
    stall: Stall,
}

impl<B> IdleBody<B> {
    /// Wraps `inner`.
    pub fn new(inner: B, limit: Duration) -> Self {
        Self {
            inner,
            stall: Stall::new(limit),
        }
    }
}

impl<B> Body for IdleBody<B>
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
        match Pin::new(&mut self.inner).poll_frame(cx) {
            Poll::Pending => {
                if self.stall.stalled(cx) {
                    let limit = self.stall.limit;
                    return Poll::Ready(Some(Err(Box::new(BodyStalled(limit)))));
                }
                Poll::Pending
            }
            Poll::Ready(frame) => {
                self.stall.progress();
                Poll::Ready(frame.map(|f| f.map_err(Into::into)))
            }
        }
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
    use futures_util::StreamExt;
    use http_body_util::{BodyExt, StreamBody};

    #[tokio::test(start_paused = true)]
    async fn a_stalled_body_fails_after_the_limit_and_a_trickle_does_not() {
        // Two frames, then nothing ever again.
        let frames = futures_util::stream::iter([
            Ok::<_, std::io::Error>(Frame::data(Bytes::from_static(b"a"))),
            Ok(Frame::data(Bytes::from_static(b"b"))),
        ])
        .chain(futures_util::stream::pending());
        let mut body = IdleBody::new(StreamBody::new(frames), Duration::from_secs(5));
        let started = Instant::now();
        assert!(body.frame().await.is_some());
        assert!(body.frame().await.is_some());
        let err = body.frame().await.expect("a frame").expect_err("stalled");
        assert!(err.is::<BodyStalled>());
        assert_eq!(Instant::now() - started, Duration::from_secs(5));

        // One frame every 4 s never trips a 5 s limit.
        let trickle = futures_util::stream::unfold(0, |n| async move {
            (n < 3).then_some(())?;
            tokio::time::sleep(Duration::from_secs(4)).await;
            Some((
                Ok::<_, std::io::Error>(Frame::data(Bytes::from_static(b"x"))),
                n + 1,
            ))
        });
        let body = IdleBody::new(StreamBody::new(Box::pin(trickle)), Duration::from_secs(5));
        assert_eq!(body.collect().await.expect("whole").to_bytes(), "xxx");
    }

    #[tokio::test(start_paused = true)]
    async fn a_client_that_stops_reading_times_out_the_write() {
        use tokio::io::AsyncWriteExt;
        // A pipe whose reader never reads: writes block once its buffer is full.
        let (writer, _reader) = tokio::io::duplex(64);
        let mut guarded = WriteStallGuard::new(writer, Duration::from_secs(5), Arc::default());
        let err = guarded.write_all(&[0u8; 1024]).await.expect_err("stalled");
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
    }
}

/// The gateway's drain: once it begins (SIGTERM), requests still waiting for quota or for a
/// retry are answered `503 shutting_down` shortly before `server.drain_timeout` ends, rather
/// than cut off with the connection (or answered with a supplier's raw 429).
#[derive(Debug, Default)]
pub struct Drain {
    deadline: std::sync::OnceLock<Instant>,
    notify: Notify,
}

/// How long before the drain's end waiting requests are answered, so the answer goes out
/// before the connections close.
const DRAIN_MARGIN: Duration = Duration::from_millis(250);

impl Drain {
    /// The drain begins; connections close at `deadline`.
    pub fn begin(&self, deadline: Instant) {
        if self.deadline.set(deadline).is_ok() {
            self.notify.notify_waiters();
        }
    }

    /// Resolves when a waiting request must be answered: a little before the drain ends.
    pub async fn answer_by(&self) {
        let deadline = notified_when(&self.notify, || self.deadline.get().copied()).await;
        let at = deadline.checked_sub(DRAIN_MARGIN).unwrap_or(deadline);
        tokio::time::sleep_until(at).await;
    }
}

/// Waits on `notify` until `ready` gives a value (checked after registering, so a
/// notification between the check and the wait is not missed).
async fn notified_when<T>(notify: &Notify, ready: impl Fn() -> Option<T>) -> T {
    loop {
        let notified = notify.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        if let Some(value) = ready() {
            return value;
        }
        notified.await;
    }
}
