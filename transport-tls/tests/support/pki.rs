//! A throwaway public-key infrastructure for tests: a CA generated at run time (rcgen), server
//! certificates for `localhost` and `127.0.0.1`, client certificates with a chosen common name,
//! all written as PEM files into a directory of the test's own.
//!
//! Shared by the TLS tests of transport-tls, transport-ws and nanomq-bin (included with
//! `#[path = ...]`), so each suite generates its certificates the same way.

#![allow(dead_code, unreachable_pub, clippy::unwrap_used, clippy::expect_used)]

use std::fs;
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SignatureAlgorithm,
};

/// A key algorithm for a generated certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Alg {
    /// ECDSA P-256 with SHA-256 (rcgen's default).
    EcdsaP256,
    /// ECDSA P-384 with SHA-384.
    EcdsaP384,
    /// Ed25519.
    Ed25519,
}

impl Alg {
    fn algorithm(self) -> &'static SignatureAlgorithm {
        match self {
            Self::EcdsaP256 => &rcgen::PKCS_ECDSA_P256_SHA256,
            Self::EcdsaP384 => &rcgen::PKCS_ECDSA_P384_SHA384,
            Self::Ed25519 => &rcgen::PKCS_ED25519,
        }
    }
}

/// A certificate and its key, as PEM files.
#[derive(Debug, Clone)]
pub struct Issued {
    /// The certificate (PEM).
    pub cert: PathBuf,
    /// Its private key (PEM, PKCS#8).
    pub key: PathBuf,
}

/// A CA and the directory its files go in.
pub struct Pki {
    dir: PathBuf,
    name: String,
    issuer: Issuer<'static, KeyPair>,
    /// The CA certificate (PEM).
    pub ca: PathBuf,
}

impl Pki {
    /// A new CA named `name`, its certificate written to `dir/<name>.pem` (`dir` is created).
    pub fn new(dir: &Path, name: &str) -> Self {
        fs::create_dir_all(dir).unwrap();
        let mut params = CertificateParams::new(Vec::new()).unwrap();
        params.distinguished_name = DistinguishedName::new();
        params
            .distinguished_name
            .push(DnType::CommonName, format!("{name} test CA"));
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let key = KeyPair::generate().unwrap();
        let certificate = params.self_signed(&key).unwrap();
        let ca = dir.join(format!("{name}.pem"));
        fs::write(&ca, certificate.pem()).unwrap();
        Self {
            dir: dir.to_owned(),
            name: name.to_owned(),
            issuer: Issuer::new(params, key),
            ca,
        }
    }

    /// A server certificate for `localhost` and `127.0.0.1` with a new key of `alg`, written to
    /// `<file>.pem` and `<file>.key`.
    pub fn server(&self, file: &str, alg: Alg) -> Issued {
        let key = KeyPair::generate_for(alg.algorithm()).unwrap();
        self.server_with_key(file, &key, &key.serialize_pem())
    }

    /// A server certificate for `localhost` and `127.0.0.1` for `key`, whose file is written as
    /// `key_pem` (another encoding of the same key, for example).
    pub fn server_with_key(&self, file: &str, key: &KeyPair, key_pem: &str) -> Issued {
        let mut params =
            CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()]).unwrap();
        params
            .distinguished_name
            .push(DnType::CommonName, "localhost");
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let certificate = params.signed_by(key, &self.issuer).unwrap();
        self.write(file, &certificate.pem(), key_pem)
    }

    /// A client certificate with common name `common_name` (and organisation "nanomq tests"),
    /// written to `<file>.pem` and `<file>.key`.
    pub fn client(&self, file: &str, common_name: &str) -> Issued {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::new()).unwrap();
        params.distinguished_name = DistinguishedName::new();
        params
            .distinguished_name
            .push(DnType::CommonName, common_name);
        params
            .distinguished_name
            .push(DnType::OrganizationName, "nanomq tests");
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let certificate = params.signed_by(&key, &self.issuer).unwrap();
        self.write(file, &certificate.pem(), &key.serialize_pem())
    }

    /// The CA's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    fn write(&self, file: &str, cert_pem: &str, key_pem: &str) -> Issued {
        let cert = self.dir.join(format!("{file}.pem"));
        let key = self.dir.join(format!("{file}.key"));
        fs::write(&cert, cert_pem).unwrap();
        fs::write(&key, key_pem).unwrap();
        Issued { cert, key }
    }
}
