//! What a TLS listener is configured with ([`TlsSettings`]), turned into a rustls server
//! configuration by [`crate::TlsAcceptor::new`], and why that can fail ([`TlsConfigError`]):
//! every error names the file and what is wrong with it, so a broker that cannot load its
//! certificate says so at start-up instead of failing each handshake later.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};
use rustls_pki_types::pem::{self, PemObject};
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// The settings of a TLS listener, as Mosquitto and NanoMQ name them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsSettings {
    /// The server's certificate chain (PEM): its own certificate first, then intermediates.
    pub certfile: PathBuf,
    /// The server's private key (PEM: PKCS#8, PKCS#1 RSA or SEC1 EC; RSA, ECDSA P-256/P-384
    /// or Ed25519).
    pub keyfile: PathBuf,
    /// The CA certificates (PEM) that client certificates are verified against; required
    /// with `verify_peer`.
    pub cacertfile: Option<PathBuf>,
    /// Ask clients for a certificate and verify the ones they send against `cacertfile`.
    pub verify_peer: bool,
    /// With `verify_peer`: refuse clients that send no certificate (without it, they are let
    /// in without an identity).
    pub fail_if_no_peer_cert: bool,
    /// With `verify_peer`: the verified certificate's common name becomes the client's
    /// username (see `broker_core::TransportInfo::identity_as_username`).
    pub use_identity_as_username: bool,
    /// With `verify_peer`: the verified certificate's whole subject (RFC 2253, as
    /// `CN=device-7,O=Example`) becomes the client's username, as Mosquitto's
    /// `use_subject_as_username`.
    pub use_subject_as_username: bool,
}

impl TlsSettings {
    /// Settings for `certfile` and `keyfile` with no client-certificate verification.
    pub fn new(certfile: impl Into<PathBuf>, keyfile: impl Into<PathBuf>) -> Self {
        Self {
            certfile: certfile.into(),
            keyfile: keyfile.into(),
            cacertfile: None,
            verify_peer: false,
            fail_if_no_peer_cert: false,
            use_identity_as_username: false,
            use_subject_as_username: false,
        }
    }
}

/// Which of the configured files an error is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsFile {
    /// `certfile`: the server's certificate chain.
    Cert,
    /// `keyfile`: the server's private key.
    Key,
    /// `cacertfile`: the CA certificates client certificates are verified against.
    CaCert,
}

impl fmt::Display for TlsFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Cert => "certfile",
            Self::Key => "keyfile",
            Self::CaCert => "cacertfile",
        })
    }
}

/// Why TLS settings could not be loaded. Displayed, it names the setting, the file and the
/// problem: `keyfile /etc/nanomq/key.pem: no private key in it (...)`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum TlsConfigError {
    /// A file could not be read.
    Read {
        /// Which file.
        file: TlsFile,
        /// Its path.
        path: PathBuf,
        /// The I/O error's kind.
        kind: io::ErrorKind,
        /// The I/O error, displayed.
        message: String,
    },
    /// A file was read but does not hold what it should.
    Invalid {
        /// Which file.
        file: TlsFile,
        /// Its path.
        path: PathBuf,
        /// What is wrong with it.
        problem: String,
    },
    /// The settings contradict each other (`fail_if_no_peer_cert` without `verify_peer`).
    Inconsistent(&'static str),
}

impl TlsConfigError {
    fn invalid(file: TlsFile, path: &Path, problem: impl Into<String>) -> Self {
        Self::Invalid {
            file,
            path: path.to_owned(),
            problem: problem.into(),
        }
    }
}

impl fmt::Display for TlsConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Read {
                file,
                path,
                message,
                ..
            } => write!(f, "{file} {}: cannot read it: {message}", path.display()),
            Self::Invalid {
                file,
                path,
                problem,
            } => write!(f, "{file} {}: {problem}", path.display()),
            Self::Inconsistent(problem) => f.write_str(problem),
        }
    }
}

impl std::error::Error for TlsConfigError {}

/// The crypto provider: ring, explicitly, so that whatever else the process links in, the
/// choice does not depend on a process-wide default.
pub(crate) fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Builds the rustls server configuration `settings` describe: TLS 1.3 and 1.2.
pub(crate) fn server_config(settings: &TlsSettings) -> Result<ServerConfig, TlsConfigError> {
    if settings.fail_if_no_peer_cert && !settings.verify_peer {
        return Err(TlsConfigError::Inconsistent(
            "fail_if_no_peer_cert needs verify_peer = true",
        ));
    }
    if settings.use_identity_as_username && !settings.verify_peer {
        return Err(TlsConfigError::Inconsistent(
            "use_identity_as_username needs verify_peer = true",
        ));
    }
    if settings.use_subject_as_username && !settings.verify_peer {
        return Err(TlsConfigError::Inconsistent(
            "use_subject_as_username needs verify_peer = true",
        ));
    }
    if settings.use_subject_as_username && settings.use_identity_as_username {
        return Err(TlsConfigError::Inconsistent(
            "use_identity_as_username and use_subject_as_username cannot both be on",
        ));
    }
    let provider = provider();
    let chain = load_certificates(TlsFile::Cert, &settings.certfile)?;
    let key = load_key(&settings.keyfile, &provider)?;

    let builder = ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| TlsConfigError::invalid(TlsFile::Cert, &settings.certfile, e.to_string()))?;
    let builder = if settings.verify_peer {
        let Some(cacertfile) = &settings.cacertfile else {
            return Err(TlsConfigError::Inconsistent(
                "verify_peer needs a cacertfile to verify client certificates against",
            ));
        };
        let roots = load_roots(cacertfile)?;
        let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
        let verifier = if settings.fail_if_no_peer_cert {
            verifier
        } else {
            verifier.allow_unauthenticated()
        };
        let verifier = verifier
            .build()
            .map_err(|e| TlsConfigError::invalid(TlsFile::CaCert, cacertfile, e.to_string()))?;
        builder.with_client_cert_verifier(verifier)
    } else {
        builder.with_no_client_auth()
    };
    builder.with_single_cert(chain, key).map_err(|e| match e {
        rustls::Error::InconsistentKeys(_) => TlsConfigError::invalid(
            TlsFile::Key,
            &settings.keyfile,
            format!(
                "the private key does not belong to the certificate in {}",
                settings.certfile.display()
            ),
        ),
        other => TlsConfigError::invalid(
            TlsFile::Cert,
            &settings.certfile,
            format!("unusable certificate: {other}"),
        ),
    })
}

/// Reads `path`.
fn read(file: TlsFile, path: &Path) -> Result<Vec<u8>, TlsConfigError> {
    std::fs::read(path).map_err(|e| TlsConfigError::Read {
        file,
        path: path.to_owned(),
        kind: e.kind(),
        message: e.to_string(),
    })
}

/// The PEM certificates in `path`, at least one, each a well-formed X.509 certificate.
fn load_certificates(
    file: TlsFile,
    path: &Path,
) -> Result<Vec<CertificateDer<'static>>, TlsConfigError> {
    let text = read(file, path)?;
    let mut certificates = Vec::new();
    for certificate in CertificateDer::pem_slice_iter(&text) {
        let certificate = certificate.map_err(|e| {
            TlsConfigError::invalid(file, path, format!("not a valid PEM file: {e}"))
        })?;
        if let Err(e) = x509_parser::parse_x509_certificate(&certificate) {
            return Err(TlsConfigError::invalid(
                file,
                path,
                format!(
                    "certificate {} is not a valid X.509 certificate: {e}",
                    certificates.len() + 1
                ),
            ));
        }
        certificates.push(certificate);
    }
    if certificates.is_empty() {
        return Err(TlsConfigError::invalid(
            file,
            path,
            "no certificate in it (expected PEM blocks \"-----BEGIN CERTIFICATE-----\")",
        ));
    }
    Ok(certificates)
}

/// The private key in `path`, checked to be one `provider` can sign with.
fn load_key(
    path: &Path,
    provider: &CryptoProvider,
) -> Result<PrivateKeyDer<'static>, TlsConfigError> {
    let text = read(TlsFile::Key, path)?;
    let key = PrivateKeyDer::from_pem_slice(&text).map_err(|e| match e {
        pem::Error::NoItemsFound => TlsConfigError::invalid(
            TlsFile::Key,
            path,
            "no private key in it (expected a PEM block \"-----BEGIN PRIVATE KEY-----\", \
             \"-----BEGIN RSA PRIVATE KEY-----\" or \"-----BEGIN EC PRIVATE KEY-----\")",
        ),
        other => {
            TlsConfigError::invalid(TlsFile::Key, path, format!("not a valid PEM file: {other}"))
        }
    })?;
    if let Err(e) = provider.key_provider.load_private_key(key.clone_key()) {
        return Err(TlsConfigError::invalid(
            TlsFile::Key,
            path,
            format!("unusable private key (supported: RSA, ECDSA P-256 or P-384, Ed25519): {e}"),
        ));
    }
    Ok(key)
}

/// The CA certificates in `path`, as trust anchors.
fn load_roots(path: &Path) -> Result<RootCertStore, TlsConfigError> {
    let mut roots = RootCertStore::empty();
    for (i, certificate) in load_certificates(TlsFile::CaCert, path)?
        .into_iter()
        .enumerate()
    {
        roots.add(certificate).map_err(|e| {
            TlsConfigError::invalid(
                TlsFile::CaCert,
                path,
                format!("certificate {} is not a usable CA certificate: {e}", i + 1),
            )
        })?;
    }
    Ok(roots)
}
