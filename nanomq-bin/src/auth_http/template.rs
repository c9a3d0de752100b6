//! Templates: a string of text and placeholders, parsed once, rendered per check with the
//! client's values, each value encoded for where it stands.
//!
//! Placeholders are EMQX's `${username} ${clientid} ${password} ${peerhost} ${peerport}
//! ${cert_common_name} ${cert_subject}` and, for ACL requests, `${action}` (`publish` or
//! `subscribe`) and `${topic}`; in parameters and headers also NanoMQ's `%u %c %P %a %p %C
//! %d` and `%A` (1 subscribe, 2 publish) `%t` (`%%` is a `%`). The URL takes only the
//! `${...}` form: a `%` there is the start of an escape such as `%2F`.

use std::borrow::Cow;
use std::net::SocketAddr;

use broker_core::{Action, ConnParam};
use bytes::Bytes;

/// Which check a request is for: an ACL request knows the action and the topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Scope {
    /// At CONNECT.
    Authn,
    /// At PUBLISH and SUBSCRIBE.
    Acl,
}

/// What a placeholder stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(super) enum Var {
    Username,
    ClientId,
    Password,
    PeerHost,
    PeerPort,
    CertCommonName,
    CertSubject,
    /// `publish` or `subscribe`.
    Action,
    /// NanoMQ's `%A`: 1 subscribe, 2 publish.
    ActionNumber,
    Topic,
}

/// The `${name}` placeholders, for error messages.
const KNOWN: &str = "${username} ${clientid} ${password} ${peerhost} ${peerport} \
                     ${cert_common_name} ${cert_subject} ${action} ${topic}";

impl Var {
    fn from_name(name: &str) -> Option<Self> {
        Some(match name {
            "username" => Self::Username,
            "clientid" => Self::ClientId,
            "password" => Self::Password,
            "peerhost" => Self::PeerHost,
            "peerport" => Self::PeerPort,
            "cert_common_name" => Self::CertCommonName,
            "cert_subject" => Self::CertSubject,
            "action" => Self::Action,
            "topic" => Self::Topic,
            _ => return None,
        })
    }

    /// NanoMQ's one-letter form.
    fn from_letter(letter: char) -> Option<Self> {
        Some(match letter {
            'u' => Self::Username,
            'c' => Self::ClientId,
            'P' => Self::Password,
            'a' => Self::PeerHost,
            'p' => Self::PeerPort,
            'C' => Self::CertCommonName,
            'd' => Self::CertSubject,
            'A' => Self::ActionNumber,
            't' => Self::Topic,
            _ => return None,
        })
    }

    fn acl_only(self) -> bool {
        matches!(self, Self::Action | Self::ActionNumber | Self::Topic)
    }
}

/// A piece of a template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Piece {
    Text(String),
    Var(Var),
}

/// A string with placeholders.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Template {
    pub(super) pieces: Vec<Piece>,
}

/// How a value is written into its place.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Encoding {
    /// Values percent-encoded (everything but RFC 3986's unreserved characters), the text
    /// around them as written: the URL, whose text has its own escapes.
    Percent,
    /// Values and text percent-encoded: a parameter of a query or a form, where a `&` or a
    /// `%` written in the configuration is one.
    Form,
    /// As it is (JSON strings are escaped by the serializer; headers are checked).
    Raw,
}

impl Template {
    /// Compiles `text`; `letters` accepts NanoMQ's `%u`-style placeholders too.
    pub(super) fn parse(text: &str, scope: Scope, letters: bool) -> Result<Self, String> {
        let mut pieces = Vec::new();
        let mut literal = String::new();
        let push_var = |literal: &mut String, pieces: &mut Vec<Piece>, var: Var| {
            if var.acl_only() && scope == Scope::Authn {
                return Err(
                    "${action}, ${topic}, %A and %t are only known in [auth.http.acl]".to_owned(),
                );
            }
            if !literal.is_empty() {
                pieces.push(Piece::Text(std::mem::take(literal)));
            }
            pieces.push(Piece::Var(var));
            Ok(())
        };
        let mut rest = text;
        while let Some(c) = rest.chars().next() {
            if let Some(after) = rest.strip_prefix("${") {
                let Some((name, tail)) = after.split_once('}') else {
                    return Err(format!(
                        "unclosed placeholder in \"{text}\" (a ${{ without }})"
                    ));
                };
                let var = Var::from_name(name)
                    .ok_or_else(|| format!("unknown placeholder ${{{name}}} (known: {KNOWN})"))?;
                push_var(&mut literal, &mut pieces, var)?;
                rest = tail;
                continue;
            }
            if letters && c == '%' {
                let mut after = rest.chars();
                after.next();
                match after.next() {
                    Some('%') => {
                        literal.push('%');
                        rest = after.as_str();
                        continue;
                    }
                    Some(letter) => {
                        if let Some(var) = Var::from_letter(letter) {
                            push_var(&mut literal, &mut pieces, var)?;
                            rest = after.as_str();
                            continue;
                        }
                    }
                    None => {}
                }
            }
            literal.push(c);
            rest = rest.get(c.len_utf8()..).unwrap_or_default();
        }
        if !literal.is_empty() {
            pieces.push(Piece::Text(literal));
        }
        Ok(Self { pieces })
    }

    pub(super) fn vars(&self) -> impl Iterator<Item = Var> + '_ {
        self.pieces.iter().filter_map(|p| match p {
            Piece::Var(var) => Some(*var),
            Piece::Text(_) => None,
        })
    }

    /// The literal text, if the template has no placeholder.
    pub(super) fn literal(&self) -> Option<String> {
        let mut out = String::new();
        for piece in &self.pieces {
            match piece {
                Piece::Text(text) => out.push_str(text),
                Piece::Var(_) => return None,
            }
        }
        Some(out)
    }

    pub(super) fn render(&self, values: &Values<'_>, encoding: Encoding, out: &mut Vec<u8>) {
        for piece in &self.pieces {
            match piece {
                Piece::Text(text) => match encoding {
                    Encoding::Form => percent_encode(text.as_bytes(), out),
                    Encoding::Percent | Encoding::Raw => out.extend_from_slice(text.as_bytes()),
                },
                Piece::Var(var) => {
                    let value = values.get(*var);
                    match encoding {
                        Encoding::Percent | Encoding::Form => percent_encode(&value, out),
                        Encoding::Raw => out.extend_from_slice(&value),
                    }
                }
            }
        }
    }
}

/// Appends `bytes` percent-encoded: only RFC 3986's unreserved characters stay as they are,
/// so the result is safe in a path segment, a query and an `x-www-form-urlencoded` body.
pub(super) fn percent_encode(bytes: &[u8], out: &mut Vec<u8>) {
    let hex = |nibble: u8| match nibble {
        0..=9 => b'0' + nibble,
        _ => b'A' + (nibble - 10),
    };
    for &b in bytes {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b);
        } else {
            out.extend_from_slice(&[b'%', hex(b >> 4), hex(b & 0x0f)]);
        }
    }
}

/// What the client said and what the transport knows, copied from its `ConnParam` (an ACL
/// check that waits owns its copy). The password never appears in `Debug`.
#[derive(Clone)]
pub(crate) struct ClientValues {
    pub(crate) username: Option<String>,
    pub(crate) client_id: String,
    pub(crate) password: Option<Bytes>,
    pub(crate) peer: Option<SocketAddr>,
    pub(crate) cert_common_name: Option<String>,
    pub(crate) cert_subject: Option<String>,
}

impl std::fmt::Debug for ClientValues {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientValues")
            .field("username", &self.username)
            .field("client_id", &self.client_id)
            .field("password", &self.password.as_ref().map(|_| "<hidden>"))
            .field("peer", &self.peer)
            .finish_non_exhaustive()
    }
}

impl ClientValues {
    /// The values of `client`.
    pub(crate) fn of(client: &ConnParam) -> Self {
        Self {
            username: client.username.as_ref().map(|u| u.to_string()),
            client_id: client.client_id.to_string(),
            password: client.password().cloned(),
            peer: client.transport.peer,
            cert_common_name: client.transport.tls_common_name().map(str::to_owned),
            cert_subject: client.transport.tls_subject().map(str::to_owned),
        }
    }
}

/// The values one check renders its request with.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Values<'a> {
    pub(crate) client: &'a ClientValues,
    /// The action and topic of an ACL check.
    pub(crate) acl: Option<(Action, &'a str)>,
}

impl<'a> Values<'a> {
    /// The value of `var`; empty when the client has none (no username, no certificate).
    pub(super) fn get(&self, var: Var) -> Cow<'a, [u8]> {
        let text = |s: &'a Option<String>| Cow::Borrowed(s.as_deref().unwrap_or("").as_bytes());
        let client = self.client;
        match var {
            Var::Username => text(&client.username),
            Var::ClientId => Cow::Borrowed(client.client_id.as_bytes()),
            Var::Password => Cow::Borrowed(client.password.as_deref().unwrap_or(b"")),
            Var::PeerHost => client.peer.map_or(Cow::Borrowed(b""), |p| {
                Cow::Owned(p.ip().to_string().into_bytes())
            }),
            Var::PeerPort => client.peer.map_or(Cow::Borrowed(b""), |p| {
                Cow::Owned(p.port().to_string().into_bytes())
            }),
            Var::CertCommonName => text(&client.cert_common_name),
            Var::CertSubject => text(&client.cert_subject),
            Var::Action => Cow::Borrowed(match self.acl {
                Some((Action::Subscribe, _)) => b"subscribe",
                Some((Action::Receive, _)) => b"receive",
                Some((Action::Publish, _)) | None => b"publish",
            }),
            Var::ActionNumber => Cow::Borrowed(match self.acl {
                Some((Action::Subscribe, _)) => b"1",
                Some((Action::Receive, _)) => b"3",
                Some((Action::Publish, _)) | None => b"2",
            }),
            Var::Topic => Cow::Borrowed(self.acl.map_or("", |(_, t)| t).as_bytes()),
        }
    }
}
