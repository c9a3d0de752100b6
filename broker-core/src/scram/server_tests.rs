//! Tests of the SCRAM server exchange: RFC 7677's test vector replayed byte for byte, round
//! trips with a client written here from RFC 5802, and every way the exchange refuses.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use super::*;
use crate::auth::{AuthContext, EnhancedAuth};
use crate::scram::{ScramAuth, escape_saslname};
use mqtt_codec::{ClientId, ReasonCode};

/// RFC 7677 section 3.
const RFC_USER: &str = "user";
const RFC_PASSWORD: &str = "pencil";
const RFC_SALT: &str = "W22ZaJ0SNY7soEsUEjb6gQ==";
const RFC_SERVER_NONCE: &str = "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0";
const RFC_CLIENT_FIRST: &str = "n,,n=user,r=rOprNGfwEbeRWgbNEkqO";
const RFC_SERVER_FIRST: &str =
    "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096";
const RFC_CLIENT_FINAL: &str = "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=";
const RFC_SERVER_FINAL: &str = "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=";

const SECRET: [u8; 32] = [42; 32];

fn rfc_store() -> Arc<CredentialStore> {
    let salt = B64.decode(RFC_SALT).unwrap();
    let c =
        ScramCredentials::derive_with_salt(Mechanism::Sha256, RFC_PASSWORD.as_bytes(), &salt, 4096)
            .unwrap();
    let mut store = CredentialStore::new();
    store.insert(RFC_USER, c).unwrap();
    Arc::new(store)
}

fn server(m: Mechanism, store: &Arc<CredentialStore>, nonce: &str) -> ScramServer {
    ScramServer::new(
        m,
        Arc::clone(store),
        Arc::new(SECRET),
        Some(nonce.to_owned()),
    )
}

fn data(s: &str) -> Option<Bytes> {
    Some(Bytes::copy_from_slice(s.as_bytes()))
}

fn continued(step: AuthStep) -> String {
    match step {
        AuthStep::Continue(d) => String::from_utf8(d.to_vec()).unwrap(),
        other => panic!("expected Continue, got {other:?}"),
    }
}

/// A SCRAM client (RFC 5802 section 3), independent of the server's code but for the
/// primitives: given server-first, the client-final and the server-final it must expect.
fn client_final(
    m: Mechanism,
    password: &str,
    gs2_header: &str,
    client_first_bare: &str,
    server_first: &str,
) -> (String, String) {
    let mut nonce = "";
    let mut salt = Vec::new();
    let mut iterations = 0;
    for attribute in server_first.split(',') {
        let (key, value) = attribute.split_once('=').unwrap();
        match key {
            "r" => nonce = value,
            "s" => salt = B64.decode(value).unwrap(),
            "i" => iterations = value.parse().unwrap(),
            _ => {}
        }
    }
    let salted = m.salted_password(password.as_bytes(), &salt, iterations);
    let client_key = m.hmac(&salted, &[b"Client Key"]);
    let stored_key = m.hash(&client_key);
    let without_proof = format!("c={},r={nonce}", B64.encode(gs2_header));
    let auth_message = format!("{client_first_bare},{server_first},{without_proof}");
    let signature = m.hmac(&stored_key, &[auth_message.as_bytes()]);
    let proof: Vec<u8> = client_key
        .iter()
        .zip(&signature)
        .map(|(k, s)| k ^ s)
        .collect();
    let server_key = m.hmac(&salted, &[b"Server Key"]);
    let server_signature = m.hmac(&server_key, &[auth_message.as_bytes()]);
    (
        format!("{without_proof},p={}", B64.encode(proof)),
        format!("v={}", B64.encode(server_signature)),
    )
}

/// Runs a whole exchange as `user` with `password`; the last step's verdict.
fn login(
    m: Mechanism,
    store: &Arc<CredentialStore>,
    user: &str,
    password: &str,
) -> (String, AuthStep, String) {
    let bare = format!("n={},r=clientnonce123", escape_saslname(user));
    let mut server = server(m, store, "servernonce456");
    let server_first = continued(server.step(data(&format!("n,,{bare}")).as_ref()));
    let (last, expected) = client_final(m, password, "n,,", &bare, &server_first);
    let verdict = server.step(data(&last).as_ref());
    (server_first, verdict, expected)
}

#[test]
fn rfc_7677_test_vector() {
    let store = rfc_store();
    let mut server = server(Mechanism::Sha256, &store, RFC_SERVER_NONCE);
    assert_eq!(
        server.step(data(RFC_CLIENT_FIRST).as_ref()),
        AuthStep::Continue(Bytes::from_static(RFC_SERVER_FIRST.as_bytes()))
    );
    assert_eq!(
        server.step(data(RFC_CLIENT_FINAL).as_ref()),
        AuthStep::Success {
            data: Some(Bytes::from_static(RFC_SERVER_FINAL.as_bytes())),
            identity: Some("user".into()),
        }
    );
    // Nothing after the end.
    assert!(matches!(
        server.step(data(RFC_CLIENT_FINAL).as_ref()),
        AuthStep::Fail(_)
    ));
}

#[test]
fn the_test_client_agrees_with_rfc_7677() {
    let bare = RFC_CLIENT_FIRST.strip_prefix("n,,").unwrap();
    let (last, server_final) = client_final(
        Mechanism::Sha256,
        RFC_PASSWORD,
        "n,,",
        bare,
        RFC_SERVER_FIRST,
    );
    assert_eq!(last, RFC_CLIENT_FINAL);
    assert_eq!(server_final, RFC_SERVER_FINAL);
}

#[test]
fn rfc_7677_with_a_changed_proof_is_a_bad_password() {
    let store = rfc_store();
    let (head, proof) = RFC_CLIENT_FINAL.rsplit_once("p=").unwrap();
    let mut proof = B64.decode(proof).unwrap();
    for flip in [0, 31] {
        proof[flip] ^= 1;
        let mut server = server(Mechanism::Sha256, &store, RFC_SERVER_NONCE);
        continued(server.step(data(RFC_CLIENT_FIRST).as_ref()));
        let last = format!("{head}p={}", B64.encode(&proof));
        assert_eq!(
            server.step(data(&last).as_ref()),
            AuthStep::Fail(ReasonCode::BadUserNameOrPassword)
        );
        proof[flip] ^= 1;
    }
    // A proof one byte short, or one too long.
    for len in [31, 33] {
        let mut server = server(Mechanism::Sha256, &store, RFC_SERVER_NONCE);
        continued(server.step(data(RFC_CLIENT_FIRST).as_ref()));
        let mut wrong = proof.clone();
        wrong.resize(len, 0);
        let last = format!("{head}p={}", B64.encode(&wrong));
        assert_eq!(
            server.step(data(&last).as_ref()),
            AuthStep::Fail(ReasonCode::BadUserNameOrPassword)
        );
    }
}

#[test]
fn sha_512_round_trip() {
    let mut store = CredentialStore::new();
    let c = ScramCredentials::derive(Mechanism::Sha512, "s3cret", 4096).unwrap();
    store.insert("alice,=x", c).unwrap();
    let store = Arc::new(store);
    let (server_first, verdict, expected) = login(Mechanism::Sha512, &store, "alice,=x", "s3cret");
    assert!(server_first.contains(",i=4096"), "{server_first}");
    assert_eq!(
        verdict,
        AuthStep::Success {
            data: Some(Bytes::from(expected)),
            identity: Some("alice,=x".into()),
        }
    );
    let (_, verdict, _) = login(Mechanism::Sha512, &store, "alice,=x", "s3cre");
    assert_eq!(verdict, AuthStep::Fail(ReasonCode::BadUserNameOrPassword));
    // The SHA-256 mechanism does not find SHA-512 credentials.
    let (_, verdict, _) = login(Mechanism::Sha256, &store, "alice,=x", "s3cret");
    assert_eq!(verdict, AuthStep::Fail(ReasonCode::BadUserNameOrPassword));
}

#[test]
fn an_unknown_user_looks_like_a_wrong_password() {
    let mut store = CredentialStore::new();
    for (user, iterations) in [("alice", 6000), ("bob", 6000), ("carol", 4096)] {
        let c = ScramCredentials::derive(Mechanism::Sha256, "right", iterations).unwrap();
        store.insert(user, c).unwrap();
    }
    let store = Arc::new(store);
    let (real_first, real, _) = login(Mechanism::Sha256, &store, "alice", "wrong");
    let (fake_first, fake, _) = login(Mechanism::Sha256, &store, "mallory", "wrong");
    assert_eq!(real, AuthStep::Fail(ReasonCode::BadUserNameOrPassword));
    assert_eq!(fake, real);
    let shape = |first: &str| {
        let parts: Vec<&str> = first.split(',').collect();
        let salt = B64.decode(parts[1].strip_prefix("s=").unwrap()).unwrap();
        (parts[0].len(), salt.len(), parts[2].to_owned())
    };
    // The same nonce length, salt length and iterations (the majority's).
    assert_eq!(shape(&fake_first), shape(&real_first));
    assert_eq!(shape(&fake_first).2, "i=6000");
    // The same made-up salt every time, another for another name.
    let (again, _, _) = login(Mechanism::Sha256, &store, "mallory", "other");
    assert_eq!(again, fake_first);
    let (eve, _, _) = login(Mechanism::Sha256, &store, "eve", "wrong");
    assert_ne!(shape(&eve), (0, 0, String::new()));
    assert_ne!(eve.split(',').nth(1), fake_first.split(',').nth(1));
    // Even the right password of someone else does not open an unknown name.
    let (_, verdict, _) = login(Mechanism::Sha256, &store, "mallory", "right");
    assert_eq!(verdict, AuthStep::Fail(ReasonCode::BadUserNameOrPassword));
    // The right one opens the real one.
    let (_, verdict, _) = login(Mechanism::Sha256, &store, "carol", "right");
    assert!(matches!(verdict, AuthStep::Success { .. }), "{verdict:?}");
}

#[test]
fn an_unknown_users_salt_depends_on_the_secret() {
    let store = rfc_store();
    let first = |secret: [u8; 32]| {
        let mut s = ScramServer::new(
            Mechanism::Sha256,
            Arc::clone(&store),
            Arc::new(secret),
            Some("n".into()),
        );
        continued(s.step(data("n,,n=nobody,r=c").as_ref()))
    };
    assert_eq!(first([1; 32]), first([1; 32]));
    assert_ne!(first([1; 32]), first([2; 32]));
}

#[test]
fn malformed_messages_are_not_authorized() {
    let store = rfc_store();
    for bad in [
        None,
        Some(Bytes::from_static(b"")),
        Some(Bytes::from_static(b"\xff\xfe")),
        data("n,,n=user"),
        data("p=tls-server-end-point,,n=user,r=abc"),
        data("n,a=admin,n=user,r=abc"),
        data("n,,m=x,n=user,r=abc"),
        data("n,,n=us=er,r=abc"),
    ] {
        let mut server = server(Mechanism::Sha256, &store, RFC_SERVER_NONCE);
        assert_eq!(
            server.step(bad.as_ref()),
            AuthStep::Fail(ReasonCode::NotAuthorized),
            "{bad:?}"
        );
    }
    let good_nonce = "rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0";
    let proof = RFC_CLIENT_FINAL.rsplit_once(",p=").unwrap().1;
    for bad in [
        None,
        data("c=biws"),
        data(&format!("c=biws,r={good_nonce}")),
        // Another nonce: ours truncated, or a different client's.
        data(&format!("c=biws,r=rOprNGfwEbeRWgbNEkqO,p={proof}")),
        data(&format!("c=biws,r={good_nonce}x,p={proof}")),
        // c= that is not the gs2 header sent ("y,,", "n,a=user,").
        data(&format!("c=eSws,r={good_nonce},p={proof}")),
        data(&format!("c=bixhPXVzZXIs,r={good_nonce},p={proof}")),
        data(&format!("c=biws,r={good_nonce},m=1,p={proof}")),
    ] {
        let mut server = server(Mechanism::Sha256, &store, RFC_SERVER_NONCE);
        continued(server.step(data(RFC_CLIENT_FIRST).as_ref()));
        assert_eq!(
            server.step(bad.as_ref()),
            AuthStep::Fail(ReasonCode::NotAuthorized),
            "{bad:?}"
        );
    }
}

#[test]
fn the_y_flag_and_a_matching_authzid_are_accepted() {
    let store = rfc_store();
    for gs2 in ["y,,", "n,a=user,"] {
        let bare = "n=user,r=abc";
        let mut server = server(Mechanism::Sha256, &store, "def");
        let first = continued(server.step(data(&format!("{gs2}{bare}")).as_ref()));
        let (last, expected) = client_final(Mechanism::Sha256, RFC_PASSWORD, gs2, bare, &first);
        assert_eq!(
            server.step(data(&last).as_ref()),
            AuthStep::Success {
                data: Some(Bytes::from(expected)),
                identity: Some("user".into())
            },
            "{gs2}"
        );
    }
}

#[test]
fn no_randomness_is_an_unspecified_error() {
    let store = rfc_store();
    let mut server = ScramServer::new(Mechanism::Sha256, store, Arc::new(SECRET), None);
    assert_eq!(
        server.step(data(RFC_CLIENT_FIRST).as_ref()),
        AuthStep::Fail(ReasonCode::UnspecifiedError)
    );
}

fn ctx<'a>(method: &'a str, id: &'a ClientId) -> AuthContext<'a> {
    AuthContext {
        method,
        client_id: id,
        username: None,
        peer: None,
        reauthentication: false,
    }
}

#[test]
fn the_hook_serves_only_its_mechanisms_with_fresh_nonces() {
    let id = ClientId::new("c").unwrap();
    let auth = ScramAuth::new(
        (*rfc_store()).clone(),
        &[Mechanism::Sha256, Mechanism::Sha256],
        SECRET,
    );
    assert_eq!(auth.mechanisms(), [Mechanism::Sha256]);
    for method in [
        "SCRAM-SHA-512",
        "SCRAM-SHA-1",
        "SCRAM-SHA-256-PLUS",
        "PLAIN",
        "",
    ] {
        assert!(auth.start(&ctx(method, &id)).is_none(), "{method}");
    }
    let mut nonces = Vec::new();
    for _ in 0..2 {
        let mut exchange = auth.start(&ctx("SCRAM-SHA-256", &id)).unwrap();
        let first = continued(exchange.step(data(RFC_CLIENT_FIRST).as_ref()));
        let nonce = first.split(',').next().unwrap();
        let server_part = nonce.strip_prefix("r=rOprNGfwEbeRWgbNEkqO").unwrap();
        assert_eq!(server_part.len(), 24);
        let bare = RFC_CLIENT_FIRST.strip_prefix("n,,").unwrap();
        let (last, expected) = client_final(Mechanism::Sha256, RFC_PASSWORD, "n,,", bare, &first);
        assert_eq!(
            exchange.step(data(&last).as_ref()),
            AuthStep::Success {
                data: Some(Bytes::from(expected)),
                identity: Some("user".into())
            }
        );
        nonces.push(server_part.to_owned());
    }
    assert_ne!(nonces[0], nonces[1]);
}

#[test]
fn replaced_credentials_apply_to_new_exchanges() {
    let id = ClientId::new("c").unwrap();
    let auth = ScramAuth::new((*rfc_store()).clone(), &Mechanism::ALL, SECRET);
    let mut old = auth.start(&ctx("SCRAM-SHA-256", &id)).unwrap();
    let old_first = continued(old.step(data(RFC_CLIENT_FIRST).as_ref()));
    let mut store = CredentialStore::new();
    let c = ScramCredentials::derive(Mechanism::Sha256, "new", 4096).unwrap();
    store.insert(RFC_USER, c).unwrap();
    auth.replace(store);
    let bare = RFC_CLIENT_FIRST.strip_prefix("n,,").unwrap();
    // The exchange under way finishes with the credentials it started with.
    let (last, _) = client_final(Mechanism::Sha256, RFC_PASSWORD, "n,,", bare, &old_first);
    assert!(matches!(
        old.step(data(&last).as_ref()),
        AuthStep::Success { .. }
    ));
    let mut new = auth.start(&ctx("SCRAM-SHA-256", &id)).unwrap();
    let new_first = continued(new.step(data(RFC_CLIENT_FIRST).as_ref()));
    let (last, _) = client_final(Mechanism::Sha256, RFC_PASSWORD, "n,,", bare, &new_first);
    assert_eq!(
        new.step(data(&last).as_ref()),
        AuthStep::Fail(ReasonCode::BadUserNameOrPassword)
    );
}

#[test]
fn secrets_from_material_are_stable_and_distinct() {
    assert_eq!(ScramAuth::secret_from(b"a"), ScramAuth::secret_from(b"a"));
    assert_ne!(ScramAuth::secret_from(b"a"), ScramAuth::secret_from(b"b"));
}
