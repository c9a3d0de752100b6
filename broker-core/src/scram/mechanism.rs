//! The SCRAM mechanisms served (SCRAM-SHA-256, SCRAM-SHA-512) and the primitives each is
//! built on: its hash, HMAC over that hash, and PBKDF2 (Hi() in RFC 5802).

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256, Sha512};

/// A SCRAM mechanism.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Mechanism {
    /// SCRAM-SHA-256 (RFC 7677).
    Sha256,
    /// SCRAM-SHA-512 (as SCRAM-SHA-256, over SHA-512).
    Sha512,
}

impl Mechanism {
    /// Every mechanism, in the order they are listed by default.
    pub const ALL: [Self; 2] = [Self::Sha256, Self::Sha512];

    /// The name MQTT clients put in Authentication Method (the SASL mechanism name).
    pub const fn name(self) -> &'static str {
        match self {
            Self::Sha256 => "SCRAM-SHA-256",
            Self::Sha512 => "SCRAM-SHA-512",
        }
    }

    /// The mechanism called `name` (as in Authentication Method; exact, as SASL names are).
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.name() == name)
    }

    /// The tag of a credentials file line (`$scram-sha-256$`).
    pub(crate) const fn file_tag(self) -> &'static str {
        match self {
            Self::Sha256 => "scram-sha-256",
            Self::Sha512 => "scram-sha-512",
        }
    }

    /// The mechanism whose file tag is `tag`.
    pub(crate) fn from_file_tag(tag: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.file_tag() == tag)
    }

    /// The length of a hash, and so of StoredKey, ServerKey and a proof.
    pub(crate) const fn hash_len(self) -> usize {
        match self {
            Self::Sha256 => 32,
            Self::Sha512 => 64,
        }
    }

    /// H(data).
    pub(crate) fn hash(self, data: &[u8]) -> Vec<u8> {
        match self {
            Self::Sha256 => Sha256::digest(data).to_vec(),
            Self::Sha512 => Sha512::digest(data).to_vec(),
        }
    }

    /// HMAC(key, the concatenation of `parts`).
    pub(crate) fn hmac(self, key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
        match self {
            Self::Sha256 => hmac_with::<Hmac<Sha256>>(key, parts),
            Self::Sha512 => hmac_with::<Hmac<Sha512>>(key, parts),
        }
    }

    /// Hi(password, salt, iterations): PBKDF2 with HMAC over this hash, one block long.
    pub(crate) fn salted_password(self, password: &[u8], salt: &[u8], iterations: u32) -> Vec<u8> {
        let mut out = vec![0; self.hash_len()];
        match self {
            Self::Sha256 => pbkdf2::pbkdf2_hmac::<Sha256>(password, salt, iterations, &mut out),
            Self::Sha512 => pbkdf2::pbkdf2_hmac::<Sha512>(password, salt, iterations, &mut out),
        }
        out
    }
}

impl std::fmt::Display for Mechanism {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

fn hmac_with<M: Mac + hmac::digest::KeyInit>(key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    // HMAC takes keys of any length, so this never fails; were it to, an empty MAC matches
    // no stored key or proof, and authentication fails closed.
    let Ok(mut mac) = <M as hmac::digest::KeyInit>::new_from_slice(key) else {
        return Vec::new();
    };
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().to_vec()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;

    #[test]
    fn names_round_trip_and_are_exact() {
        for m in Mechanism::ALL {
            assert_eq!(Mechanism::from_name(m.name()), Some(m));
            assert_eq!(Mechanism::from_file_tag(m.file_tag()), Some(m));
            assert_eq!(m.hash(b"").len(), m.hash_len());
            assert_eq!(m.hmac(b"k", &[b"x"]).len(), m.hash_len());
        }
        assert_eq!(Mechanism::from_name("scram-sha-256"), None);
        assert_eq!(Mechanism::from_name("SCRAM-SHA-256-PLUS"), None);
        assert_eq!(Mechanism::from_name("SCRAM-SHA-1"), None);
    }

    #[test]
    fn hmac_of_parts_is_hmac_of_their_concatenation() {
        for m in Mechanism::ALL {
            assert_eq!(
                m.hmac(b"key", &[b"ab", b"", b"c"]),
                m.hmac(b"key", &[b"abc"])
            );
        }
    }

    #[test]
    fn pbkdf2_matches_rfc_7914_vector() {
        // RFC 7914 section 11: PBKDF2-HMAC-SHA256 (P="passwd", S="salt", c=1), first 32 bytes.
        let out = Mechanism::Sha256.salted_password(b"passwd", b"salt", 1);
        let expected = [
            0x55, 0xac, 0x04, 0x6e, 0x56, 0xe3, 0x08, 0x9f, 0xec, 0x16, 0x91, 0xc2, 0x25, 0x44,
            0xb6, 0x05, 0xf9, 0x41, 0x85, 0x21, 0x6d, 0xde, 0x04, 0x65, 0xe6, 0x8b, 0x9d, 0x57,
            0xc2, 0x0d, 0xac, 0xbc,
        ];
        assert_eq!(out, expected);
    }
}
