//! The HTTP upgrade to WebSocket, server side: the request's path must be the configured one
//! (anything else is answered 404 Not Found), and one of the MQTT subprotocols the client
//! offers is chosen and echoed (browsers drop a connection whose answer names none).

use tokio::io::{AsyncRead, AsyncWrite};
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http::{HeaderMap, HeaderValue, StatusCode, header};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

use crate::WsStream;

/// The MQTT subprotocols accepted: `mqtt` (MQTT 3.1.1 and 5.0) and the older names some
/// clients still send.
pub const SUBPROTOCOLS: [&str; 3] = ["mqtt", "mqttv3.1", "mqttv3.1.1"];

/// The path MQTT is served on unless configured otherwise.
pub const DEFAULT_PATH: &str = "/mqtt";

/// How a WebSocket listener is set up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WsSettings {
    /// The path of the upgrade request (`/mqtt`); the query string is ignored.
    pub path: String,
    /// The largest WebSocket message (and frame) accepted from a client, in bytes: a bigger
    /// one closes the connection. The broker's maximum packet size is a good value (a
    /// message may hold several packets, but clients send one at a time).
    pub max_message_size: usize,
}

impl Default for WsSettings {
    fn default() -> Self {
        Self {
            path: DEFAULT_PATH.to_owned(),
            max_message_size: 1024 * 1024,
        }
    }
}

/// The subprotocol to answer with: the first of the client's, in its order of preference,
/// that MQTT knows.
pub(crate) fn choose_subprotocol(headers: &HeaderMap) -> Option<&'static str> {
    headers
        .get_all(header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .map(str::trim)
        .find_map(|offered| SUBPROTOCOLS.into_iter().find(|known| *known == offered))
}

/// Runs the server side of the WebSocket upgrade over `stream`. It has no time limit of its
/// own: the caller bounds it (as [`crate::serve`] does).
pub async fn accept<S>(
    stream: S,
    settings: &WsSettings,
) -> Result<WsStream<S>, tokio_tungstenite::tungstenite::Error>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut chosen = None;
    // tungstenite's callback type returns the refusal (an HTTP response) by value.
    #[allow(clippy::result_large_err)]
    let callback = |request: &Request, mut response: Response| {
        if request.uri().path() != settings.path {
            let mut refusal = ErrorResponse::new(Some(format!(
                "no MQTT over WebSocket at {}\n",
                request.uri().path()
            )));
            *refusal.status_mut() = StatusCode::NOT_FOUND;
            return Err(refusal);
        }
        chosen = choose_subprotocol(request.headers());
        if let Some(protocol) = chosen {
            response.headers_mut().insert(
                header::SEC_WEBSOCKET_PROTOCOL,
                HeaderValue::from_static(protocol),
            );
        }
        Ok(response)
    };
    // Messages may be as large as a packet; buffers start small (a broker holds many
    // connections) and grow as needed.
    let config = WebSocketConfig::default()
        .read_buffer_size(4096)
        .write_buffer_size(0)
        .max_message_size(Some(settings.max_message_size))
        .max_frame_size(Some(settings.max_message_size));
    let ws =
        tokio_tungstenite::accept_hdr_async_with_config(stream, callback, Some(config)).await?;
    Ok(WsStream::new(ws, chosen))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn offered(values: &[&str]) -> Option<&'static str> {
        let mut headers = HeaderMap::new();
        for value in values {
            headers.append(
                header::SEC_WEBSOCKET_PROTOCOL,
                HeaderValue::from_str(value).unwrap_or(HeaderValue::from_static("")),
            );
        }
        choose_subprotocol(&headers)
    }

    #[test]
    fn the_first_known_subprotocol_offered_is_chosen() {
        assert_eq!(offered(&[]), None);
        assert_eq!(offered(&["mqtt"]), Some("mqtt"));
        assert_eq!(offered(&["mqttv3.1"]), Some("mqttv3.1"));
        assert_eq!(offered(&["mqttv3.1.1"]), Some("mqttv3.1.1"));
        assert_eq!(offered(&["wamp, mqttv3.1 , mqtt"]), Some("mqttv3.1"));
        assert_eq!(offered(&["wamp", "mqtt"]), Some("mqtt"));
        assert_eq!(offered(&["wamp, soap"]), None);
        // Subprotocol names are case-sensitive tokens.
        assert_eq!(offered(&["MQTT"]), None);
    }
}
