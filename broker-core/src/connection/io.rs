//! Reading whole packets from, and writing packets to, a connection's byte stream.

use std::mem::MaybeUninit;
use std::pin::{Pin, pin};
use std::task::{Context, Poll, ready};

use bytes::BytesMut;
use mqtt_codec::{DecodeError, Decoder, EncodeError, Packet, ProtocolVersion};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};

use crate::metrics::Metrics;

/// Why no packet could be read.
#[derive(Debug)]
pub(crate) enum ReadError {
    /// The peer closed the stream.
    Closed,
    /// The stream failed.
    Io(std::io::Error),
    /// The peer sent an invalid packet.
    Decode(DecodeError),
}

/// How much a read takes at once when the connection holds no buffer: the read goes into
/// this much stack, and only what arrived is copied to the heap.
const SCRATCH: usize = 4096;

/// The least room worth a read straight into the buffer.
const MIN_ROOM: usize = 256;

/// The read side of a connection: buffered bytes and the decoder that frames them.
///
/// The buffer is held only while bytes are in flight: a connection that has to wait for its
/// client with nothing buffered gives it back, and its next read goes into the stack (see
/// [`PacketReader::fill`]), so an idle connection holds no read buffer at all.
#[derive(Debug)]
pub(crate) struct PacketReader {
    pub(crate) buf: BytesMut,
    pub(crate) decoder: Decoder,
    /// Packets decoded since [`PacketReader::flush_counts`] last added them to the metrics
    /// (u32: flushed after every read, these stay small, and the pair takes 8 bytes in
    /// every connection's task rather than 16).
    packets: u32,
    /// Bytes read since then.
    bytes: u32,
}

impl PacketReader {
    pub(crate) fn new(max_packet_size: u32) -> Self {
        Self {
            // Empty: CONNECT is read into the stack and copied into an allocation of its own
            // size, which its strings (kept for the connection's lifetime) then hold.
            buf: BytesMut::new(),
            decoder: Decoder::new().with_max_packet_size(max_packet_size),
            packets: 0,
            bytes: 0,
        }
    }

    /// A reader that goes on with `decoder` and what is already in `buf`.
    pub(crate) fn resume(decoder: Decoder, buf: BytesMut) -> Self {
        Self {
            buf,
            decoder,
            packets: 0,
            bytes: 0,
        }
    }

    /// A packet already buffered, if a whole one is there.
    pub(crate) fn buffered(&mut self) -> Result<Option<Packet>, ReadError> {
        let packet = self
            .decoder
            .decode(&mut self.buf)
            .map_err(ReadError::Decode)?;
        self.packets = self.packets.saturating_add(u32::from(packet.is_some()));
        Ok(packet)
    }

    /// Adds the packets and bytes read since the last call to `metrics`: once per read
    /// rather than once per packet.
    pub(crate) fn flush_counts(&mut self, metrics: &Metrics) {
        metrics.count_read(
            u64::from(std::mem::take(&mut self.packets)),
            u64::from(std::mem::take(&mut self.bytes)),
        );
    }

    /// Reads until a whole packet is buffered, and returns it.
    pub(crate) async fn read<S: AsyncRead + Unpin>(
        &mut self,
        stream: &mut S,
    ) -> Result<Packet, ReadError> {
        loop {
            if let Some(packet) = self.buffered()? {
                return Ok(packet);
            }
            self.fill(stream, false).await?;
        }
    }

    /// Reads whatever the stream has into the buffer; `keep`: the buffer stays while the
    /// read waits (a connection with traffic a moment ago will have more). Cancel-safe.
    pub(crate) async fn fill<S: AsyncRead + Unpin>(
        &mut self,
        stream: &mut S,
        keep: bool,
    ) -> Result<(), ReadError> {
        std::future::poll_fn(|cx| self.poll_fill(stream, keep, cx)).await
    }

    /// [`PacketReader::fill`] as a poll: it keeps no state between polls, so a connection
    /// waiting for its client holds no read future, only the references to poll this with.
    pub(crate) fn poll_fill<S: AsyncRead + Unpin>(
        &mut self,
        stream: &mut S,
        keep: bool,
        cx: &mut Context<'_>,
    ) -> Poll<Result<(), ReadError>> {
        let read = if self.buf.is_empty() {
            ready!(self.poll_fill_empty(stream, keep, cx))
        } else {
            // Part of a packet is here: the rest goes straight after it.
            if self.buf.capacity() - self.buf.len() < MIN_ROOM {
                self.buf.reserve(4096);
            }
            // A fresh `read_buf` each poll: it keeps no state between polls.
            match ready!(pin!(stream.read_buf(&mut self.buf)).poll(cx)) {
                Ok(0) => Err(ReadError::Closed),
                Ok(n) => Ok(n),
                Err(e) => Err(ReadError::Io(e)),
            }
        };
        let read = match read {
            Ok(read) => u32::try_from(read).unwrap_or(u32::MAX),
            Err(e) => return Poll::Ready(Err(e)),
        };
        self.bytes = self.bytes.saturating_add(read);
        Poll::Ready(Ok(()))
    }

    /// Reads with nothing buffered: into the buffer while it has room (a busy connection
    /// keeps its buffer), otherwise into the stack, copying what arrived. A connection that
    /// has to wait gives its empty buffer back first.
    fn poll_fill_empty<S: AsyncRead + Unpin>(
        &mut self,
        stream: &mut S,
        keep: bool,
        cx: &mut Context<'_>,
    ) -> Poll<Result<usize, ReadError>> {
        if self.buf.capacity() >= MIN_ROOM {
            // A fresh `read_buf` each poll: it keeps no state between polls.
            match pin!(stream.read_buf(&mut self.buf)).poll(cx) {
                Poll::Ready(Ok(0)) => return Poll::Ready(Err(ReadError::Closed)),
                Poll::Ready(Ok(n)) => return Poll::Ready(Ok(n)),
                Poll::Ready(Err(e)) => return Poll::Ready(Err(ReadError::Io(e))),
                Poll::Pending => {
                    if !keep {
                        self.buf = BytesMut::new();
                    }
                    return Poll::Pending;
                }
            }
        }
        let mut scratch = [MaybeUninit::<u8>::uninit(); SCRATCH];
        let mut read = ReadBuf::uninit(&mut scratch);
        match Pin::new(&mut *stream).poll_read(cx, &mut read) {
            Poll::Ready(Ok(())) if read.filled().is_empty() => Poll::Ready(Err(ReadError::Closed)),
            Poll::Ready(Ok(())) => {
                self.buf.extend_from_slice(read.filled());
                Poll::Ready(Ok(read.filled().len()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(ReadError::Io(e))),
            Poll::Pending => {
                if self.buf.capacity() > 0 {
                    self.buf = BytesMut::new();
                }
                Poll::Pending
            }
        }
    }
}

/// Encodes `packet` for `version` into `buf`; an encoding failure is a bug in the caller,
/// logged and skipped rather than sent half-written.
pub(crate) fn encode_into(packet: &Packet, version: ProtocolVersion, buf: &mut BytesMut) -> bool {
    match packet.encode(version, buf) {
        Ok(_) => true,
        Err(e) => {
            log_encode_error(packet, &e);
            false
        }
    }
}

fn log_encode_error(packet: &Packet, e: &EncodeError) {
    tracing::error!(packet = %packet.packet_type(), error = %e, "cannot encode an outgoing packet");
}

/// Writes all of `buf` to `stream` and flushes it. Not `write_all` and `flush` in an async
/// fn: this holds the stream, the bytes and how many are written, in the task of every
/// connection that writes (24 bytes fewer than the async fn's frame).
pub(crate) fn write_all_flush<'a, S: AsyncWrite + Unpin>(
    stream: &'a mut S,
    buf: &'a [u8],
) -> impl Future<Output = std::io::Result<()>> + 'a {
    let mut written = 0;
    std::future::poll_fn(move |cx| {
        while let Some(rest) = buf.get(written..).filter(|rest| !rest.is_empty()) {
            let n = ready!(Pin::new(&mut *stream).poll_write(cx, rest))?;
            if n == 0 {
                return Poll::Ready(Err(std::io::ErrorKind::WriteZero.into()));
            }
            written += n;
        }
        Pin::new(&mut *stream).poll_flush(cx)
    })
}

/// Writes one packet and flushes it (counted in `metrics` once written).
pub(crate) async fn send<S: AsyncWrite + Unpin>(
    stream: &mut S,
    packet: &Packet,
    version: ProtocolVersion,
    metrics: &Metrics,
) -> std::io::Result<()> {
    let mut buf = BytesMut::new();
    if encode_into(packet, version, &mut buf) {
        stream.write_all(&buf).await?;
        stream.flush().await?;
        metrics.count_written(1, buf.len() as u64);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use tokio::io::AsyncReadExt;

    use super::*;

    #[tokio::test]
    async fn write_all_flush_writes_everything_through_a_narrow_stream() {
        // A pipe that takes 7 bytes at a time: the write goes out in many partial writes.
        let (mut near, mut far) = tokio::io::duplex(7);
        let sent: Vec<u8> = (0..=255).collect();
        let reader = tokio::spawn(async move {
            let mut got = Vec::new();
            far.read_to_end(&mut got).await.map(|_| got)
        });
        write_all_flush(&mut near, &sent).await.unwrap();
        drop(near);
        assert_eq!(reader.await.unwrap().unwrap(), sent);
    }
}
