//! The stalled subscriber of the slow-subscriber scenario: a raw MQTT 3.1.1 client that
//! connects, subscribes with QoS 1 and then never reads, so that its queue at the broker
//! fills up (after the kernel's socket buffers). It stays connected until dropped.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use anyhow::{Context, Result, bail};

use super::raw::{self, packet, push_string};

/// A connected subscriber to `filter` that reads nothing more after its SUBACK.
pub(crate) fn connect(addr: SocketAddr, filter: &str) -> Result<TcpStream> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))
        .with_context(|| format!("stalled subscriber: cannot connect to {addr}"))?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    let connect = raw::connect_body("bench-stalled-subscriber")?;
    let mut subscribe = vec![0x00, 0x01];
    push_string(&mut subscribe, filter)?;
    subscribe.push(0x01);
    stream.write_all(&packet(0x10, &connect)?)?;
    stream.write_all(&packet(raw::SUBSCRIBE, &subscribe)?)?;
    let mut reply = [0u8; 9];
    stream
        .read_exact(&mut reply)
        .context("stalled subscriber: no CONNACK and SUBACK")?;
    if reply[..4] != [0x20, 0x02, 0x00, 0x00] || reply[4..] != [0x90, 0x03, 0x00, 0x01, 0x01] {
        bail!("stalled subscriber: refused ({reply:02x?})");
    }
    Ok(stream)
}
