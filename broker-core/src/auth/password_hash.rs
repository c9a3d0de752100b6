//! One password hash of a Mosquitto password file, decoded: verified, and made anew. Its
//! text forms (`$6$`, `$7$`, `$argon2id$`) are read and written in `hash_format`.
//!
//! Verification recomputes the hash and compares it in constant time (`subtle`): how long a
//! wrong password takes says nothing about how much of it was right.

use std::fmt;
use std::num::NonZeroU32;
use std::str::FromStr;

use sha2::{Digest, Sha512};
use subtle::ConstantTimeEq;

use super::hash_format::HashError;

/// The length of a SHA-512 or PBKDF2-HMAC-SHA512 hash in a Mosquitto file.
pub(super) const SHA512_LEN: usize = 64;

/// The salt length Mosquitto before 2.1 writes for `$6$` and `$7$`, and the only one 2.0 reads.
pub(super) const SHORT_SALT_LEN: usize = 12;

/// Mosquitto 2.1's salt length for `$6$`, `$7$` and `$argon2id$`, and its Argon2 hash length.
pub(super) const LONG_SALT_LEN: usize = 64;

/// `mosquitto_passwd`'s default PBKDF2 iteration count (2.0; 2.1 raised it to 1,000).
pub const DEFAULT_PBKDF2_ITERATIONS: u32 = 101;

/// Mosquitto 2.1's Argon2id parameters (OWASP's first recommended set): 46 MiB, one pass,
/// one lane.
const ARGON2_M_COST_KIB: u32 = 47_104;
const ARGON2_T_COST: NonZeroU32 = NonZeroU32::MIN;
const ARGON2_P_COST: u32 = 1;

/// [`DEFAULT_PBKDF2_ITERATIONS`], as the type the hash keeps.
const PBKDF2_ITERATIONS: NonZeroU32 = NonZeroU32::MIN.saturating_add(DEFAULT_PBKDF2_ITERATIONS - 1);

/// A hash function `hash_password` can write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HashAlgorithm {
    /// `$7$`: PBKDF2-HMAC-SHA512 (`-H sha512-pbkdf2`, the default).
    Sha512Pbkdf2,
    /// `$argon2id$` (`-H argon2id`).
    Argon2id,
}

impl HashAlgorithm {
    /// The name `mosquitto_passwd -H` takes.
    pub fn name(self) -> &'static str {
        match self {
            Self::Sha512Pbkdf2 => "sha512-pbkdf2",
            Self::Argon2id => "argon2id",
        }
    }
}

impl FromStr for HashAlgorithm {
    type Err = HashError;

    fn from_str(name: &str) -> Result<Self, HashError> {
        match name {
            "sha512-pbkdf2" => Ok(Self::Sha512Pbkdf2),
            "argon2id" => Ok(Self::Argon2id),
            other => Err(HashError::UnknownAlgorithm(other.to_owned())),
        }
    }
}

/// A password hash in one of Mosquitto's formats, decoded.
#[derive(Clone, PartialEq, Eq)]
pub struct PasswordHash(pub(super) Scheme);

#[derive(Clone, PartialEq, Eq)]
pub(super) enum Scheme {
    Sha512 {
        salt: Box<[u8]>,
        hash: [u8; SHA512_LEN],
    },
    Pbkdf2Sha512 {
        iterations: NonZeroU32,
        salt: Box<[u8]>,
        hash: [u8; SHA512_LEN],
    },
    Argon2id {
        version: argon2::Version,
        params: argon2::Params,
        salt: Box<[u8]>,
        hash: Box<[u8]>,
    },
}

/// The cost of a hash's verification, so that a stand-in for an unknown user can cost the
/// same as the users that exist (see `PasswordFile::check`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct Cost {
    scheme: u8,
    rounds: u32,
    memory: u32,
    lanes: u32,
    salt_len: usize,
    hash_len: usize,
}

impl fmt::Debug for PasswordHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The hash itself stays out of logs.
        write!(f, "PasswordHash({:?})", self.cost())
    }
}

impl PasswordHash {
    /// Whether `password` is the one this hash was made from. The comparison takes the same
    /// time wherever the first differing byte is.
    pub fn verify(&self, password: &[u8]) -> bool {
        match &self.0 {
            Scheme::Sha512 { salt, hash } => {
                let computed = Sha512::new()
                    .chain_update(password)
                    .chain_update(salt)
                    .finalize();
                computed.as_slice().ct_eq(hash).into()
            }
            Scheme::Pbkdf2Sha512 {
                iterations,
                salt,
                hash,
            } => {
                let mut computed = [0u8; SHA512_LEN];
                pbkdf2::pbkdf2_hmac::<Sha512>(password, salt, iterations.get(), &mut computed);
                computed.ct_eq(hash).into()
            }
            Scheme::Argon2id {
                version,
                params,
                salt,
                hash,
            } => {
                let argon2 =
                    argon2::Argon2::new(argon2::Algorithm::Argon2id, *version, params.clone());
                let mut computed = vec![0u8; hash.len()];
                // Parsing checked the salt and parameters; only a password longer than 4 GiB
                // could fail here, and that is not the password.
                match argon2.hash_password_into(password, salt, &mut computed) {
                    Ok(()) => computed.as_slice().ct_eq(hash).into(),
                    Err(_) => false,
                }
            }
        }
    }

    /// What verifying against this hash costs.
    pub(crate) fn cost(&self) -> Cost {
        match &self.0 {
            Scheme::Sha512 { salt, hash } => Cost {
                scheme: 6,
                rounds: 1,
                memory: 0,
                lanes: 0,
                salt_len: salt.len(),
                hash_len: hash.len(),
            },
            Scheme::Pbkdf2Sha512 {
                iterations,
                salt,
                hash,
            } => Cost {
                scheme: 7,
                rounds: iterations.get(),
                memory: 0,
                lanes: 0,
                salt_len: salt.len(),
                hash_len: hash.len(),
            },
            Scheme::Argon2id {
                params, salt, hash, ..
            } => Cost {
                scheme: 8,
                rounds: params.t_cost(),
                memory: params.m_cost(),
                lanes: params.p_cost(),
                salt_len: salt.len(),
                hash_len: hash.len(),
            },
        }
    }

    /// A hash of the same scheme and cost that no password matches: an all-zero hash, which
    /// would take a preimage of SHA-512 (or of Argon2) to hit. The salt is zeros too; a
    /// decoy's result is never used, only the time it takes.
    pub(crate) fn decoy(&self) -> Self {
        let mut decoy = self.clone();
        match &mut decoy.0 {
            Scheme::Sha512 { salt, hash } | Scheme::Pbkdf2Sha512 { salt, hash, .. } => {
                salt.fill(0);
                hash.fill(0);
            }
            Scheme::Argon2id { salt, hash, .. } => {
                salt.fill(0);
                hash.fill(0);
            }
        }
        decoy
    }

    /// A `$7$` hash of `password` with a fresh 12-byte salt.
    fn new_pbkdf2(password: &[u8], iterations: NonZeroU32) -> Result<Self, HashError> {
        // 12 bytes, not 2.1's 64: Mosquitto 2.0, still what distributions ship, reads no
        // other length.
        let mut salt = vec![0u8; SHORT_SALT_LEN].into_boxed_slice();
        fill_random(&mut salt)?;
        let mut hash = [0u8; SHA512_LEN];
        pbkdf2::pbkdf2_hmac::<Sha512>(password, &salt, iterations.get(), &mut hash);
        Ok(Self(Scheme::Pbkdf2Sha512 {
            iterations,
            salt,
            hash,
        }))
    }

    /// An `$argon2id$` hash of `password` with Mosquitto 2.1's parameters, `passes` passes.
    fn new_argon2id(password: &[u8], passes: NonZeroU32) -> Result<Self, HashError> {
        let params = argon2::Params::new(
            ARGON2_M_COST_KIB,
            passes.get(),
            ARGON2_P_COST,
            Some(LONG_SALT_LEN),
        )
        .map_err(|e| HashError::Argon2Params(e.to_string()))?;
        let mut salt = vec![0u8; LONG_SALT_LEN].into_boxed_slice();
        fill_random(&mut salt)?;
        let mut hash = vec![0u8; LONG_SALT_LEN].into_boxed_slice();
        let version = argon2::Version::V0x13;
        argon2::Argon2::new(argon2::Algorithm::Argon2id, version, params.clone())
            .hash_password_into(password, &salt, &mut hash)
            .map_err(|e| HashError::Argon2Params(e.to_string()))?;
        Ok(Self(Scheme::Argon2id {
            version,
            params,
            salt,
            hash,
        }))
    }
}

/// Hashes `password` with `algorithm`, with a fresh random salt, in the form a password file
/// line takes after `username:`. `iterations` is PBKDF2's iteration count (default
/// [`DEFAULT_PBKDF2_ITERATIONS`]) or Argon2's number of passes (default 1).
pub fn hash_password(
    algorithm: HashAlgorithm,
    password: &[u8],
    iterations: Option<NonZeroU32>,
) -> Result<String, HashError> {
    let hash = match algorithm {
        HashAlgorithm::Sha512Pbkdf2 => {
            PasswordHash::new_pbkdf2(password, iterations.unwrap_or(PBKDF2_ITERATIONS))?
        }
        HashAlgorithm::Argon2id => {
            PasswordHash::new_argon2id(password, iterations.unwrap_or(ARGON2_T_COST))?
        }
    };
    Ok(hash.to_string())
}

/// The decoy of a file with no users: shaped as what `nanomq passwd` writes by default.
pub(crate) fn default_decoy() -> PasswordHash {
    PasswordHash(Scheme::Pbkdf2Sha512 {
        iterations: PBKDF2_ITERATIONS,
        salt: vec![0u8; SHORT_SALT_LEN].into_boxed_slice(),
        hash: [0u8; SHA512_LEN],
    })
}

fn fill_random(bytes: &mut [u8]) -> Result<(), HashError> {
    getrandom::fill(bytes).map_err(|e| HashError::NoRandomness(e.to_string()))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

    use super::*;

    /// Written by Mosquitto 2.0.11's `mosquitto_passwd -c -b FILE alice 'correct horse
    /// battery staple'` on this machine (101 iterations, 12-byte salt).
    const MOSQUITTO_PBKDF2: &str = "$7$101$viiFLYqpHefeNxE1$wkB3Rr6bqKUeomieN9MbbNrfmpcDUv1Zl/mNNCVu/ybmDIZnTEGiyiH6uZmi9zsljYmhHLI5b8heo0gWruOVmA==";

    /// `mosquitto_passwd -b -I 1000 FILE bob s3cr3t`.
    const MOSQUITTO_PBKDF2_1000: &str = "$7$1000$7xkS1M/jnt61QofQ$8EzZ/RURliz/3J6j6E9X5hUY3k3Mt2z5uh30ZRFRN89eR+r3272O1rDsMgR+CXl04cM/kAVLZifEg0SMViDRtA==";

    /// `mosquitto_passwd -H sha512 -b FILE dave legacy`.
    const MOSQUITTO_SHA512: &str = "$6$v4W8o4Tbz77l3i4J$hBVgQVPhxDdkSvpjRak2KRd192t2LTl83bimRCnCq9TwHTaFYNmBefyauFcyFhzX8SQoKpqH+Q8fSqiIXv6zjA==";

    /// `mosquitto_passwd -b FILE carol ''`: the empty password.
    const MOSQUITTO_EMPTY: &str = "$7$101$fJKgjJpuo/LnAlPz$jlqUNwMAVFet4Dc/0x/QCWjVucx+EqIOO6ktRQjBjwnN3rjqqhPn5b9tttmi5PGFaNZ19gisbh4nrUmzFg/19A==";

    /// `mosquitto_passwd -b FILE émile pässwörd`: UTF-8 in the password.
    const MOSQUITTO_UTF8: &str = "$7$101$47JX5gM8t31Ii35p$rEaV+XYhw86uKrXoMgpZcWkEBgjTlZbMQLj6F6YPk7ruSODRBSTGXOh8ECjSWUvFiPkBYlNLw2JyOtz8fOjDLg==";

    /// Python: salt = bytes(range(100, 164)) (64 bytes, as Mosquitto 2.1 writes),
    /// `hashlib.pbkdf2_hmac("sha512", b"long-salt pass", salt, 1000, 64)`.
    const PYTHON_PBKDF2_SALT64: &str = "$7$1000$ZGVmZ2hpamtsbW5vcHFyc3R1dnd4eXp7fH1+f4CBgoOEhYaHiImKi4yNjo+QkZKTlJWWl5iZmpucnZ6foKGiow==$5xIP43qjuesyGHievONQCtWNbgs0de3ADehhvyr/MbvD56rTMdfSqNqO0Lh1EQ7jf6LGP8wV/yEF/9lDhcBJkw==";

    /// Python: salt = bytes(range(1, 13)), `hashlib.sha512(b"legacy-pass" + salt)`.
    const PYTHON_SHA512_SALT12: &str = "$6$AQIDBAUGBwgJCgsM$UAwb1Oacw0yS+ZqbMLhyVcOymOanCyt+oaUuvWVaPLYqm1tp/OO+VIgIDQbNQU+UWFXYj4VGVsNKwCY54wxr5A==";

    /// Python: salt = bytes(range(100, 164)), `hashlib.sha512(b"legacy-pass" + salt)`.
    const PYTHON_SHA512_SALT64: &str = "$6$ZGVmZ2hpamtsbW5vcHFyc3R1dnd4eXp7fH1+f4CBgoOEhYaHiImKi4yNjo+QkZKTlJWWl5iZmpucnZ6foKGiow==$CuUa8r3q/rXMVaNOHQlM7K7HsRvysGTl6Fvd/crua5sFCTv+it4Ct92TXFuxgUXkJhI8HMvYtPhadFdxeMS5lA==";

    /// The Argon2 reference implementation (Debian's `argon2` 0~20171227):
    /// `echo -n hunter2 | argon2 saltsaltsalt12 -id -t 2 -m 10 -p 1 -l 32 -e`.
    const REFERENCE_ARGON2ID: &str = "$argon2id$v=19$m=1024,t=2,p=1$c2FsdHNhbHRzYWx0MTI$pPCmMEPVsX2oN4v6OtMihOjkv0smriTfmiWnuPzwkVY";

    /// `echo -n 'correct horse' | argon2 mosquitto-salt-sixteen -id -t 1 -m 12 -p 2 -l 64 -e`:
    /// two lanes, a 64-byte hash.
    const REFERENCE_ARGON2ID_P2: &str = "$argon2id$v=19$m=4096,t=1,p=2$bW9zcXVpdHRvLXNhbHQtc2l4dGVlbg$OEmO5yvzytvDCLtSzuArY+KF6lbycMCigHC6ly8+jl/PgMkNU8TIazAHFX/DzVwITijME3RTr2noVC3VwsLUiw";

    /// `echo -n 'mosquitto 2.1 style' | argon2 <"s" x 64> -id -t 1 -m 10 -p 1 -l 64 -e`: a
    /// 64-byte salt and hash as Mosquitto 2.1 writes them (with less memory).
    const REFERENCE_ARGON2ID_SALT64: &str = "$argon2id$v=19$m=1024,t=1,p=1$c3Nzc3Nzc3Nzc3Nzc3Nzc3Nzc3Nzc3Nzc3Nzc3Nzc3Nzc3Nzc3Nzc3Nzc3Nzc3Nzc3Nzc3Nzc3Nzc3Nzc3Nzcw$rdTnwweYHkvRnsTym68jqSjhqCTltSZnTJJNUT2hSHsYncswQY/g8Cdq2BWlFBjvem4df31Uekj4LVELSTnRwA";

    fn check(encoded: &str, right: &[u8], wrong: &[u8]) {
        let hash = PasswordHash::parse(encoded).unwrap();
        assert!(hash.verify(right), "{encoded} should match {right:?}");
        assert!(!hash.verify(wrong), "{encoded} should not match {wrong:?}");
        // Written back exactly as read: the tool rewrites lines it does not change verbatim,
        // but a parsed hash must also say what it is.
        assert_eq!(hash.to_string(), encoded);
    }

    #[test]
    fn pbkdf2_hashes_written_by_mosquitto_passwd() {
        check(
            MOSQUITTO_PBKDF2,
            b"correct horse battery staple",
            b"correct horse battery stapl",
        );
        check(MOSQUITTO_PBKDF2_1000, b"s3cr3t", b"s3cr3T");
        check(MOSQUITTO_EMPTY, b"", b" ");
        check(MOSQUITTO_UTF8, "pässwörd".as_bytes(), b"passwort");
    }

    #[test]
    fn pbkdf2_with_a_64_byte_salt() {
        check(PYTHON_PBKDF2_SALT64, b"long-salt pass", b"long-salt pas");
    }

    #[test]
    fn sha512_hashes_of_both_salt_lengths() {
        check(MOSQUITTO_SHA512, b"legacy", b"Legacy");
        check(PYTHON_SHA512_SALT12, b"legacy-pass", b"legacy-pass ");
        check(PYTHON_SHA512_SALT64, b"legacy-pass", b"");
    }

    #[test]
    fn argon2id_phc_strings_of_the_reference_implementation() {
        check(REFERENCE_ARGON2ID, b"hunter2", b"hunter3");
        check(REFERENCE_ARGON2ID_P2, b"correct horse", b"correct horse ");
        check(
            REFERENCE_ARGON2ID_SALT64,
            b"mosquitto 2.1 style",
            b"mosquitto 2.0 style",
        );
    }

    #[test]
    fn new_hashes_verify_and_read_back() {
        for (algorithm, prefix) in [
            (HashAlgorithm::Sha512Pbkdf2, "$7$101$"),
            (HashAlgorithm::Argon2id, "$argon2id$v=19$m=47104,t=1,p=1$"),
        ] {
            let encoded = hash_password(algorithm, b"pa55word", None).unwrap();
            assert!(encoded.starts_with(prefix), "{encoded}");
            let hash = PasswordHash::parse(&encoded).unwrap();
            assert!(hash.verify(b"pa55word"));
            assert!(!hash.verify(b"pa55wore"));
            assert_eq!(hash.to_string(), encoded);
        }
        let encoded = hash_password(HashAlgorithm::Sha512Pbkdf2, b"x", NonZeroU32::new(7)).unwrap();
        assert!(encoded.starts_with("$7$7$"), "{encoded}");
        // A 12-byte salt, which Mosquitto 2.0 requires: 16 base64 characters.
        assert_eq!(encoded.split('$').nth(3).unwrap().len(), 16, "{encoded}");
    }

    #[test]
    fn two_hashes_of_one_password_differ_by_their_salt() {
        let a = hash_password(HashAlgorithm::Sha512Pbkdf2, b"same", None).unwrap();
        let b = hash_password(HashAlgorithm::Sha512Pbkdf2, b"same", None).unwrap();
        assert_ne!(a, b);
    }

    #[test]
    fn a_decoy_costs_the_same_and_matches_nothing() {
        let hash = PasswordHash::parse(MOSQUITTO_PBKDF2_1000).unwrap();
        let decoy = hash.decoy();
        assert_eq!(decoy.cost(), hash.cost());
        assert_ne!(decoy, hash);
        assert!(!decoy.verify(b"s3cr3t"));
    }

    #[test]
    fn the_debug_form_hides_the_hash() {
        let hash = PasswordHash::parse(MOSQUITTO_PBKDF2).unwrap();
        let debug = format!("{hash:?}");
        assert!(!debug.contains("viiFLYqp"), "{debug}");
        assert!(debug.contains("101"), "{debug}");
    }

    #[test]
    fn algorithm_names_are_those_of_mosquitto_passwd() {
        assert_eq!("sha512-pbkdf2".parse(), Ok(HashAlgorithm::Sha512Pbkdf2));
        assert_eq!("argon2id".parse(), Ok(HashAlgorithm::Argon2id));
        assert!("sha512".parse::<HashAlgorithm>().is_err());
        assert_eq!(HashAlgorithm::Argon2id.name(), "argon2id");
    }
}
