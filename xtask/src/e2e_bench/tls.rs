//! The throwaway TLS certificate of the transport scenarios: a self-signed P-256 certificate
//! for 127.0.0.1 (one day, not a CA, so that the client can trust it with `--cafile`), made
//! by `openssl req` in a fresh temporary directory that [`Certs`] removes when dropped.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail};

/// The certificate and key files, removed with their directory on drop.
#[derive(Debug)]
pub(crate) struct Certs {
    /// The temporary directory holding both.
    dir: PathBuf,
    /// The certificate (PEM), also the client's `--cafile`.
    pub(crate) cert: PathBuf,
    /// The private key (PEM, PKCS#8).
    pub(crate) key: PathBuf,
}

impl Drop for Certs {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// The `openssl` arguments that write a certificate to `cert` and its key to `key`.
pub(crate) fn openssl_args(cert: &Path, key: &Path) -> Vec<String> {
    let mut args: Vec<String> = [
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-days",
        "1",
        "-subj",
        "/CN=127.0.0.1",
        "-addext",
        "subjectAltName=IP:127.0.0.1",
        "-addext",
        "basicConstraints=critical,CA:FALSE",
    ]
    .iter()
    .map(|a| (*a).to_owned())
    .collect();
    for (flag, path) in [("-keyout", key), ("-out", cert)] {
        args.push(flag.to_owned());
        args.push(path.display().to_string());
    }
    args
}

/// Makes a fresh certificate and key with `openssl` (which must be on PATH).
pub(crate) fn generate() -> Result<Certs> {
    let dir = std::env::temp_dir().join(format!("nanomq-bench-tls-{}", std::process::id()));
    fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let certs = Certs {
        cert: dir.join("cert.pem"),
        key: dir.join("key.pem"),
        dir,
    };
    let output = Command::new("openssl")
        .args(openssl_args(&certs.cert, &certs.key))
        .stdin(Stdio::null())
        .output()
        .context("cannot run openssl (is it installed?)")?;
    if !output.status.success() {
        bail!(
            "openssl req failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(certs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_certificate_is_for_the_loopback_address_and_not_a_ca() {
        let args = openssl_args(Path::new("/t/cert.pem"), Path::new("/t/key.pem"));
        let has = |pair: [&str; 2]| args.windows(2).any(|w| w == pair);
        assert!(has(["-addext", "subjectAltName=IP:127.0.0.1"]), "{args:?}");
        assert!(has(["-addext", "basicConstraints=critical,CA:FALSE"]));
        assert!(has(["-keyout", "/t/key.pem"]) && has(["-out", "/t/cert.pem"]));
    }
}
