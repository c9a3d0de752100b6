//! The text of a password hash as Mosquitto's files hold it, read ([`PasswordHash::parse`])
//! and written (`Display`), and what can be wrong with it.
//!
//! The three formats (Mosquitto's `common/password_mosq.c`):
//! - `$6$<salt>$<hash>`: SHA-512 of the password followed by the salt (Mosquitto before 2.0).
//! - `$7$<iterations>$<salt>$<hash>`: PBKDF2-HMAC-SHA512, 64 bytes out (Mosquitto 2.0's
//!   default, 101 iterations).
//!
//!   Salt and hash are standard base64 with padding; a salt is 12 bytes (what Mosquitto
//!   before 2.1 writes, and the only length 2.0 reads) or 64 bytes (2.1); a hash is 64 bytes.
//! - `$argon2id$v=19$m=<KiB>,t=<passes>,p=<lanes>$<salt>$<hash>`: the PHC string of the
//!   Argon2 reference implementation (Mosquitto 2.1, `-H argon2id`), base64 without padding.
//!   Parsed here rather than by the `password-hash` crate, whose salts stop at 64 characters,
//!   short of the 86 of Mosquitto 2.1's 64-byte salts.

use std::fmt;
use std::num::NonZeroU32;

use base64::Engine;
use base64::alphabet::STANDARD;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};

use super::password_hash::{LONG_SALT_LEN, PasswordHash, SHA512_LEN, SHORT_SALT_LEN, Scheme};

/// Standard base64, padded when written; read with or without padding, as OpenSSL (which
/// Mosquitto decodes with) and the Argon2 reference implementation accept theirs.
const PADDED: GeneralPurpose = GeneralPurpose::new(
    &STANDARD,
    GeneralPurposeConfig::new()
        .with_decode_padding_mode(DecodePaddingMode::Indifferent)
        .with_decode_allow_trailing_bits(true),
);

/// As [`PADDED`], written without padding (PHC strings).
const UNPADDED: GeneralPurpose = GeneralPurpose::new(
    &STANDARD,
    GeneralPurposeConfig::new()
        .with_encode_padding(false)
        .with_decode_padding_mode(DecodePaddingMode::Indifferent)
        .with_decode_allow_trailing_bits(true),
);

/// Argon2's own lower bound on the salt (the reference implementation's and the crate's).
const ARGON2_MIN_SALT_LEN: usize = 8;

/// What is wrong with a hash, or why one could not be made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HashError {
    /// The text does not start with `$`: a password in plain text, which Mosquitto refuses
    /// too (`mosquitto_passwd -U` or `nanomq passwd -U` hashes them).
    PlainText,
    /// A `$id$` this reader does not know (not `6`, `7` or `argon2id`).
    UnknownScheme(String),
    /// Not the number of `$`-separated fields the scheme has.
    FieldCount {
        /// The scheme (`6`, `7`, `argon2id`).
        scheme: &'static str,
        /// How many fields it has after the `$id$`.
        expected: &'static str,
        /// How many were found.
        found: usize,
    },
    /// A number (iterations, an Argon2 parameter, the version) that is not a positive decimal
    /// that fits 32 bits.
    BadNumber {
        /// Which number.
        field: &'static str,
        /// As written.
        text: String,
    },
    /// A field that is not base64.
    BadBase64 {
        /// `salt` or `hash`.
        field: &'static str,
    },
    /// A salt of a length the scheme does not take.
    SaltLength {
        /// Its length in bytes.
        len: usize,
        /// The lengths allowed, in words.
        allowed: &'static str,
    },
    /// A hash of a length the scheme does not make.
    HashLength {
        /// Its length in bytes.
        len: usize,
        /// The length allowed, in words.
        allowed: &'static str,
    },
    /// Argon2 parameters that are not of the form `m=..,t=..,p=..`, or out of Argon2's range,
    /// or a version other than 16 or 19.
    Argon2Params(String),
    /// A name `-H` does not take.
    UnknownAlgorithm(String),
    /// The operating system's random number generator failed (a new salt needs it).
    NoRandomness(String),
}

impl fmt::Display for HashError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::PlainText => f.write_str(
                "not a password hash (a plain-text password? `nanomq passwd -U FILE` hashes them)",
            ),
            Self::UnknownScheme(id) => write!(
                f,
                "unknown hash scheme `${id}$` (known: $6$, $7$, $argon2id$)"
            ),
            Self::FieldCount {
                scheme,
                expected,
                found,
            } => write!(
                f,
                "a ${scheme}$ hash has {expected} `$`-separated fields after `${scheme}$`, this one {found}"
            ),
            Self::BadNumber { field, text } => {
                write!(
                    f,
                    "{field} `{text}` is not a positive 32-bit decimal number"
                )
            }
            Self::BadBase64 { field } => write!(f, "the {field} is not base64"),
            Self::SaltLength { len, allowed } => {
                write!(f, "a salt of {len} bytes (allowed: {allowed})")
            }
            Self::HashLength { len, allowed } => {
                write!(f, "a hash of {len} bytes (allowed: {allowed})")
            }
            Self::Argon2Params(why) => write!(f, "Argon2 parameters: {why}"),
            Self::UnknownAlgorithm(name) => write!(
                f,
                "unknown hash algorithm `{name}` (known: sha512-pbkdf2, argon2id)"
            ),
            Self::NoRandomness(why) => write!(f, "no random salt: {why}"),
        }
    }
}

impl std::error::Error for HashError {}

impl PasswordHash {
    /// Reads a hash as it stands after `username:` in a password file.
    pub fn parse(text: &str) -> Result<Self, HashError> {
        if let Some(rest) = text.strip_prefix("$argon2id$") {
            return parse_argon2id(rest).map(Self);
        }
        let Some(rest) = text.strip_prefix('$') else {
            return Err(HashError::PlainText);
        };
        let (id, fields) = rest.split_once('$').unwrap_or((rest, ""));
        let fields: Vec<&str> = fields.split('$').collect();
        match (id, fields.as_slice()) {
            ("6", [salt, hash]) => Ok(Self(Scheme::Sha512 {
                salt: sha512_salt(salt)?,
                hash: sha512_hash(hash)?,
            })),
            ("6", other) => Err(HashError::FieldCount {
                scheme: "6",
                expected: "2 (salt, hash)",
                found: other.len(),
            }),
            ("7", [iterations, salt, hash]) => Ok(Self(Scheme::Pbkdf2Sha512 {
                iterations: NonZeroU32::new(number("the iteration count", iterations)?)
                    .ok_or_else(|| HashError::BadNumber {
                        field: "the iteration count",
                        text: (*iterations).to_owned(),
                    })?,
                salt: sha512_salt(salt)?,
                hash: sha512_hash(hash)?,
            })),
            ("7", other) => Err(HashError::FieldCount {
                scheme: "7",
                expected: "3 (iterations, salt, hash)",
                found: other.len(),
            }),
            (id, _) => Err(HashError::UnknownScheme(id.to_owned())),
        }
    }
}

/// Writes the hash as Mosquitto does: what goes after `username:` in the file.
impl fmt::Display for PasswordHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Scheme::Sha512 { salt, hash } => {
                write!(f, "$6${}${}", PADDED.encode(salt), PADDED.encode(hash))
            }
            Scheme::Pbkdf2Sha512 {
                iterations,
                salt,
                hash,
            } => write!(
                f,
                "$7${iterations}${}${}",
                PADDED.encode(salt),
                PADDED.encode(hash)
            ),
            Scheme::Argon2id {
                version,
                params,
                salt,
                hash,
            } => write!(
                f,
                "$argon2id$v={}$m={},t={},p={}${}${}",
                u32::from(*version),
                params.m_cost(),
                params.t_cost(),
                params.p_cost(),
                UNPADDED.encode(salt),
                UNPADDED.encode(hash)
            ),
        }
    }
}

/// A positive decimal that fits 32 bits, digits only (no sign, no spaces).
fn number(field: &'static str, text: &str) -> Result<u32, HashError> {
    let bad = || HashError::BadNumber {
        field,
        text: text.to_owned(),
    };
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    text.parse().map_err(|_| bad())
}

fn decode(engine: &GeneralPurpose, field: &'static str, text: &str) -> Result<Vec<u8>, HashError> {
    engine
        .decode(text)
        .map_err(|_| HashError::BadBase64 { field })
}

fn sha512_salt(text: &str) -> Result<Box<[u8]>, HashError> {
    let salt = decode(&PADDED, "salt", text)?;
    if salt.len() != SHORT_SALT_LEN && salt.len() != LONG_SALT_LEN {
        return Err(HashError::SaltLength {
            len: salt.len(),
            allowed: "12 or 64 bytes",
        });
    }
    Ok(salt.into_boxed_slice())
}

fn sha512_hash(text: &str) -> Result<[u8; SHA512_LEN], HashError> {
    let hash = decode(&PADDED, "hash", text)?;
    <[u8; SHA512_LEN]>::try_from(hash.as_slice()).map_err(|_| HashError::HashLength {
        len: hash.len(),
        allowed: "64 bytes",
    })
}

/// `[v=19$]m=..,t=..,p=..$salt$hash`: what follows `$argon2id$`, in the reference
/// implementation's order (the version may be absent, meaning 16).
fn parse_argon2id(rest: &str) -> Result<Scheme, HashError> {
    let fields: Vec<&str> = rest.split('$').collect();
    let (version, params, salt, hash) = match fields.as_slice() {
        [version, params, salt, hash] => {
            let Some(v) = version.strip_prefix("v=") else {
                return Err(HashError::Argon2Params(format!(
                    "`{version}` where the version (v=19) belongs"
                )));
            };
            (Some(v), *params, *salt, *hash)
        }
        [params, salt, hash] => (None, *params, *salt, *hash),
        other => {
            return Err(HashError::FieldCount {
                scheme: "argon2id",
                expected: "3 or 4 ([version,] parameters, salt, hash)",
                found: other.len(),
            });
        }
    };
    let version = match version {
        None => argon2::Version::V0x10,
        Some(v) => argon2::Version::try_from(number("the Argon2 version", v)?)
            .map_err(|_| HashError::Argon2Params(format!("version {v} (known: 16, 19)")))?,
    };
    let mut costs = params.split(',');
    let mut cost = |name: &'static str, key: &str| -> Result<u32, HashError> {
        let field = costs.next().unwrap_or("");
        let Some(value) = field.strip_prefix(key) else {
            return Err(HashError::Argon2Params(format!(
                "`{params}` is not m=<KiB>,t=<passes>,p=<lanes>"
            )));
        };
        number(name, value)
    };
    let m = cost("the memory cost", "m=")?;
    let t = cost("the time cost", "t=")?;
    let p = cost("the parallelism", "p=")?;
    if costs.next().is_some() {
        return Err(HashError::Argon2Params(format!(
            "`{params}` is not m=<KiB>,t=<passes>,p=<lanes>"
        )));
    }
    let salt = decode(&UNPADDED, "salt", salt)?;
    if salt.len() < ARGON2_MIN_SALT_LEN {
        return Err(HashError::SaltLength {
            len: salt.len(),
            allowed: "8 bytes or more",
        });
    }
    let hash = decode(&UNPADDED, "hash", hash)?;
    let params = argon2::Params::new(m, t, p, Some(hash.len())).map_err(|e| {
        if hash.len() < argon2::Params::MIN_OUTPUT_LEN {
            HashError::HashLength {
                len: hash.len(),
                allowed: "4 bytes or more",
            }
        } else {
            HashError::Argon2Params(format!("m={m},t={t},p={p}: {e}"))
        }
    })?;
    Ok(Scheme::Argon2id {
        version,
        params,
        salt: salt.into_boxed_slice(),
        hash: hash.into_boxed_slice(),
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

    use super::*;

    #[test]
    fn argon2id_without_a_version_is_version_16() {
        let hash = PasswordHash::parse("$argon2id$m=1024,t=2,p=1$c2FsdHNhbHRzYWx0MTI$pPCmMEPVsX2oN4v6OtMihOjkv0smriTfmiWnuPzwkVY").unwrap();
        // Same inputs as REFERENCE_ARGON2ID, but version 16 computes a different hash.
        assert!(!hash.verify(b"hunter2"));
        assert!(hash.to_string().starts_with("$argon2id$v=16$"));
    }

    #[test]
    fn malformed_hashes_say_what_is_wrong() {
        let error = |text: &str| PasswordHash::parse(text).unwrap_err();
        assert_eq!(error("plain"), HashError::PlainText);
        assert_eq!(error("$5$abc$def"), HashError::UnknownScheme("5".into()));
        assert_eq!(
            error("$argon2i$v=19$m=8,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2g"),
            HashError::UnknownScheme("argon2i".into())
        );
        assert!(matches!(
            error("$7$101$AQIDBAUGBwgJCgsM"),
            HashError::FieldCount { found: 2, .. }
        ));
        assert!(matches!(
            error("$6$a$b$c"),
            HashError::FieldCount { found: 3, .. }
        ));
        assert!(matches!(
            error("$7$0$AQIDBAUGBwgJCgsM$AA=="),
            HashError::BadNumber { .. }
        ));
        assert!(matches!(
            error("$7$-1$AQIDBAUGBwgJCgsM$AA=="),
            HashError::BadNumber { .. }
        ));
        assert!(matches!(
            error("$7$99999999999$AQIDBAUGBwgJCgsM$AA=="),
            HashError::BadNumber { .. }
        ));
        assert_eq!(
            error("$7$101$not*base64$AA=="),
            HashError::BadBase64 { field: "salt" }
        );
        assert!(matches!(
            error("$7$101$AQID$AA=="),
            HashError::SaltLength { len: 3, .. }
        ));
        assert!(matches!(
            error("$7$101$AQIDBAUGBwgJCgsM$AA=="),
            HashError::HashLength { len: 1, .. }
        ));
        assert!(matches!(
            error(
                "$argon2id$v=19$m=1024,t=2$c2FsdHNhbHRzYWx0MTI$pPCmMEPVsX2oN4v6OtMihOjkv0smriTfmiWnuPzwkVY"
            ),
            HashError::Argon2Params(_)
        ));
        assert!(matches!(
            error(
                "$argon2id$v=18$m=1024,t=2,p=1$c2FsdHNhbHRzYWx0MTI$pPCmMEPVsX2oN4v6OtMihOjkv0smriTfmiWnuPzwkVY"
            ),
            HashError::Argon2Params(_)
        ));
        assert!(matches!(
            error(
                "$argon2id$v=19$m=4,t=2,p=1$c2FsdHNhbHRzYWx0MTI$pPCmMEPVsX2oN4v6OtMihOjkv0smriTfmiWnuPzwkVY"
            ),
            HashError::Argon2Params(_)
        ));
        assert!(matches!(
            error(
                "$argon2id$v=19$m=1024,t=2,p=1$c2FsdA$pPCmMEPVsX2oN4v6OtMihOjkv0smriTfmiWnuPzwkVY"
            ),
            HashError::SaltLength { len: 4, .. }
        ));
        assert!(matches!(
            error("$argon2id$v=19$m=1024,t=2,p=1$c2FsdHNhbHRzYWx0MTI$pPCm"),
            HashError::HashLength { len: 3, .. }
        ));
        // Every message names the problem in words.
        assert!(error("plain").to_string().contains("-U"));
    }
}
