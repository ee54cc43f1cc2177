//! Request bodies that a retry may need again: small ones are buffered (up to
//! `retry.max_body`), larger ones stream once and make the request not retryable.

use axum::body::Body;
use bytes::{Bytes, BytesMut};
use http_body::Frame;
use http_body_util::{BodyExt, BodyStream, Full, StreamBody};

use crate::error::BoxError;

/// A request body, ready to be sent once or several times.
#[derive(Debug)]
pub enum RequestBody {
    /// Held in memory: every attempt sends a copy.
    Buffered(Bytes),
    /// Too large (or of unknown length and turned out too large): sent once.
    Streaming(Body),
}

impl RequestBody {
    /// Reads `body` into memory when it has at most `max_body` bytes; otherwise keeps
    /// streaming it (the bytes read so far go first).
    pub async fn prepare<B>(mut body: B, max_body: u64) -> Result<Self, BoxError>
    where
        B: http_body::Body<Data = Bytes> + Send + Unpin + 'static,
        B::Error: Into<BoxError>,
    {
        if body.is_end_stream() {
            return Ok(Self::Buffered(Bytes::new()));
        }
        let declared = body.size_hint().exact();
        if max_body == 0 || declared.is_some_and(|len| len > max_body) {
            return Ok(Self::Streaming(Body::new(body.map_err(Into::into))));
        }
        let mut buffer = BytesMut::new();
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(Into::into)?;
            if let Ok(data) = frame.into_data() {
                buffer.extend_from_slice(&data);
                if buffer.len() as u64 > max_body {
                    let head = futures_util::stream::iter([Ok::<_, BoxError>(Frame::data(
                        buffer.freeze(),
                    ))]);
                    let rest = BodyStream::new(body.map_err(Into::into));
                    let stream = futures_util::StreamExt::chain(head, rest);
                    return Ok(Self::Streaming(Body::new(StreamBody::new(stream))));
                }
            }
            // Trailers of a buffered body are dropped: HTTP/1.1 upstreams rarely read them.
        }
        Ok(Self::Buffered(buffer.freeze()))
    }

    /// Whether a retry can send it again.
    pub fn replayable(&self) -> bool {
        matches!(self, Self::Buffered(_))
    }

    /// The body for one attempt: a copy when buffered, else the stream itself (once).
    pub fn take(&mut self) -> Body {
        match self {
            Self::Buffered(bytes) => Body::new(Full::new(bytes.clone())),
            Self::Streaming(body) => std::mem::take(body),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunked(
        chunks: &[&'static [u8]],
    ) -> StreamBody<impl futures_util::Stream<Item = Result<Frame<Bytes>, std::convert::Infallible>>>
    {
        let frames: Vec<_> = chunks
            .iter()
            .map(|c| Ok(Frame::data(Bytes::from_static(c))))
            .collect();
        StreamBody::new(futures_util::stream::iter(frames))
    }

    #[tokio::test]
    async fn small_bodies_are_buffered_and_replayed() {
        let mut body = RequestBody::prepare(chunked(&[b"ab", b"cd"]), 4)
            .await
            .expect("prepare");
        assert!(body.replayable());
        for _ in 0..2 {
            let bytes = body.take().collect().await.expect("body").to_bytes();
            assert_eq!(bytes, "abcd");
        }
    }

    #[tokio::test]
    async fn larger_bodies_stream_once_with_nothing_lost() {
        let mut body = RequestBody::prepare(chunked(&[b"ab", b"cd", b"ef"]), 3)
            .await
            .expect("prepare");
        assert!(!body.replayable());
        assert_eq!(
            body.take().collect().await.expect("body").to_bytes(),
            "abcdef"
        );

        let declared = Full::new(Bytes::from_static(b"0123456789"));
        let body = RequestBody::prepare(declared, 4).await.expect("prepare");
        assert!(
            !body.replayable(),
            "a declared length above the limit is not read at all"
        );

        let body = RequestBody::prepare(Full::new(Bytes::from_static(b"x")), 0)
            .await
            .expect("prepare");
        assert!(!body.replayable(), "max_body 0 never buffers");

        let empty = http_body_util::Empty::<Bytes>::new();
        let body = RequestBody::prepare(empty, 0).await.expect("prepare");
        assert!(body.replayable(), "no body at all is always replayable");
    }
}
