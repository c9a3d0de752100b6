//! The broker's fuzz target, as a library: [`run`] reads a fuzz input as a script for four
//! in-memory clients of one in-process broker (current-thread runtime, paused time), runs it,
//! lets the runtime come to rest, and checks the broker's state
//! ([`crate::Broker::check_invariants`]) and what the clients received. The cargo-fuzz target
//! (`broker-core/fuzz`) and the regression test (`tests/fuzz_regressions.rs`) both call it,
//! so a crash input found by one is replayed by the other.
//!
//! # Input format
//!
//! Byte 0 configures the broker (bit 0 `queue_qos0`; 1 drop newest; 2 server keep alive 5 s;
//! 3 an AUTH hook for method `fuzz` and access control (users, ACL rules, an authorizer whose
//! answers wait: `access.rs`); 4 topic aliases off; 5 no default session expiry for
//! 3.1.1; 6 queues of 2 messages, not 8; 7 one message in flight, not 4). Then steps, up to
//! [`MAX_STEPS`]: a step byte (bits 0-1 the client, bits 2-7 modulo 16 the [`Kind`]),
//! then the step's own bytes (see `input.rs`). The input's end reads as zeros.
//!
//! A step that sends a packet on a client with no connection first opens one. Packets are
//! built for the version of the client's last CONNECT; bytes are written and the broker
//! runs when the script waits (an explicit [`Kind::Settle`] or [`Kind::Advance`], a full
//! pipe, or the end).

mod access;
mod client;
mod input;
mod script;
mod writer;

use std::time::Duration;

use bytes::Bytes;
use mqtt_codec::{Packet, ReasonCode};

use self::input::AUTH_METHOD;
use self::script::Script;
use crate::auth::{AuthContext, AuthExchange, AuthStep, EnhancedAuth};
use crate::{DropPolicy, MetricsSnapshot, MqttConfig};

pub use self::writer::{ConnectOptions, ScriptWriter};

/// How many steps a script runs at most.
pub const MAX_STEPS: usize = 256;

/// How many clients a script drives.
pub const CLIENTS: usize = 4;

/// How long (virtual time) the runtime may run on after everything closed, for timers that
/// end connections (a goodbye's write timeout).
const WIND_DOWN: Duration = Duration::from_secs(2);

/// What a step does; its number is the step byte's bits 2-7 modulo 16.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Kind {
    /// A CONNECT (opens a connection if the client has none, else sends it on the open one).
    Connect = 0,
    /// A SUBSCRIBE.
    Subscribe = 1,
    /// An UNSUBSCRIBE.
    Unsubscribe = 2,
    /// A PUBLISH.
    Publish = 3,
    /// One PUBACK/PUBREC/PUBREL/PUBCOMP, for an identifier the client owes or any.
    Ack = 4,
    /// Every acknowledgement the client owes, as a well-behaved client sends them.
    AckAll = 5,
    /// A PINGREQ.
    Ping = 6,
    /// A DISCONNECT.
    Disconnect = 7,
    /// An AUTH.
    Auth = 8,
    /// Raw bytes: a length byte, then that many bytes of the input.
    Raw = 9,
    /// A built packet with one byte changed: position, XOR value, then the packet's step.
    Corrupt = 10,
    /// Drops the connection (both directions).
    Close = 11,
    /// Closes the client's sending side, keeps reading.
    HalfClose = 12,
    /// Lets virtual time pass (a byte picks how long).
    Advance = 13,
    /// Drops the connection and connects again with the last CONNECT (clean start from
    /// the step's byte).
    Reconnect = 14,
    /// Runs the broker until every task waits.
    Settle = 15,
}

impl Kind {
    const ALL: [Self; 16] = [
        Self::Connect,
        Self::Subscribe,
        Self::Unsubscribe,
        Self::Publish,
        Self::Ack,
        Self::AckAll,
        Self::Ping,
        Self::Disconnect,
        Self::Auth,
        Self::Raw,
        Self::Corrupt,
        Self::Close,
        Self::HalfClose,
        Self::Advance,
        Self::Reconnect,
        Self::Settle,
    ];

    /// The step byte for this kind on `client` (0-3), for writing scripts.
    pub const fn on(self, client: u8) -> u8 {
        (self as u8) << 2 | (client & 3)
    }

    fn of(step: u8) -> Self {
        Self::ALL
            .get(usize::from(step >> 2) % Self::ALL.len())
            .copied()
            .unwrap_or(Self::Settle)
    }
}

/// What a script did, when the broker came through it.
#[derive(Debug)]
pub struct Outcome {
    /// One line per step run.
    pub trace: Vec<String>,
    /// For each client, the packets it received (on all its connections).
    pub received: Vec<Vec<Packet>>,
    /// The broker's counters at the end, after every client closed.
    pub metrics: MetricsSnapshot,
}

/// What went wrong, and the steps that led there.
#[derive(Debug)]
pub struct Failure {
    /// The violations found.
    pub report: String,
    /// One line per step run.
    pub trace: Vec<String>,
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "{}", self.report)?;
        writeln!(f, "after the steps:")?;
        for line in &self.trace {
            writeln!(f, "  {line}")?;
        }
        Ok(())
    }
}

/// Runs the script `data` against a fresh broker and checks it (see the module
/// documentation); `Err` says what the broker got wrong.
pub fn run(data: &[u8]) -> Result<Outcome, Failure> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .map_err(|e| Failure {
            report: format!("cannot build the runtime: {e}"),
            trace: Vec::new(),
        })?;
    runtime.block_on(Script::new(data).run())
}

/// The broker configuration byte 0 selects: small limits, so that scripts reach them.
fn config(flags: u8) -> MqttConfig {
    let bit = |n: u32| flags >> n & 1 == 1;
    MqttConfig {
        max_packet_size: 4096,
        max_mqueue_len: if bit(6) { 2 } else { 8 },
        max_mqueue_bytes: 1024,
        mqueue_drop: if bit(1) {
            DropPolicy::DropNewest
        } else {
            DropPolicy::DropOldest
        },
        queue_qos0: bit(0),
        max_inflight: if bit(7) { 1 } else { 4 },
        retry_interval: Duration::from_secs(10),
        keepalive_multiplier: 1.5,
        session_expiry_default: (!bit(5)).then_some(Duration::from_secs(60)),
        max_topic_alias: if bit(4) { 0 } else { 4 },
        server_keep_alive: bit(2).then_some(5),
        connect_timeout: Duration::from_secs(10),
        shared_strategy: crate::SharedStrategy::RoundRobin,
        // Every bit has its use: the parity of them all picks the policy.
        mqueue_full: if flags.count_ones() % 2 == 1 {
            crate::QueueFull::Drop
        } else {
            crate::QueueFull::Backpressure
        },
        mqueue_full_wait: Duration::from_secs(5),
        limits: crate::Limits {
            max_topic_levels: 8,
            max_topic_length: 256,
            max_filters_per_packet: 8,
            max_subscriptions: 16,
            // As many as a script has clients: takeovers and reconnects reach it.
            max_connections: 4,
        },
    }
}

/// The AUTH hook of the fuzzing broker: each step's first data byte decides (0 or none:
/// success; 1: continue; 2: refuse), and more than three steps is refused.
struct FuzzAuth;

impl EnhancedAuth for FuzzAuth {
    fn start(&self, ctx: &AuthContext<'_>) -> Option<Box<dyn AuthExchange>> {
        (ctx.method == AUTH_METHOD).then(|| Box::new(FuzzExchange { step: 0 }) as _)
    }
}

/// One exchange of [`FuzzAuth`]: the number of the step it is at.
struct FuzzExchange {
    step: u32,
}

impl AuthExchange for FuzzExchange {
    fn step(&mut self, data: Option<&Bytes>) -> AuthStep {
        let step = self.step;
        self.step += 1;
        match data.and_then(|d| d.first()).map(|b| b % 3) {
            _ if step > 3 => AuthStep::Fail(ReasonCode::NotAuthorized),
            Some(1) => AuthStep::Continue(Bytes::from_static(b"again")),
            Some(2) => AuthStep::Fail(ReasonCode::BadUserNameOrPassword),
            _ => AuthStep::Success {
                data: None,
                identity: None,
            },
        }
    }
}

/// Runs the runtime until every task waits: with time paused, a sleep ends only once
/// nothing else can run (the clock then jumps to it).
async fn settle() {
    tokio::time::sleep(Duration::from_millis(1)).await;
}
