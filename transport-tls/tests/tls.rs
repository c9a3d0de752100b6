//! transport-tls against a rustls client over loopback TCP: every key type and both TLS
//! versions serve MQTT, client certificates are verified and their identity recorded, a
//! silent client delays no one, and bad files are named in the errors.
//!
//! Certificates are generated at run time (`support/pki.rs`); only RSA and SEC1 keys are
//! fixtures (`data/README.md` says why).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

#[path = "support/pki.rs"]
mod pki;

use std::fs;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use broker_core::{Broker, MqttConfig, TransportKind};
use pki::{Alg, Issued, Pki};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, RootCertStore, SupportedProtocolVersion};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use transport_tls::{ClientIdentity, TlsAcceptor, TlsConfigError, TlsFile, TlsSettings};

/// How long anything may take before the test fails instead of hanging.
const PATIENCE: Duration = Duration::from_secs(20);

/// A scratch directory for the test called `name`.
fn scratch(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join("transport-tls")
        .join(name);
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    dir
}

/// A fixture file in `tests/data`.
fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name)
}

/// A broker served over TLS with `settings` on a free loopback port; the listener stops when
/// the returned sender is dropped.
async fn serve(settings: &TlsSettings, config: MqttConfig) -> (SocketAddr, oneshot::Sender<()>) {
    let acceptor = TlsAcceptor::new(settings).unwrap();
    let listener = transport_tls::bind("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let address = listener.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let broker = Broker::new(config);
    tokio::spawn(transport_tls::serve(listener, acceptor, broker, async {
        let _ = stopped.await;
    }));
    (address, stop)
}

/// A rustls client configuration trusting `ca`, speaking `versions`, presenting `client` (a
/// certificate and key) if given.
fn client_config(
    ca: &Path,
    versions: &[&'static SupportedProtocolVersion],
    client: Option<&Issued>,
) -> Arc<ClientConfig> {
    let mut roots = RootCertStore::empty();
    for certificate in CertificateDer::pem_file_iter(ca).unwrap() {
        roots.add(certificate.unwrap()).unwrap();
    }
    let builder =
        ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_protocol_versions(versions)
            .unwrap()
            .with_root_certificates(roots);
    let config = match client {
        Some(issued) => builder
            .with_client_auth_cert(
                CertificateDer::pem_file_iter(&issued.cert)
                    .unwrap()
                    .map(Result::unwrap)
                    .collect(),
                PrivateKeyDer::from_pem_file(&issued.key).unwrap(),
            )
            .unwrap(),
        None => builder.with_no_client_auth(),
    };
    Arc::new(config)
}

/// Connects over TLS with `config`.
async fn tls_connect(
    address: SocketAddr,
    config: Arc<ClientConfig>,
) -> std::io::Result<tokio_rustls::client::TlsStream<TcpStream>> {
    let tcp = TcpStream::connect(address).await?;
    tokio_rustls::TlsConnector::from(config)
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
}

/// Sends an MQTT 3.1.1 CONNECT for `client_id`; true if a CONNACK accepting it comes back.
async fn mqtt_connects(
    stream: &mut (impl AsyncRead + AsyncWrite + Unpin),
    client_id: &str,
) -> bool {
    let id = client_id.as_bytes();
    let mut packet = vec![0x10, u8::try_from(12 + id.len()).unwrap()];
    packet.extend_from_slice(&[0, 4, b'M', b'Q', b'T', b'T', 4, 0x02, 0, 60]);
    packet.extend_from_slice(&u16::try_from(id.len()).unwrap().to_be_bytes());
    packet.extend_from_slice(id);
    if stream.write_all(&packet).await.is_err() || stream.flush().await.is_err() {
        return false;
    }
    let mut connack = [0u8; 4];
    match tokio::time::timeout(PATIENCE, stream.read_exact(&mut connack)).await {
        Ok(Ok(_)) => connack == [0x20, 2, 0, 0],
        Ok(Err(_)) => false,
        Err(_) => panic!("no answer to CONNECT within {PATIENCE:?}"),
    }
}

#[tokio::test]
async fn every_key_type_serves_mqtt_over_tls_1_2_and_1_3() {
    let dir = scratch("key_types");
    let pki = Pki::new(&dir, "ca");
    let rsa_pkcs8 = fs::read_to_string(fixture("rsa2048.pkcs8.key")).unwrap();
    let rsa =
        rcgen::KeyPair::from_pkcs8_pem_and_sign_algo(&rsa_pkcs8, &rcgen::PKCS_RSA_SHA256).unwrap();
    let p256 =
        rcgen::KeyPair::from_pem(&fs::read_to_string(fixture("p256.pkcs8.key")).unwrap()).unwrap();
    let servers = [
        ("ecdsa-p256", pki.server("ecdsa-p256", Alg::EcdsaP256)),
        ("ecdsa-p384", pki.server("ecdsa-p384", Alg::EcdsaP384)),
        ("ed25519", pki.server("ed25519", Alg::Ed25519)),
        (
            "rsa-pkcs8",
            pki.server_with_key("rsa-pkcs8", &rsa, &rsa_pkcs8),
        ),
        (
            "rsa-pkcs1",
            pki.server_with_key(
                "rsa-pkcs1",
                &rsa,
                &fs::read_to_string(fixture("rsa2048.pkcs1.key")).unwrap(),
            ),
        ),
        (
            "ecdsa-p256-sec1",
            pki.server_with_key(
                "ecdsa-sec1",
                &p256,
                &fs::read_to_string(fixture("p256.sec1.key")).unwrap(),
            ),
        ),
    ];
    for (name, server) in servers {
        let (address, _stop) = serve(
            &TlsSettings::new(&server.cert, &server.key),
            MqttConfig::default(),
        )
        .await;
        for version in [&rustls::version::TLS12, &rustls::version::TLS13] {
            let config = client_config(&pki.ca, &[version], None);
            let mut tls = tls_connect(address, config)
                .await
                .unwrap_or_else(|e| panic!("{name} {:?}: handshake failed: {e}", version.version));
            assert_eq!(
                tls.get_ref().1.protocol_version(),
                Some(version.version),
                "{name}"
            );
            assert!(
                mqtt_connects(&mut tls, &format!("{name}-{:?}", version.version)).await,
                "{name} {:?}: CONNECT refused",
                version.version
            );
        }
    }
}

/// Runs one handshake with the server-side [`TlsAcceptor`] on `settings` over loopback TCP
/// and returns what each side got.
async fn handshake(
    settings: &TlsSettings,
    ca: &Path,
    client: Option<&Issued>,
) -> (
    std::io::Result<transport_tls::TlsStream<TcpStream>>,
    std::io::Result<tokio_rustls::client::TlsStream<TcpStream>>,
) {
    let acceptor = TlsAcceptor::new(settings).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        acceptor.accept(tcp).await
    });
    let config = client_config(
        ca,
        &[&rustls::version::TLS13, &rustls::version::TLS12],
        client,
    );
    let mut client = tls_connect(address, config).await;
    // TLS 1.3 clients finish before the server has checked their certificate: a refusal
    // shows on the next read.
    if let Ok(stream) = &mut client {
        stream.write_all(b"x").await.ok();
        stream.flush().await.ok();
    }
    let server = tokio::time::timeout(PATIENCE, server)
        .await
        .unwrap()
        .unwrap();
    (server, client)
}

/// Settings that verify client certificates against `pki`'s CA.
fn verifying(pki: &Pki, server: &Issued, required: bool) -> TlsSettings {
    TlsSettings {
        cacertfile: Some(pki.ca.clone()),
        verify_peer: true,
        fail_if_no_peer_cert: required,
        ..TlsSettings::new(&server.cert, &server.key)
    }
}

#[tokio::test]
async fn a_verified_client_certificate_gives_the_identity() {
    let dir = scratch("identity");
    let pki = Pki::new(&dir, "ca");
    let server = pki.server("server", Alg::EcdsaP256);
    let client = pki.client("client", "device-7");

    let settings = TlsSettings {
        use_identity_as_username: true,
        ..verifying(&pki, &server, true)
    };
    let (accepted, _client) = handshake(&settings, &pki.ca, Some(&client)).await;
    let accepted = accepted.unwrap();
    let identity = accepted.client_identity().unwrap();
    assert_eq!(identity.common_name.as_deref(), Some("device-7"));
    // RFC 2253, as Mosquitto's use_subject_as_username: the last name in the certificate
    // (here the organisation, added after the common name) first.
    assert_eq!(identity.subject, "O=nanomq tests,CN=device-7");

    // The broker is told, with the username rule.
    let acceptor = TlsAcceptor::new(&settings).unwrap();
    let peer = Some("127.0.0.1:5".parse().unwrap());
    let info = acceptor.transport_info(TransportKind::Tls, peer, Some(identity.clone()));
    assert_eq!(info.kind, TransportKind::Tls);
    assert_eq!(info.peer, peer);
    assert_eq!(info.tls_subject(), Some(identity.subject.as_str()));
    assert_eq!(info.tls_common_name(), Some("device-7"));
    assert!(info.identity_as_username);
    assert!(!info.subject_as_username);
    let plain = TlsAcceptor::new(&verifying(&pki, &server, true)).unwrap();
    assert!(
        !plain
            .transport_info(TransportKind::Tls, peer, Some(identity.clone()))
            .identity_as_username
    );
    let by_subject = TlsAcceptor::new(&TlsSettings {
        use_subject_as_username: true,
        ..verifying(&pki, &server, true)
    })
    .unwrap()
    .transport_info(TransportKind::Tls, peer, Some(identity));
    assert!(by_subject.subject_as_username && !by_subject.identity_as_username);
}

#[tokio::test]
async fn without_fail_if_no_peer_cert_a_client_without_certificate_is_anonymous() {
    let dir = scratch("optional_certificate");
    let pki = Pki::new(&dir, "ca");
    let server = pki.server("server", Alg::EcdsaP256);
    let (accepted, client) = handshake(&verifying(&pki, &server, false), &pki.ca, None).await;
    assert!(client.is_ok());
    assert_eq!(accepted.unwrap().client_identity(), None);
}

#[tokio::test]
async fn fail_if_no_peer_cert_refuses_a_client_without_certificate() {
    let dir = scratch("required_certificate");
    let pki = Pki::new(&dir, "ca");
    let server = pki.server("server", Alg::EcdsaP256);
    let (accepted, _client) = handshake(&verifying(&pki, &server, true), &pki.ca, None).await;
    let Err(error) = accepted else {
        panic!("a client without certificate was accepted");
    };
    assert!(
        error.to_string().to_lowercase().contains("certificate"),
        "{error}"
    );
}

#[tokio::test]
async fn a_client_certificate_from_another_ca_is_refused() {
    let dir = scratch("foreign_certificate");
    let pki = Pki::new(&dir, "ca");
    let other = Pki::new(&dir, "other");
    let server = pki.server("server", Alg::EcdsaP256);
    let stranger = other.client("stranger", "device-7");
    for required in [true, false] {
        let (accepted, _client) = handshake(
            &verifying(&pki, &server, required),
            &pki.ca,
            Some(&stranger),
        )
        .await;
        assert!(accepted.is_err(), "accepted a certificate of another CA");
    }
}

#[tokio::test]
async fn mutual_tls_through_the_broker() {
    let dir = scratch("mutual");
    let pki = Pki::new(&dir, "ca");
    let server = pki.server("server", Alg::EcdsaP256);
    let client = pki.client("client", "device-9");
    let (address, _stop) = serve(&verifying(&pki, &server, true), MqttConfig::default()).await;

    let versions = [&rustls::version::TLS13, &rustls::version::TLS12];
    let mut good = tls_connect(address, client_config(&pki.ca, &versions, Some(&client)))
        .await
        .unwrap();
    assert!(mqtt_connects(&mut good, "with-certificate").await);

    for version in versions {
        // The handshake fails (TLS 1.2) or the connection closes at once (TLS 1.3).
        if let Ok(mut anonymous) =
            tls_connect(address, client_config(&pki.ca, &[version], None)).await
        {
            assert!(!mqtt_connects(&mut anonymous, "without-certificate").await);
        }
    }
}

#[tokio::test]
async fn a_silent_client_delays_no_other_handshake_and_is_dropped_after_the_timeout() {
    const TIMEOUT: Duration = Duration::from_secs(4);
    let dir = scratch("silent");
    let pki = Pki::new(&dir, "ca");
    let server = pki.server("server", Alg::EcdsaP256);
    let config = MqttConfig {
        connect_timeout: TIMEOUT,
        ..MqttConfig::default()
    };
    let (address, _stop) = serve(&TlsSettings::new(&server.cert, &server.key), config).await;

    // Clients that open TCP and say nothing, not even a ClientHello.
    let mut silent = Vec::new();
    for _ in 0..8 {
        silent.push(TcpStream::connect(address).await.unwrap());
    }
    // Meanwhile other clients connect, well within the silent ones' timeout.
    let versions = [&rustls::version::TLS13];
    let started = tokio::time::Instant::now();
    for i in 0..4 {
        let mut tls = tls_connect(address, client_config(&pki.ca, &versions, None))
            .await
            .unwrap();
        assert!(mqtt_connects(&mut tls, &format!("busy-{i}")).await);
    }
    // Had a handshake run on the accept loop, the first silent client would have held every
    // later one up for the whole timeout.
    assert!(
        started.elapsed() < TIMEOUT,
        "handshakes waited for the silent clients: {:?}",
        started.elapsed()
    );

    // The silent ones are closed once the handshake timeout passes.
    for mut stream in silent {
        let mut byte = [0u8; 1];
        let read = tokio::time::timeout(PATIENCE, stream.read(&mut byte))
            .await
            .expect("a silent client was never closed");
        assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
    }
}

#[test]
fn identity_of_a_certificate_without_common_name() {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(Vec::new()).unwrap();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(rcgen::DnType::OrganizationName, "nobody");
    let certificate = params.self_signed(&key).unwrap();
    assert_eq!(
        ClientIdentity::from_der(certificate.der()),
        Some(ClientIdentity {
            subject: "O=nobody".to_owned(),
            common_name: None,
        })
    );
    assert_eq!(ClientIdentity::from_der(b"not a certificate"), None);
}

/// The error `TlsAcceptor::new` gives for `settings`.
fn refused(settings: &TlsSettings) -> TlsConfigError {
    TlsAcceptor::new(settings).expect_err("bad settings accepted")
}

/// Asserts `error` is about `file` at `path` and its message says `words`.
#[track_caller]
fn assert_names(error: &TlsConfigError, file: TlsFile, path: &Path, words: &str) {
    let message = error.to_string();
    let expected = format!("{file} {}: ", path.display());
    assert!(
        message.starts_with(&expected) && message.contains(words),
        "expected \"{expected}...{words}...\", got {message:?}"
    );
}

#[test]
fn bad_files_are_named_with_their_problem() {
    let dir = scratch("bad_files");
    let pki = Pki::new(&dir, "ca");
    let server = pki.server("server", Alg::EcdsaP256);
    let other = pki.server("other", Alg::EcdsaP256);
    let missing = dir.join("missing.pem");
    let empty = dir.join("empty.pem");
    fs::write(&empty, "").unwrap();
    let garbage = dir.join("garbage.pem");
    fs::write(
        &garbage,
        "-----BEGIN CERTIFICATE-----\n!!!not base64!!!\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    let not_x509 = dir.join("not-x509.pem");
    fs::write(
        &not_x509,
        "-----BEGIN CERTIFICATE-----\naGVsbG8gd29ybGQ=\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    let not_a_key = dir.join("not-a-key.pem");
    fs::write(
        &not_a_key,
        "-----BEGIN PRIVATE KEY-----\naGVsbG8gd29ybGQ=\n-----END PRIVATE KEY-----\n",
    )
    .unwrap();

    // certfile.
    let error = refused(&TlsSettings::new(&missing, &server.key));
    assert_names(&error, TlsFile::Cert, &missing, "cannot read it");
    assert!(matches!(
        error,
        TlsConfigError::Read {
            kind: std::io::ErrorKind::NotFound,
            ..
        }
    ));
    let error = refused(&TlsSettings::new(&empty, &server.key));
    assert_names(&error, TlsFile::Cert, &empty, "no certificate in it");
    // A key where the certificate should be.
    let error = refused(&TlsSettings::new(&server.key, &server.key));
    assert_names(&error, TlsFile::Cert, &server.key, "no certificate in it");
    let error = refused(&TlsSettings::new(&garbage, &server.key));
    assert_names(&error, TlsFile::Cert, &garbage, "not a valid PEM file");
    let error = refused(&TlsSettings::new(&not_x509, &server.key));
    assert_names(&error, TlsFile::Cert, &not_x509, "not a valid X.509");

    // keyfile.
    let error = refused(&TlsSettings::new(&server.cert, &missing));
    assert_names(&error, TlsFile::Key, &missing, "cannot read it");
    let error = refused(&TlsSettings::new(&server.cert, &server.cert));
    assert_names(&error, TlsFile::Key, &server.cert, "no private key in it");
    let error = refused(&TlsSettings::new(&server.cert, &not_a_key));
    assert_names(&error, TlsFile::Key, &not_a_key, "unusable private key");
    let error = refused(&TlsSettings::new(&server.cert, &other.key));
    assert_names(
        &error,
        TlsFile::Key,
        &other.key,
        "does not belong to the certificate",
    );

    // cacertfile.
    let with_ca = |ca: &Path| TlsSettings {
        cacertfile: Some(ca.to_owned()),
        verify_peer: true,
        ..TlsSettings::new(&server.cert, &server.key)
    };
    let error = refused(&with_ca(&missing));
    assert_names(&error, TlsFile::CaCert, &missing, "cannot read it");
    let error = refused(&with_ca(&empty));
    assert_names(&error, TlsFile::CaCert, &empty, "no certificate in it");
    assert!(TlsAcceptor::new(&with_ca(&pki.ca)).is_ok());
}

#[test]
fn contradictory_settings_are_refused() {
    let dir = scratch("contradictions");
    let pki = Pki::new(&dir, "ca");
    let server = pki.server("server", Alg::EcdsaP256);
    let base = TlsSettings::new(&server.cert, &server.key);
    let error = refused(&TlsSettings {
        verify_peer: true,
        ..base.clone()
    });
    assert!(error.to_string().contains("cacertfile"), "{error}");
    let error = refused(&TlsSettings {
        fail_if_no_peer_cert: true,
        ..base.clone()
    });
    assert!(error.to_string().contains("verify_peer"), "{error}");
    let error = refused(&TlsSettings {
        use_identity_as_username: true,
        ..base
    });
    assert!(error.to_string().contains("verify_peer"), "{error}");
}

#[tokio::test]
async fn written_bytes_reach_the_client_without_a_flush() {
    // broker-core writes a batch and then only waits for input, never calling `flush`. When
    // the socket is full, tokio-rustls keeps what it could not send; the stream must still
    // push it out as the client makes room, while the server side merely waits to read.
    let dir = scratch("no_flush");
    let pki = Pki::new(&dir, "ca");
    let server = pki.server("server", Alg::EcdsaP256);
    let acceptor = TlsAcceptor::new(&TlsSettings::new(&server.cert, &server.key)).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let (written_tx, written_rx) = oneshot::channel();
    let server = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let mut tls = acceptor.accept(tcp).await.unwrap();
        // Write until the socket is full and a write is refused: the last write accepted
        // was partly left in the TLS buffers.
        let chunk = vec![7u8; 16 * 1024];
        let mut written = 0;
        while let Ok(n) = tokio::time::timeout(Duration::from_millis(200), tls.write(&chunk)).await
        {
            written += n.unwrap();
        }
        written_tx.send(written).unwrap();
        // No flush: wait for the client to say it has everything.
        let mut done = [0u8; 1];
        tls.read_exact(&mut done).await.unwrap();
        done[0]
    });

    let config = client_config(&pki.ca, &[&rustls::version::TLS13], None);
    let mut client = tls_connect(address, config).await.unwrap();
    let written = written_rx.await.unwrap();
    let mut received = vec![0u8; written];
    let read = tokio::time::timeout(PATIENCE, client.read_exact(&mut received)).await;
    assert!(
        read.is_ok(),
        "the tail of the {written} bytes never arrived"
    );
    assert!(received.iter().all(|b| *b == 7));
    client.write_all(b"!").await.unwrap();
    client.flush().await.unwrap();
    assert_eq!(server.await.unwrap(), b'!');
}
