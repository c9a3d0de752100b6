//! Re-authentication (MQTT 5 4.12.1): an AUTH from the client on a live connection, with
//! the method it connected with, run through the broker's enhanced-authentication hook; a
//! success as another identity is a failure.

use mqtt_codec::{Auth, Packet, PacketType, ReasonCode};

use super::{Driver, Exit};
use crate::auth::{AuthContext, AuthStep};
use crate::pipe::Pipe;

impl<P: Pipe> Driver<'_, P> {
    pub(super) fn on_auth(&mut self, auth: Auth) -> Option<Exit> {
        let method = self.param().authentication_method().cloned();
        let (Some(method), Some(hook)) = (method, self.broker.enhanced_auth()) else {
            return Some(self.protocol_error(ReasonCode::ProtocolError));
        };
        // Re-authentication uses the method the connection authenticated with (MQTT 5
        // 4.12.1-1).
        if auth.properties.authentication_method.as_ref() != Some(&method) {
            return Some(self.protocol_error(ReasonCode::ProtocolError));
        }
        let mut exchange = match (auth.reason_code, self.rare.take_reauth()) {
            (ReasonCode::ReAuthenticate, None) => {
                let param = self.param();
                let ctx = AuthContext {
                    method: &method,
                    client_id: &param.client_id,
                    username: param.username.as_deref(),
                    peer: param.transport.peer,
                    reauthentication: true,
                };
                match hook.start(&ctx) {
                    Some(exchange) => exchange,
                    None => return Some(Exit::Closed(ReasonCode::BadAuthenticationMethod)),
                }
            }
            (ReasonCode::ContinueAuthentication, Some(exchange)) => exchange,
            _ => return Some(self.protocol_error(ReasonCode::ProtocolError)),
        };
        let mut reply = Auth::default();
        reply.properties.authentication_method = Some(method);
        match exchange.step(auth.properties.authentication_data.as_ref()) {
            AuthStep::Success { data, identity } => {
                // The connection's user name (which authorization uses) stays what the
                // CONNECT proved: a re-authentication as someone else is a failure.
                if identity.is_some() && identity != self.param().username {
                    tracing::debug!(client = %self.param().client_id, "re-authentication as another identity refused");
                    return Some(Exit::Closed(ReasonCode::NotAuthorized));
                }
                reply.properties.authentication_data = data;
            }
            AuthStep::Continue(data) => {
                self.rare.set_reauth(exchange);
                reply.reason_code = ReasonCode::ContinueAuthentication;
                reply.properties.authentication_data = Some(data);
            }
            AuthStep::Fail(code) => {
                tracing::debug!(client = %self.param().client_id, %code, "re-authentication failed");
                // A refusal fit for CONNACK (Bad user name or password) has no DISCONNECT
                // form (MQTT 5 3.14.2.1): the client is then told Not authorized.
                let code = if code.is_valid_for(PacketType::Disconnect) {
                    code
                } else {
                    ReasonCode::NotAuthorized
                };
                return Some(Exit::Closed(code));
            }
        }
        self.send(Packet::Auth(reply));
        None
    }
}
