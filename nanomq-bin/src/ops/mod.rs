//! Operating the broker: what it tells about itself. Every figure comes from broker-core's
//! counters (`Broker::metrics`, `Broker::bridge_metrics`) or from `/proc/self`; nothing here
//! keeps counts of its own.
//!
//! - [`sys`]: the `$SYS/broker/...` statistics, published every `[sys] interval`.
//! - [`events`]: NanoMQ's client connected/disconnected messages (`[sys] client_events`).
//! - [`prometheus`]: the Prometheus text exposition of the same counters.
//! - [`process`]: the process's memory, CPU time and file descriptors.

pub(crate) mod events;
pub(crate) mod process;
pub(crate) mod prometheus;
pub(crate) mod sys;
