//! [`ClientIdentity`]: who a client is, from the certificate it presented and the server
//! verified: the subject (in RFC 2253 form, as Mosquitto's `use_subject_as_username` gives
//! it, so ACL files written for Mosquitto match) and the common name.

use std::fmt::Write;

use x509_parser::objects::{oid_registry, oid2abbrev};
use x509_parser::x509::{AttributeTypeAndValue, X509Name};

/// Who a client is, from its verified certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientIdentity {
    /// The certificate's subject in RFC 2253 form, most specific part first, as
    /// `CN=device-7,O=Example` (OpenSSL's `XN_FLAG_RFC2253`, which Mosquitto uses).
    pub subject: String,
    /// The subject's common name, if it has one.
    pub common_name: Option<String>,
}

impl ClientIdentity {
    /// The identity in a DER-encoded certificate; `None` if it cannot be parsed (rustls has
    /// verified it by then, so that does not happen in practice).
    pub fn from_der(der: &[u8]) -> Option<Self> {
        let (_, certificate) = x509_parser::parse_x509_certificate(der).ok()?;
        let subject = certificate.subject();
        let common_name = subject
            .iter_common_name()
            .next()
            .and_then(|attribute| attribute.as_str().ok())
            .map(str::to_owned);
        Some(Self {
            subject: rfc2253(subject),
            common_name,
        })
    }
}

/// `name` as RFC 2253 writes it: the relative names last to first, `,` between them, `+`
/// between the parts of a multi-valued one.
fn rfc2253(name: &X509Name<'_>) -> String {
    let mut out = String::new();
    let rdns: Vec<_> = name.iter().collect();
    for (i, rdn) in rdns.iter().rev().enumerate() {
        if i > 0 {
            out.push(',');
        }
        for (j, attribute) in rdn.iter().enumerate() {
            if j > 0 {
                out.push('+');
            }
            push_attribute(&mut out, attribute);
        }
    }
    out
}

/// `TYPE=value`: a known type by its short name, others by dotted OID; a value that is not
/// a string as `#` and the hex of its encoding (RFC 2253 2.4).
fn push_attribute(out: &mut String, attribute: &AttributeTypeAndValue<'_>) {
    let oid = attribute.attr_type();
    match oid2abbrev(oid, oid_registry()) {
        // OpenSSL's name for it, which Mosquitto users' ACL files contain.
        Ok("Email") => out.push_str("emailAddress"),
        Ok(short) => out.push_str(short),
        Err(_) => out.push_str(&oid.to_id_string()),
    }
    out.push('=');
    match attribute.as_str() {
        Ok(value) => push_escaped(out, value),
        Err(_) => {
            out.push('#');
            for byte in attribute.as_slice() {
                let _ = write!(out, "{byte:02X}");
            }
        }
    }
}

/// `value` with RFC 2253's escapes: `,+"\<>;` anywhere, `#` or a space first, a space last.
fn push_escaped(out: &mut String, value: &str) {
    let last = value.chars().count().saturating_sub(1);
    for (i, c) in value.chars().enumerate() {
        let special = matches!(c, ',' | '+' | '"' | '\\' | '<' | '>' | ';')
            || (i == 0 && (c == '#' || c == ' '))
            || (i == last && c == ' ');
        if special {
            out.push('\\');
        }
        out.push(c);
    }
}

#[cfg(test)]
mod tests {
    use super::push_escaped;

    fn escaped(value: &str) -> String {
        let mut out = String::new();
        push_escaped(&mut out, value);
        out
    }

    #[test]
    fn special_characters_are_escaped_as_rfc_2253_says() {
        assert_eq!(escaped("plain"), "plain");
        assert_eq!(escaped("a,b+c"), "a\\,b\\+c");
        assert_eq!(escaped("#lead"), "\\#lead");
        assert_eq!(escaped(" both "), "\\ both\\ ");
        assert_eq!(escaped("mid#dle"), "mid#dle");
        assert_eq!(escaped("q\"<>;\\"), "q\\\"\\<\\>\\;\\\\");
    }
}
