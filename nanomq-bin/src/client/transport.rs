//! The transports (TCP, TLS with `tls`, WebSocket with `ws`) are mqtt-client's; this module
//! keeps the names `nanomq bench` uses.

pub(crate) use mqtt_client::Connector;
