//! The bridge's side in the local broker: an MQTT 5 client of the broker's own, over an
//! in-process stream, with a persistent session (`$bridge/<name>`, never expiring) whose
//! subscriptions are the bridge's forwards. Its queue is the bridge's queue: in the store
//! when persistence is on, so it survives a kill -9; bounded by `max_send_queue_len`.
//!
//! Acknowledgements are manual: the broker's message stays unacknowledged (and so in the
//! session, to be sent again to the next connection) until the upstream has acknowledged
//! its copy. The local subscriptions are no-local, so what the bridge publishes here (the
//! messages of its remote subscriptions) never goes back up.

use std::num::{NonZeroU16, NonZeroU32};
use std::sync::Arc;

use anyhow::{Context, Result, anyhow};
use broker_core::{Broker, INTERNAL_CLIENT_ID_PREFIX, TransportInfo};
use mqtt_client::{Client, ConnectOptions, Message, SessionState};
use mqtt_codec::{
    ClientId, ProtocolVersion, QoS, RetainHandling, SubscribeProperties, Subscription,
    SubscriptionOptions, UnsubscribeProperties,
};

use crate::config::BridgeConfig;

/// How many bytes the in-process stream buffers each way.
const PIPE_BUFFER: usize = 256 * 1024;

/// The client identifier of the bridge's local session.
pub(super) fn client_id(bridge: &str) -> String {
    format!("{INTERNAL_CLIENT_ID_PREFIX}{bridge}")
}

/// Connects the bridge's local session and subscribes its forwards.
pub(super) async fn connect(broker: &Arc<Broker>, config: &BridgeConfig) -> Result<Client> {
    let (ours, theirs) = tokio::io::duplex(PIPE_BUFFER);
    tokio::spawn(
        Arc::clone(broker)
            .serve_connection(theirs, TransportInfo::internal(config.max_send_queue_len)),
    );
    let mut options = ConnectOptions::new(client_id(&config.name))
        .version(ProtocolVersion::V5)
        .clean_start(false)
        .keep_alive(0)
        .session_expiry(u32::MAX);
    options.receive_maximum = NonZeroU16::new(config.max_inflight);
    options.maximum_packet_size = NonZeroU32::new(broker.config().max_packet_size);
    options.manual_acks = true;
    let (read, write) = tokio::io::split(ours);
    let (client, _params) = Client::start_over(
        Box::new(read),
        Box::new(write),
        &options,
        SessionState::new(),
        None,
    )
    .await
    .map_err(|(e, _)| anyhow!("bridges.{}: the local session: {e}", config.name))?;
    // Forwards an earlier configuration had, and this one has not: their messages would
    // queue in the session for nothing.
    let id = ClientId::new(client_id(&config.name)).map_err(|e| {
        anyhow!(
            "bridges.{}: the local session's client id: {e}",
            config.name
        )
    })?;
    let stale: Vec<_> = broker
        .session_filters(&id)
        .into_iter()
        .filter(|filter| config.forwards.iter().all(|f| f.filter != *filter))
        .collect();
    if !stale.is_empty() {
        tracing::info!(bridge = %config.name, filters = ?stale.iter().map(ToString::to_string).collect::<Vec<_>>(), "dropping forwards the configuration no longer has");
        client
            .unsubscribe(stale, UnsubscribeProperties::default())
            .await
            .with_context(|| format!("bridges.{}: dropping old forwards", config.name))?;
    }
    if !config.forwards.is_empty() {
        let subscriptions = config
            .forwards
            .iter()
            .map(|forward| Subscription {
                filter: forward.filter.clone(),
                options: SubscriptionOptions {
                    qos: forward.qos,
                    no_local: true,
                    retain_as_published: true,
                    retain_handling: RetainHandling::SendIfNew,
                },
            })
            .collect();
        let codes = client
            .subscribe(subscriptions, SubscribeProperties::default())
            .await
            .with_context(|| format!("bridges.{}: subscribing the forwards", config.name))?;
        for (forward, code) in config.forwards.iter().zip(codes) {
            if code.is_error() {
                return Err(anyhow!(
                    "bridges.{}: the local broker refused the forward of {}: {code}",
                    config.name,
                    forward.filter
                ));
            }
        }
    }
    Ok(client)
}

/// The bridge's connection state, as Mosquitto publishes it: `1` or `0`, retained, on
/// `$SYS/broker/connection/<client id>/state`.
pub(super) fn state_message(client_id: &str, up: bool) -> Option<Message> {
    let topic = format!("$SYS/broker/connection/{client_id}/state");
    let payload = if up { "1" } else { "0" };
    Message::new(&topic, payload, QoS::AtLeastOnce)
        .ok()
        .map(Message::retained)
}
