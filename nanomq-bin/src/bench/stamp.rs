//! The stamp at the start of every benchmark payload: which publisher sent it, its sequence
//! number, and when (wall-clock nanoseconds, so that a `bench sub` in another process on the
//! same machine can compute latencies too). The rest of the payload is padding up to the
//! requested size.
//!
//! ```text
//! "NQB1" | publisher id: u32 BE | sequence: u64 BE | sent at: u64 BE ns since the Unix epoch
//! ```

use std::time::{SystemTime, UNIX_EPOCH};

use bytes::BufMut;

/// The first bytes of a stamped payload.
const MAGIC: &[u8; 4] = b"NQB1";

/// The size of a stamp; a payload is never smaller.
pub(crate) const STAMP_LEN: usize = 24;

/// What a stamp says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Stamp {
    /// The publisher's index in its run.
    pub(crate) publisher: u32,
    /// The message's sequence number, from 0, per publisher.
    pub(crate) seq: u64,
    /// When it was sent: nanoseconds since the Unix epoch.
    pub(crate) sent_ns: u64,
}

impl Stamp {
    /// Writes the stamp and `size - STAMP_LEN` padding bytes.
    pub(crate) fn write(&self, size: usize, buf: &mut impl BufMut) {
        buf.put_slice(MAGIC);
        buf.put_u32(self.publisher);
        buf.put_u64(self.seq);
        buf.put_u64(self.sent_ns);
        buf.put_bytes(b'.', size.saturating_sub(STAMP_LEN));
    }

    /// Reads the stamp at the start of `payload`; `None` if it is not a benchmark payload.
    pub(crate) fn read(payload: &[u8]) -> Option<Self> {
        let rest = payload.strip_prefix(MAGIC)?;
        let publisher = u32::from_be_bytes(rest.get(..4)?.try_into().ok()?);
        let seq = u64::from_be_bytes(rest.get(4..12)?.try_into().ok()?);
        let sent_ns = u64::from_be_bytes(rest.get(12..20)?.try_into().ok()?);
        Some(Self {
            publisher,
            seq,
            sent_ns,
        })
    }
}

/// Nanoseconds since the Unix epoch (0 if the clock is before it).
pub(crate) fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stamp_reads_back_and_pads_to_the_size() {
        let stamp = Stamp {
            publisher: 7,
            seq: 1 << 40,
            sent_ns: now_ns(),
        };
        let mut buf = Vec::new();
        stamp.write(100, &mut buf);
        assert_eq!(buf.len(), 100);
        assert_eq!(Stamp::read(&buf), Some(stamp));
        let mut small = Vec::new();
        stamp.write(3, &mut small);
        assert_eq!(small.len(), STAMP_LEN);
        assert_eq!(Stamp::read(&small), Some(stamp));
    }

    #[test]
    fn other_payloads_are_not_stamps() {
        assert_eq!(Stamp::read(b"hello"), None);
        assert_eq!(Stamp::read(b"NQB1\x00\x00"), None);
        assert_eq!(Stamp::read(b""), None);
    }
}
