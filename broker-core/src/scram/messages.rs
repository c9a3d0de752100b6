//! The client's SCRAM messages (RFC 5802 section 7), parsed strictly, and saslname
//! escaping. Everything here reads bytes a peer sent: no indexing, every error a
//! [`ScramError`].

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;

use super::ScramError;

/// `client-first-message`, split into the parts the exchange needs.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct ClientFirst<'a> {
    /// `gs2-header`, with its two commas: what `c=` must carry back.
    pub(super) gs2_header: &'a str,
    /// The user name, unescaped.
    pub(super) username: String,
    /// `c-nonce`.
    pub(super) nonce: &'a str,
    /// `client-first-message-bare`, the start of AuthMessage.
    pub(super) bare: &'a str,
}

/// `client-final-message`.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct ClientFinal<'a> {
    /// `c=`, decoded: the gs2 header (and channel binding data, which we never accept).
    pub(super) channel_binding: Vec<u8>,
    /// `r=`: the client's nonce and then ours.
    pub(super) nonce: &'a str,
    /// `p=`, decoded.
    pub(super) proof: Vec<u8>,
    /// `client-final-message-without-proof`, the end of AuthMessage.
    pub(super) without_proof: &'a str,
}

/// Reads `client-first-message`:
/// `gs2-cbind-flag "," [authzid] "," [reserved-mext ","] username "," nonce ["," extensions]`.
pub(super) fn parse_client_first(message: &str) -> Result<ClientFirst<'_>, ScramError> {
    let (flag, rest) = message
        .split_once(',')
        .ok_or(ScramError::Malformed("client-first has no gs2 header"))?;
    match flag {
        // "y": the client could bind but thinks we cannot, which is true (RFC 5802 section 6:
        // only a server that supports channel binding must fail it).
        "n" | "y" => {}
        _ if flag.starts_with("p=") => return Err(ScramError::ChannelBindingNotSupported),
        _ => return Err(ScramError::Malformed("unknown gs2 channel binding flag")),
    }
    let (authzid, bare) = rest
        .split_once(',')
        .ok_or(ScramError::Malformed("client-first has no gs2 header"))?;
    let gs2_len = flag.len() + authzid.len() + 2;
    let gs2_header = message
        .get(..gs2_len)
        .ok_or(ScramError::Malformed("client-first has no gs2 header"))?;
    let authzid = match authzid {
        "" => None,
        _ => {
            Some(unescape_saslname(authzid.strip_prefix("a=").ok_or(
                ScramError::Malformed("gs2 authzid is not a=saslname"),
            )?)?)
        }
    };

    let mut attributes = bare.split(',');
    let first = attributes.next().unwrap_or_default();
    if first.starts_with("m=") {
        return Err(ScramError::ExtensionNotSupported);
    }
    let username = unescape_saslname(
        first
            .strip_prefix("n=")
            .ok_or(ScramError::Malformed("client-first has no n= user name"))?,
    )?;
    let nonce = attributes
        .next()
        .and_then(|a| a.strip_prefix("r="))
        .ok_or(ScramError::Malformed("client-first has no r= nonce"))?;
    check_nonce(nonce)?;
    check_extensions(attributes)?;
    // Acting for another identity (authzid) is not something we can authorize.
    if authzid.is_some_and(|a| a != username) {
        return Err(ScramError::AuthzidNotSupported);
    }
    Ok(ClientFirst {
        gs2_header,
        username,
        nonce,
        bare,
    })
}

/// Reads `client-final-message`:
/// `channel-binding "," nonce ["," extensions] "," proof`.
pub(super) fn parse_client_final(message: &str) -> Result<ClientFinal<'_>, ScramError> {
    let (without_proof, proof) = message.rsplit_once(',').ok_or(ScramError::Malformed(
        "client-final is not c=...,r=...,p=...",
    ))?;
    let proof = proof.strip_prefix("p=").ok_or(ScramError::Malformed(
        "client-final does not end in p= proof",
    ))?;
    let proof = B64
        .decode(proof)
        .map_err(|_| ScramError::Malformed("p= is not base64"))?;
    let mut attributes = without_proof.split(',');
    let channel_binding =
        attributes
            .next()
            .and_then(|a| a.strip_prefix("c="))
            .ok_or(ScramError::Malformed(
                "client-final has no c= channel binding",
            ))?;
    let channel_binding = B64
        .decode(channel_binding)
        .map_err(|_| ScramError::Malformed("c= is not base64"))?;
    let nonce = attributes
        .next()
        .and_then(|a| a.strip_prefix("r="))
        .ok_or(ScramError::Malformed("client-final has no r= nonce"))?;
    check_extensions(attributes)?;
    Ok(ClientFinal {
        channel_binding,
        nonce,
        proof,
        without_proof,
    })
}

/// `nonce`: printable ASCII but ','.
fn check_nonce(nonce: &str) -> Result<(), ScramError> {
    if !nonce.is_empty()
        && nonce
            .bytes()
            .all(|b| (0x21..=0x7e).contains(&b) && b != b',')
    {
        Ok(())
    } else {
        Err(ScramError::Malformed("the nonce is not printable ASCII"))
    }
}

/// Optional extensions (`attr-val` pairs): ignored when unknown, but `m=` (reserved) fails
/// authentication (RFC 5802 section 5.1).
fn check_extensions<'a>(mut attributes: impl Iterator<Item = &'a str>) -> Result<(), ScramError> {
    attributes.try_for_each(|a| {
        let mut chars = a.chars();
        match (chars.next(), chars.next()) {
            (Some('m'), Some('=')) => Err(ScramError::ExtensionNotSupported),
            (Some(c), Some('=')) if c.is_ascii_alphabetic() => Ok(()),
            _ => Err(ScramError::Malformed("an attribute is not a=value")),
        }
    })
}

/// Decodes a `saslname`: `=2C` is ',', `=3D` is '='; any other '=' is malformed, and so is an
/// empty name.
pub(super) fn unescape_saslname(name: &str) -> Result<String, ScramError> {
    if name.is_empty() {
        return Err(ScramError::Malformed("empty user name"));
    }
    let mut out = String::with_capacity(name.len());
    let mut rest = name;
    while let Some((before, after)) = rest.split_once('=') {
        out.push_str(before);
        rest = if let Some(after) = after.strip_prefix("2C") {
            out.push(',');
            after
        } else if let Some(after) = after.strip_prefix("3D") {
            out.push('=');
            after
        } else {
            return Err(ScramError::Malformed("bad '=' escape in the user name"));
        };
    }
    out.push_str(rest);
    Ok(out)
}

/// Encodes a user name as a `saslname` (',' as `=2C`, '=' as `=3D`), as a client does.
pub fn escape_saslname(name: &str) -> String {
    name.replace('=', "=3D").replace(',', "=2C")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;

    #[test]
    fn rfc_5802_client_first() {
        // RFC 5802 section 5's example (SCRAM-SHA-1; the syntax is the same).
        let first = parse_client_first("n,,n=user,r=fyko+d2lbbFgONRv9qkxdawL").unwrap();
        assert_eq!(
            first,
            ClientFirst {
                gs2_header: "n,,",
                username: "user".into(),
                nonce: "fyko+d2lbbFgONRv9qkxdawL",
                bare: "n=user,r=fyko+d2lbbFgONRv9qkxdawL",
            }
        );
    }

    #[test]
    fn rfc_5802_client_final() {
        let m =
            "c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts=";
        let f = parse_client_final(m).unwrap();
        assert_eq!(f.channel_binding, b"n,,");
        assert_eq!(f.nonce, "fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j");
        assert_eq!(f.proof.len(), 20);
        assert_eq!(
            f.without_proof,
            "c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j"
        );
    }

    #[test]
    fn gs2_headers() {
        let y = parse_client_first("y,,n=u,r=abc").unwrap();
        assert_eq!(y.gs2_header, "y,,");
        let same = parse_client_first("n,a=u,n=u,r=abc").unwrap();
        assert_eq!(same.gs2_header, "n,a=u,");
        assert_eq!(same.bare, "n=u,r=abc");
        assert_eq!(
            parse_client_first("p=tls-unique,,n=u,r=abc"),
            Err(ScramError::ChannelBindingNotSupported)
        );
        assert_eq!(
            parse_client_first("n,a=admin,n=u,r=abc"),
            Err(ScramError::AuthzidNotSupported)
        );
    }

    #[test]
    fn malformed_client_first_messages() {
        for bad in [
            "",
            "n",
            "n,",
            "x,,n=u,r=abc",
            "n,,",
            "n,,r=abc,n=u",
            "n,,n=,r=abc",
            "n,,n=u",
            "n,,n=u,r=",
            "n,,n=u,s=abc",
            "n,,n=u,r=ab,c",
            "n,,n=u,r=a b",
            "n,,n=u,r=\u{e9}",
            "n,,n=a=2Xb,r=abc",
            "n,,n=a=,r=abc",
            "n,b=u,n=u,r=abc",
            "n,,n=u,r=abc,noequals",
        ] {
            assert!(
                matches!(parse_client_first(bad), Err(ScramError::Malformed(_))),
                "{bad:?}: {:?}",
                parse_client_first(bad)
            );
        }
        for reserved in ["n,,m=ext,n=u,r=abc", "n,,n=u,r=abc,m=ext"] {
            assert_eq!(
                parse_client_first(reserved),
                Err(ScramError::ExtensionNotSupported)
            );
        }
        // Unknown extensions are ignored.
        assert!(parse_client_first("n,,n=u,r=abc,x=whatever").is_ok());
    }

    #[test]
    fn malformed_client_final_messages() {
        for bad in [
            "",
            "c=biws",
            "c=biws,r=abc",
            "c=biws,r=abc,p=***",
            "r=abc,c=biws,p=AAAA",
            "c=bi,r=abc,p=AAAA",
            "c=biws,p=AAAA",
            "c=biws,r=abc,p=AAAA,x=1",
            "c=biws,r=abc,junk,p=AAAA",
        ] {
            assert!(
                matches!(parse_client_final(bad), Err(ScramError::Malformed(_))),
                "{bad:?}: {:?}",
                parse_client_final(bad)
            );
        }
        assert_eq!(
            parse_client_final("c=biws,r=abc,m=x,p=AAAA"),
            Err(ScramError::ExtensionNotSupported)
        );
    }

    #[test]
    fn saslnames() {
        for name in ["plain", "a,b", "a=b", "=2C", ",=,=", "\u{fc}ser"] {
            let escaped = escape_saslname(name);
            assert!(!escaped.contains(','));
            assert_eq!(unescape_saslname(&escaped).unwrap(), name);
        }
        assert_eq!(escape_saslname("a,b=c"), "a=2Cb=3Dc");
        let first = parse_client_first("n,,n=a=2Cb=3Dc,r=abc").unwrap();
        assert_eq!(first.username, "a,b=c");
    }
}
