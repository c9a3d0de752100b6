//! A minimal MQTT 3.1.1 client over a blocking `TcpStream`, for the clients that run beside
//! `nanomq bench` in a scenario (the stalled subscriber, the retained preload, the SUBSCRIBE
//! flood): roles `nanomq bench` does not have. Only what those clients send is encoded, and
//! what comes back is read as whole packets (type and body), never interpreted beyond that.
//! The xtask keeps no MQTT library, so that it builds in seconds.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use anyhow::{Context, Result, bail};

/// The largest body this client sends or accepts (a SUBSCRIBE of a few hundred filters is
/// a few kilobytes).
const MAX_BODY: usize = 1 << 20;

/// First byte of a PUBLISH (flags added by the caller), SUBSCRIBE, SUBACK, UNSUBSCRIBE,
/// UNSUBACK.
pub(crate) const PUBLISH: u8 = 0x30;
/// See [`PUBLISH`].
pub(crate) const SUBSCRIBE: u8 = 0x82;
/// See [`PUBLISH`].
pub(crate) const SUBACK: u8 = 0x90;
/// See [`PUBLISH`].
pub(crate) const UNSUBSCRIBE: u8 = 0xA2;
/// See [`PUBLISH`].
pub(crate) const UNSUBACK: u8 = 0xB0;

/// Appends an MQTT string (two-byte length, then the bytes).
pub(crate) fn push_string(buf: &mut Vec<u8>, s: &str) -> Result<()> {
    let Ok(len) = u16::try_from(s.len()) else {
        bail!("string of {} bytes is too long for MQTT", s.len());
    };
    buf.extend_from_slice(&len.to_be_bytes());
    buf.extend_from_slice(s.as_bytes());
    Ok(())
}

/// A packet: `first` (type and flags), the remaining length, `body`.
pub(crate) fn packet(first: u8, body: &[u8]) -> Result<Vec<u8>> {
    if body.len() > MAX_BODY {
        bail!("packet body of {} bytes is too long", body.len());
    }
    let mut out = Vec::with_capacity(body.len() + 5);
    out.push(first);
    let mut len = body.len();
    loop {
        let byte = (len % 128) as u8;
        len /= 128;
        if len == 0 {
            out.push(byte);
            break;
        }
        out.push(byte | 0x80);
    }
    out.extend_from_slice(body);
    Ok(out)
}

/// The keep alive the side clients announce, seconds: a broker closes a connection silent
/// for 1.5 times this (15 minutes), longer than any scenario. Not 0 (no keep alive): rumqttd
/// refuses a CONNECT with keep alive 0 (it closes the connection without a CONNACK).
pub(crate) const KEEP_ALIVE_S: u16 = 600;

/// The body of a CONNECT: MQTT 3.1.1, clean session, keep alive [`KEEP_ALIVE_S`], so the
/// broker never closes the connection for silence during a scenario.
pub(crate) fn connect_body(client_id: &str) -> Result<Vec<u8>> {
    let mut body = vec![0x00, 0x04, b'M', b'Q', b'T', b'T', 0x04, 0x02];
    body.extend_from_slice(&KEEP_ALIVE_S.to_be_bytes());
    push_string(&mut body, client_id)?;
    Ok(body)
}

/// A connected client.
#[derive(Debug)]
pub(crate) struct Client {
    stream: TcpStream,
    /// Who it is, for error messages.
    name: &'static str,
}

impl Client {
    /// Connects as `client_id` and waits for a successful CONNACK; reads time out after
    /// `read_timeout`.
    pub(crate) fn connect(
        addr: SocketAddr,
        name: &'static str,
        client_id: &str,
        read_timeout: Duration,
    ) -> Result<Self> {
        let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))
            .with_context(|| format!("{name}: cannot connect to {addr}"))?;
        stream.set_read_timeout(Some(read_timeout))?;
        stream.set_nodelay(true)?;
        let mut client = Self { stream, name };
        client.write(&packet(0x10, &connect_body(client_id)?)?)?;
        let (first, body) = client.read_packet()?;
        if first != 0x20 || body != [0x00, 0x00] {
            bail!("{name}: refused (CONNACK {first:02x} {body:02x?})");
        }
        Ok(client)
    }

    /// Writes bytes (one or more whole packets).
    pub(crate) fn write(&mut self, bytes: &[u8]) -> Result<()> {
        self.stream
            .write_all(bytes)
            .with_context(|| format!("{}: cannot write", self.name))
    }

    /// Reads one packet: its first byte and its body.
    pub(crate) fn read_packet(&mut self) -> Result<(u8, Vec<u8>)> {
        read_from(&mut self.stream, self.name)
    }

    /// Sends DISCONNECT.
    pub(crate) fn disconnect(mut self) -> Result<()> {
        self.write(&[0xE0, 0x00])
    }
}

/// Reads one packet from `reader` (`name` says whose, in errors): its first byte and its body.
pub(crate) fn read_from(reader: &mut impl Read, name: &str) -> Result<(u8, Vec<u8>)> {
    let mut byte = [0u8; 1];
    reader
        .read_exact(&mut byte)
        .with_context(|| format!("{name}: no packet from the broker"))?;
    let first = byte[0];
    let mut len = 0usize;
    for shift in [0, 7, 14, 21] {
        reader
            .read_exact(&mut byte)
            .with_context(|| format!("{name}: truncated packet"))?;
        len |= usize::from(byte[0] & 0x7f) << shift;
        if byte[0] & 0x80 == 0 {
            break;
        }
        if shift == 21 {
            bail!("{name}: malformed remaining length");
        }
    }
    if len > MAX_BODY {
        bail!("{name}: packet of {len} bytes from the broker");
    }
    let mut body = vec![0u8; len];
    reader
        .read_exact(&mut body)
        .with_context(|| format!("{name}: truncated packet"))?;
    Ok((first, body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_remaining_length_takes_as_many_bytes_as_it_needs() {
        let short = packet(0xE0, &[]).unwrap_or_default();
        assert_eq!(short, [0xE0, 0x00]);
        let body = vec![7u8; 321];
        let long = packet(SUBSCRIBE, &body).unwrap_or_default();
        // 321 = 65 + 2 * 128.
        assert_eq!(long.get(..3), Some(&[SUBSCRIBE, 0xC1, 0x02][..]));
        assert_eq!(long.len(), 3 + 321);
        assert!(packet(0x30, &vec![0u8; MAX_BODY + 1]).is_err());
    }

    #[test]
    fn connect_is_3_1_1_with_a_clean_session_and_a_keep_alive_of_600_s() {
        let body = connect_body("id").unwrap_or_default();
        assert_eq!(
            body,
            [
                0, 4, b'M', b'Q', b'T', b'T', 4, 0x02, 0x02, 0x58, 0, 2, b'i', b'd'
            ]
        );
    }
}
