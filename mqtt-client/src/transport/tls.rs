//! The TLS client (rustls with the ring provider): whom to trust (a CA file, else the
//! system's certificate bundle), our own certificate and key, the SNI name, and
//! `insecure`, which accepts any broker certificate (for tests against self-signed brokers
//! only).

use std::path::Path;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use super::TlsOptions;
use crate::error::Error;

/// Where Debian (and most Linux systems) keep the trusted certificate authorities.
const SYSTEM_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";

/// A prepared TLS client for one server name.
pub(crate) struct TlsClient {
    /// The configured connector.
    connector: TlsConnector,
    /// The name the broker's certificate must carry.
    server_name: ServerName<'static>,
}

impl TlsClient {
    /// Reads the certificate files and builds the configuration for `host`.
    pub(crate) fn new(host: &str, options: &TlsOptions) -> Result<Self, Error> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = ClientConfig::builder_with_provider(Arc::clone(&provider))
            .with_safe_default_protocol_versions()
            .map_err(|e| Error::Tls(e.to_string()))?;
        let builder = if options.insecure {
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AcceptAnyCertificate {
                    algorithms: provider.signature_verification_algorithms,
                }))
        } else {
            builder.with_root_certificates(roots(options.cafile.as_deref())?)
        };
        let config = match (&options.cert, &options.key) {
            (Some(cert), Some(key)) => {
                let chain = certificates(cert)?;
                let key = PrivateKeyDer::from_pem_file(key).map_err(|e| {
                    Error::Usage(format!("cannot read the key {}: {e}", key.display()))
                })?;
                builder
                    .with_client_auth_cert(chain, key)
                    .map_err(|e| Error::Usage(format!("client certificate and key: {e}")))?
            }
            (None, None) => builder.with_no_client_auth(),
            _ => {
                return Err(Error::Usage(
                    "a client certificate and its key go together".to_owned(),
                ));
            }
        };
        let host = options.server_name.as_deref().unwrap_or(host);
        let server_name = ServerName::try_from(host.to_owned())
            .map_err(|e| Error::Usage(format!("`{host}` is not a valid TLS name: {e}")))?;
        Ok(Self {
            connector: TlsConnector::from(Arc::new(config)),
            server_name,
        })
    }

    /// The handshake over an open TCP connection.
    pub(crate) async fn handshake(&self, tcp: TcpStream) -> Result<TlsStream<TcpStream>, Error> {
        self.connector
            .connect(self.server_name.clone(), tcp)
            .await
            .map_err(|e| Error::Tls(e.to_string()))
    }
}

/// The certificates of a PEM file.
fn certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, Error> {
    let read = |e: &dyn std::fmt::Display| {
        Error::Usage(format!(
            "cannot read certificates from {}: {e}",
            path.display()
        ))
    };
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| read(&e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| read(&e))?;
    if certs.is_empty() {
        return Err(read(&"no certificate in the file"));
    }
    Ok(certs)
}

/// The trusted authorities: `cafile`, or the system bundle.
fn roots(cafile: Option<&Path>) -> Result<RootCertStore, Error> {
    let path = match cafile {
        Some(path) => path.to_owned(),
        None => std::env::var_os("SSL_CERT_FILE")
            .map_or_else(|| SYSTEM_BUNDLE.into(), std::path::PathBuf::from),
    };
    let mut store = RootCertStore::empty();
    for cert in certificates(&path)? {
        store.add(cert).map_err(|e| {
            Error::Usage(format!(
                "a certificate in {} is not usable: {e}",
                path.display()
            ))
        })?;
    }
    Ok(store)
}

/// `insecure`: any certificate is accepted, but the handshake signatures are still
/// checked (the connection is encrypted, just not authenticated).
#[derive(Debug)]
struct AcceptAnyCertificate {
    /// The provider's signature algorithms.
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for AcceptAnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}
