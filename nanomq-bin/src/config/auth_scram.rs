//! `[auth.scram]`: MQTT 5 enhanced authentication with SCRAM-SHA-256/512, from a
//! credentials file (its format: broker-core's `scram` module). The file is read when the
//! broker starts (`main.rs`), not here: the configuration only names it.

use std::path::PathBuf;

use anyhow::{Context, Result, anyhow};
use broker_core::scram::{CredentialStore, Mechanism, ScramAuth};
use serde::Deserialize;

use super::Problems;

/// A configuration that turns SCRAM on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ScramConfig {
    /// The credentials file.
    pub(crate) file: PathBuf,
    /// The mechanisms offered, at least one.
    pub(crate) mechanisms: Vec<Mechanism>,
}

impl ScramConfig {
    /// Reads the credentials file into the broker's SCRAM hook. The made-up salts of
    /// unknown users are keyed by the file's own bytes: secret as the credentials are, and
    /// the same from one start to the next while the file stays the same.
    pub(crate) fn load(&self) -> Result<ScramAuth> {
        let path = self.file.display();
        let text = std::fs::read_to_string(&self.file)
            .with_context(|| format!("auth.scram.file: cannot read {path}"))?;
        let store =
            CredentialStore::parse(&text).map_err(|e| anyhow!("auth.scram.file: {path}, {e}"))?;
        let names: Vec<_> = self.mechanisms.iter().map(|m| m.name()).collect();
        tracing::info!(file = %path, credentials = store.len(), mechanisms = ?names, "SCRAM authentication on");
        let secret = ScramAuth::secret_from(text.as_bytes());
        Ok(ScramAuth::new(store, &self.mechanisms, secret))
    }
}

/// `[auth.scram]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default, expecting = "the [auth.scram] table")]
pub(super) struct RawScram {
    file: Option<PathBuf>,
    mechanisms: Option<Vec<String>>,
}

impl RawScram {
    /// SCRAM's settings; problems for a missing file or an unknown or empty list of
    /// mechanisms.
    pub(super) fn validate(&self, problems: &mut Problems) -> Option<ScramConfig> {
        let scram = self;
        let file = match &scram.file {
            Some(file) if !file.as_os_str().is_empty() => Some(file.clone()),
            Some(_) => {
                problems.add("auth.scram.file", "must not be empty");
                None
            }
            None => {
                problems.add(
                    "auth.scram.file",
                    "is required (the SCRAM credentials file)",
                );
                None
            }
        };
        let mechanisms = match &scram.mechanisms {
            None => Mechanism::ALL.to_vec(),
            Some(names) if names.is_empty() => {
                problems.add("auth.scram.mechanisms", "must name at least one mechanism");
                Vec::new()
            }
            Some(names) => names
                .iter()
                .filter_map(|name| {
                    let mechanism = Mechanism::from_name(name);
                    if mechanism.is_none() {
                        problems.add(
                            "auth.scram.mechanisms",
                            format!(
                                "unknown mechanism {name:?} (expected \"SCRAM-SHA-256\" or \"SCRAM-SHA-512\")"
                            ),
                        );
                    }
                    mechanism
                })
                .collect(),
        };
        Some(ScramConfig {
            file: file?,
            mechanisms,
        })
    }
}

// Every case parses a configuration with a TCP listener.
#[cfg(all(test, feature = "tcp"))]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use crate::config::parse;

    fn with_tcp(extra: &str) -> String {
        format!("[listeners.tcp]\nbind = \"127.0.0.1:0\"\n{extra}")
    }

    fn refused(text: &str) -> String {
        parse(&with_tcp(text)).unwrap_err().to_string()
    }

    #[test]
    fn the_example_file_documents_scram() {
        for key in ["[auth.scram]", "file = \"etc/scram\"", "mechanisms = ["] {
            assert!(crate::config::DEFAULT_CONFIG.contains(key), "{key}");
        }
    }

    #[test]
    fn scram_is_off_unless_configured() {
        assert_eq!(parse(&with_tcp("")).unwrap().auth.scram, None);
        assert_eq!(parse(&with_tcp("[auth]\n")).unwrap().auth.scram, None);
    }

    #[test]
    fn scram_with_its_mechanisms() {
        let config = parse(&with_tcp("[auth.scram]\nfile = \"etc/scram\"\n")).unwrap();
        assert_eq!(
            config.auth.scram,
            Some(ScramConfig {
                file: "etc/scram".into(),
                mechanisms: Mechanism::ALL.to_vec()
            })
        );
        let config = parse(&with_tcp(
            "[auth.scram]\nfile = \"s\"\nmechanisms = [\"SCRAM-SHA-512\"]\n",
        ))
        .unwrap();
        assert_eq!(config.auth.scram.unwrap().mechanisms, [Mechanism::Sha512]);
    }

    #[test]
    fn bad_scram_settings_are_named() {
        let e = refused("[auth.scram]\nmechanisms = [\"SCRAM-SHA-256\"]\n");
        assert!(e.contains("auth.scram.file: is required"), "{e}");
        let e = refused("[auth.scram]\nfile = \"\"\n");
        assert!(e.contains("auth.scram.file: must not be empty"), "{e}");
        let e = refused("[auth.scram]\nfile = \"s\"\nmechanisms = []\n");
        assert!(
            e.contains("auth.scram.mechanisms: must name at least one"),
            "{e}"
        );
        let e = refused("[auth.scram]\nfile = \"s\"\nmechanisms = [\"SCRAM-SHA-1\"]\n");
        assert!(
            e.contains("auth.scram.mechanisms: unknown mechanism \"SCRAM-SHA-1\""),
            "{e}"
        );
        let e = refused("[auth.scram]\nfile = \"s\"\nsecret = \"x\"\n");
        assert!(e.contains("auth.scram") && e.contains("secret"), "{e}");
    }
}
