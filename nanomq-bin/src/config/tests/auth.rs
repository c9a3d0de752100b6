//! `[auth]` and `[[auth.acl]]`: their keys, and the problems each mistake is named by.

#[cfg(feature = "tcp")]
use std::path::PathBuf;

#[cfg(feature = "tcp")]
use super::*;

#[cfg(feature = "tcp")]
#[test]
fn the_auth_table_is_read_and_its_mistakes_named() {
    let config = parse(
        r#"
        [listeners.tcp]
        bind = "127.0.0.1:0"
        allow_anonymous = true

        [auth]
        allow_anonymous = false
        password_file = "etc/passwd"
        deny_action = "disconnect"
        "#,
    )
    .unwrap();
    assert_eq!(config.listeners[0].allow_anonymous, Some(true));
    assert_eq!(
        config.auth,
        AuthConfig {
            allow_anonymous: false,
            password_file: Some(PathBuf::from("etc/passwd")),
            deny_action: broker_core::DenyAction::Disconnect,
            chain: vec![AuthnSource::PasswordFile],
            ..AuthConfig::default()
        }
    );
    // no_match follows Mosquitto with an acl_file, NanoMQ without.
    let with_file = parse("[listeners.tcp]\nbind = \"127.0.0.1:0\"\n[auth]\nacl_file = \"acl\"\n");
    assert!(!with_file.unwrap().auth.no_match_allows);
    let said = "[listeners.tcp]\nbind = \"127.0.0.1:0\"\n[auth]\nacl_file = \"acl\"\nno_match = \"allow\"\n";
    assert!(parse(said).unwrap().auth.no_match_allows);

    let tcp = "[listeners.tcp]\nbind = \"127.0.0.1:0\"\n";
    assert_refused(
        &format!("{tcp}[auth]\nchain = [\"password_file\"]\n"),
        "auth.chain",
        "names \"password_file\", which is not configured",
    );
    assert_refused(
        &format!(
            "{tcp}[auth]\npassword_file = \"p\"\nchain = [\"password_file\", \"password_file\"]\n"
        ),
        "auth.chain",
        "twice",
    );
    assert_refused(
        &format!("{tcp}[auth]\npassword_file = \"\"\n"),
        "auth.password_file",
        "must not be empty",
    );
    assert_refused(
        &format!("{tcp}[auth]\nno_match = \"maybe\"\n"),
        "auth.no_match",
        "unknown variant",
    );
    assert_refused(
        &format!("{tcp}[auth]\nallow_anonymous = \"no\"\n"),
        "auth.allow_anonymous",
        "invalid type",
    );
}

#[cfg(feature = "tcp")]
#[test]
fn acl_rules_are_read_in_order_and_a_bad_one_is_named() {
    let config = parse(&with_tcp(
        r#"
        [[auth.acl]]
        permit = "allow"
        username = "${username}"
        topics = ["devices/${username}/#", "eq #"]

        [[auth.acl]]
        permit = "deny"
        action = "subscribe"
        or = [{ clientid = "c1" }, { ipaddr = "10.0.0.0/8" }]
        "#,
    ))
    .unwrap();
    assert_eq!(config.auth.acl.len(), 2);
    let tcp = "[listeners.tcp]\nbind = \"127.0.0.1:0\"\n";
    assert_refused(
        &format!("{tcp}[[auth.acl]]\npermit = \"maybe\"\nall = true\n"),
        "auth.acl[0].permit",
        "neither allow nor deny",
    );
    assert_refused(
        &format!(
            "{tcp}[[auth.acl]]\npermit = \"allow\"\nall = true\n\
             [[auth.acl]]\npermit = \"allow\"\nall = true\nusername = \"u\"\n"
        ),
        "auth.acl[1]",
        "exactly one of username, clientid, ipaddr",
    );
    assert_refused(
        &format!("{tcp}[[auth.acl]]\npermit = \"allow\"\nipaddr = \"10.0.0.0/99\"\n"),
        "auth.acl[0].ipaddr",
        "not an address or CIDR network",
    );
    assert_refused(
        &format!("{tcp}[[auth.acl]]\npermit = \"allow\"\nall = true\ntopics = [\"a/#/b\"]\n"),
        "auth.acl[0].topics[0]",
        "not a valid filter",
    );
    assert_refused(
        &format!("{tcp}[[auth.acl]]\npermit = \"allow\"\nall = true\nwho = \"x\"\n"),
        "auth.acl",
        "unknown field",
    );
}
