//! `[http_server]`: off unless enabled, credentials required beyond loopback, each key checked.

use super::{assert_refused, parse, with_tcp};
use crate::config::Secret;

#[test]
fn the_api_is_off_unless_enabled_and_takes_its_credentials() {
    assert!(parse(&with_tcp("")).unwrap().http_server.is_none());
    let config = parse(&with_tcp(
        "[http_server]\nenabled = true\nbind = \"0.0.0.0:8081\"\nusername = \"admin\"\n\
         password = \"pw\"\napi_keys = [\"0123456789abcdef\"]\n",
    ))
    .unwrap();
    let http = config.http_server.unwrap();
    assert_eq!(http.bind, "0.0.0.0:8081".parse().unwrap());
    let (user, secret) = http.basic.unwrap();
    assert_eq!(user, "admin");
    assert!(secret.matches(b"pw") && !secret.matches(b"pw2"));
    assert_eq!(http.api_keys, ["0123456789abcdef"]);
    // A hash in the password file's formats ($7$ here, made by `nanomq passwd`).
    let hash =
        broker_core::hash_password(broker_core::HashAlgorithm::Sha512Pbkdf2, b"s3", None).unwrap();
    let config = parse(&with_tcp(&format!(
        "[http_server]\nenabled = true\nusername = \"a\"\npassword_hash = \"{hash}\"\n"
    )))
    .unwrap();
    let (_, secret) = config.http_server.unwrap().basic.unwrap();
    assert!(matches!(secret, Secret::Hash(_)));
    assert!(secret.matches(b"s3"));
    // Loopback without credentials: allowed (and warned about at start).
    let open = parse(&with_tcp(
        "[http_server]\nenabled = true\nbind = \"127.0.0.1:8081\"\n",
    ));
    assert!(open.unwrap().http_server.unwrap().basic.is_none());
}

#[test]
fn bad_api_settings_are_refused_by_key() {
    let api = |body: &str| with_tcp(&format!("[http_server]\nenabled = true\n{body}"));
    assert_refused(&api(""), "http_server", "needs credentials");
    assert_refused(
        &api("bind = \"nowhere\"\n"),
        "http_server.bind",
        "not an address",
    );
    assert_refused(
        &api("username = \"a\"\npassword = \"p\"\npassword_hash = \"$7$x\"\n"),
        "http_server.password_hash",
        "not both",
    );
    assert_refused(
        &api("username = \"a\"\n"),
        "http_server.password",
        "needs a password",
    );
    assert_refused(
        &api("password = \"p\"\n"),
        "http_server.username",
        "needs a username",
    );
    assert_refused(
        &api("username = \"a\"\npassword_hash = \"plain\"\n"),
        "http_server.password_hash",
        "",
    );
    assert_refused(
        &api("api_keys = [\"short\"]\n"),
        "http_server.api_keys[0]",
        "at least 16",
    );
    assert_refused(&api("port = 8081\n"), "http_server", "unknown field");
}
