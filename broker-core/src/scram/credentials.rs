//! SCRAM credentials: what the broker keeps of a password (salt, StoredKey, ServerKey,
//! iteration count, never the password), how they are derived from one, and the credentials
//! file that holds them (its format is in the [module doc](super)).

use std::collections::HashMap;
use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;

use super::Mechanism;

/// The fewest PBKDF2 iterations accepted, in a file or when deriving (RFC 7677 section 4:
/// "at least 4096").
pub const MIN_ITERATIONS: u32 = 4096;

/// The iterations used when none are asked for.
pub const DEFAULT_ITERATIONS: u32 = MIN_ITERATIONS;

/// The length of a salt made by [`ScramCredentials::derive`], in bytes.
pub const SALT_LEN: usize = 16;

/// One user's credentials for one mechanism.
#[derive(Clone, PartialEq, Eq)]
pub struct ScramCredentials {
    pub(super) mechanism: Mechanism,
    pub(super) iterations: u32,
    pub(super) salt: Vec<u8>,
    pub(super) stored_key: Vec<u8>,
    pub(super) server_key: Vec<u8>,
}

impl fmt::Debug for ScramCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The keys stay out of logs: StoredKey lets anyone who has it pass as the user to
        // another server with the same credentials.
        f.debug_struct("ScramCredentials")
            .field("mechanism", &self.mechanism)
            .field("iterations", &self.iterations)
            .finish_non_exhaustive()
    }
}

/// Why credentials cannot be made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CredentialError {
    /// The caller asked for fewer than [`MIN_ITERATIONS`].
    TooFewIterations(u32),
    /// The caller gave an empty salt.
    EmptySalt,
    /// The operating system's random number generator failed (no salt could be made).
    Randomness(String),
    /// This user name cannot be written in a credentials file.
    Username(&'static str),
}

impl fmt::Display for CredentialError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TooFewIterations(n) => {
                write!(f, "{n} iterations is too few (at least {MIN_ITERATIONS})")
            }
            Self::EmptySalt => f.write_str("the salt is empty"),
            Self::Randomness(e) => write!(f, "the system's random number generator failed: {e}"),
            Self::Username(why) => write!(f, "invalid user name: {why}"),
        }
    }
}

impl std::error::Error for CredentialError {}

impl ScramCredentials {
    /// Derives credentials from `password` with a fresh random salt. This runs PBKDF2
    /// (`iterations` rounds): it is meant for making a credentials file, not for login.
    ///
    /// The password is used as its UTF-8 bytes, without SASLprep (see the module doc).
    pub fn derive(
        mechanism: Mechanism,
        password: &str,
        iterations: u32,
    ) -> Result<Self, CredentialError> {
        let mut salt = [0; SALT_LEN];
        getrandom::fill(&mut salt).map_err(|e| CredentialError::Randomness(e.to_string()))?;
        Self::derive_with_salt(mechanism, password.as_bytes(), &salt, iterations)
    }

    /// Derives credentials from `password` and `salt` (RFC 5802 section 3: SaltedPassword =
    /// Hi(password, salt, i), ClientKey = HMAC(SaltedPassword, "Client Key"), StoredKey =
    /// H(ClientKey), ServerKey = HMAC(SaltedPassword, "Server Key")).
    pub fn derive_with_salt(
        mechanism: Mechanism,
        password: &[u8],
        salt: &[u8],
        iterations: u32,
    ) -> Result<Self, CredentialError> {
        if iterations < MIN_ITERATIONS {
            return Err(CredentialError::TooFewIterations(iterations));
        }
        if salt.is_empty() {
            return Err(CredentialError::EmptySalt);
        }
        let salted = mechanism.salted_password(password, salt, iterations);
        let client_key = mechanism.hmac(&salted, &[b"Client Key"]);
        Ok(Self {
            mechanism,
            iterations,
            salt: salt.to_vec(),
            stored_key: mechanism.hash(&client_key),
            server_key: mechanism.hmac(&salted, &[b"Server Key"]),
        })
    }

    /// The mechanism these credentials are for.
    pub fn mechanism(&self) -> Mechanism {
        self.mechanism
    }

    /// The PBKDF2 iteration count.
    pub fn iterations(&self) -> u32 {
        self.iterations
    }

    /// The credentials as they follow `user:` in a credentials file:
    /// `$scram-sha-256$<iterations>$<salt>$<StoredKey>$<ServerKey>`, base64 with padding.
    pub fn to_entry(&self) -> String {
        format!(
            "${}${}${}${}${}",
            self.mechanism.file_tag(),
            self.iterations,
            B64.encode(&self.salt),
            B64.encode(&self.stored_key),
            B64.encode(&self.server_key)
        )
    }

    /// Reads what [`Self::to_entry`] writes.
    pub fn from_entry(entry: &str) -> Result<Self, EntryError> {
        let mut fields = entry.split('$');
        let (Some(""), Some(tag), Some(iterations), Some(salt), Some(stored), Some(server), None) = (
            fields.next(),
            fields.next(),
            fields.next(),
            fields.next(),
            fields.next(),
            fields.next(),
            fields.next(),
        ) else {
            return Err(EntryError::Shape);
        };
        let mechanism = Mechanism::from_file_tag(tag)
            .ok_or_else(|| EntryError::UnknownMechanism(tag.to_owned()))?;
        let iterations: u32 = iterations
            .parse()
            .map_err(|_| EntryError::Iterations(iterations.to_owned()))?;
        if iterations < MIN_ITERATIONS {
            return Err(EntryError::TooFewIterations(iterations));
        }
        let salt = decode(salt, "salt")?;
        if salt.is_empty() {
            return Err(EntryError::EmptySalt);
        }
        let key = |text: &str, field: &'static str| {
            let key = decode(text, field)?;
            if key.len() == mechanism.hash_len() {
                Ok(key)
            } else {
                Err(EntryError::KeyLength {
                    field,
                    expected: mechanism.hash_len(),
                    found: key.len(),
                })
            }
        };
        Ok(Self {
            mechanism,
            iterations,
            salt,
            stored_key: key(stored, "StoredKey")?,
            server_key: key(server, "ServerKey")?,
        })
    }
}

fn decode(text: &str, field: &'static str) -> Result<Vec<u8>, EntryError> {
    B64.decode(text).map_err(|_| EntryError::Base64(field))
}

/// What is wrong with one line of a credentials file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntryError {
    /// No `user:` before the credentials.
    NoUsername,
    /// Not `$<mechanism>$<iterations>$<salt>$<StoredKey>$<ServerKey>`.
    Shape,
    /// A mechanism other than `scram-sha-256` or `scram-sha-512`.
    UnknownMechanism(String),
    /// The iteration count is not a number.
    Iterations(String),
    /// Fewer iterations than [`MIN_ITERATIONS`].
    TooFewIterations(u32),
    /// This field is not valid base64 (standard alphabet, with padding).
    Base64(&'static str),
    /// The salt is empty.
    EmptySalt,
    /// A key of the wrong length for the mechanism's hash.
    KeyLength {
        /// `StoredKey` or `ServerKey`.
        field: &'static str,
        /// The hash's length.
        expected: usize,
        /// The key's.
        found: usize,
    },
    /// The user already has credentials for this mechanism, on this earlier line.
    Duplicate {
        /// The mechanism.
        mechanism: Mechanism,
        /// The line of the first credentials.
        first_line: usize,
    },
}

impl fmt::Display for EntryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NoUsername => f.write_str("expected user:$scram-sha-256$... (no user name)"),
            Self::Shape => f.write_str(
                "expected $scram-sha-256$<iterations>$<salt>$<StoredKey>$<ServerKey> after the user name",
            ),
            Self::UnknownMechanism(tag) => write!(
                f,
                "unknown mechanism {tag:?} (expected scram-sha-256 or scram-sha-512)"
            ),
            Self::Iterations(text) => write!(f, "iteration count {text:?} is not a number"),
            Self::TooFewIterations(n) => {
                write!(f, "{n} iterations is too few (at least {MIN_ITERATIONS})")
            }
            Self::Base64(field) => write!(f, "{field} is not valid base64"),
            Self::EmptySalt => f.write_str("the salt is empty"),
            Self::KeyLength {
                field,
                expected,
                found,
            } => write!(f, "{field} is {found} bytes, expected {expected}"),
            Self::Duplicate {
                mechanism,
                first_line,
            } => write!(
                f,
                "this user already has {mechanism} credentials on line {first_line}"
            ),
        }
    }
}

/// A credentials file that cannot be read: the line (from 1) and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CredentialFileError {
    /// The line, counting from 1.
    pub line: usize,
    /// What is wrong with it.
    pub error: EntryError,
}

impl fmt::Display for CredentialFileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.error)
    }
}

impl std::error::Error for CredentialFileError {}

/// Everyone's credentials, by mechanism and user name.
#[derive(Debug, Default, Clone)]
pub struct CredentialStore {
    users: HashMap<Mechanism, HashMap<String, Stored>>,
    /// How many users have each (mechanism, iterations, salt length): an unknown user is
    /// given the most common, so that its challenge looks like a real one.
    shapes: HashMap<(Mechanism, u32, usize), usize>,
}

#[derive(Debug, Clone)]
struct Stored {
    credentials: ScramCredentials,
    /// Where it came from (0 when inserted by code), for duplicate errors.
    line: usize,
}

impl CredentialStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Reads a credentials file (format in the [module doc](super)).
    pub fn parse(text: &str) -> Result<Self, CredentialFileError> {
        let mut store = Self::new();
        for (index, line) in text.lines().enumerate() {
            let number = index + 1;
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let at = |error| CredentialFileError {
                line: number,
                error,
            };
            // The credentials hold no ':', so a user name may.
            let Some((user, entry)) = line.rsplit_once(':') else {
                return Err(at(EntryError::NoUsername));
            };
            if user.is_empty() {
                return Err(at(EntryError::NoUsername));
            }
            let credentials = ScramCredentials::from_entry(entry).map_err(at)?;
            let mechanism = credentials.mechanism;
            if let Some(first) = store.users.get(&mechanism).and_then(|u| u.get(user)) {
                return Err(at(EntryError::Duplicate {
                    mechanism,
                    first_line: first.line,
                }));
            }
            store.add(user, credentials, number);
        }
        Ok(store)
    }

    /// Sets `username`'s credentials for their mechanism, replacing any it had. The name
    /// must be one a file can hold: not empty, one line, no space at either end, not
    /// starting with `#`.
    pub fn insert(
        &mut self,
        username: &str,
        credentials: ScramCredentials,
    ) -> Result<(), CredentialError> {
        let why = if username.is_empty() {
            Some("empty")
        } else if username.contains(['\n', '\r']) {
            Some("a line break")
        } else if username.trim() != username {
            Some("space at an end")
        } else if username.starts_with('#') {
            Some("starts with #")
        } else {
            None
        };
        if let Some(why) = why {
            return Err(CredentialError::Username(why));
        }
        self.add(username, credentials, 0);
        Ok(())
    }

    fn add(&mut self, username: &str, credentials: ScramCredentials, line: usize) {
        let shape = |c: &ScramCredentials| (c.mechanism, c.iterations, c.salt.len());
        *self.shapes.entry(shape(&credentials)).or_default() += 1;
        let users = self.users.entry(credentials.mechanism).or_default();
        let stored = Stored { credentials, line };
        if let Some(old) = users.insert(username.to_owned(), stored) {
            let old = shape(&old.credentials);
            if let Some(count) = self.shapes.get_mut(&old) {
                *count = count.saturating_sub(1);
            }
        }
    }

    /// Removes every credential of `username`; whether it had any.
    pub fn remove(&mut self, username: &str) -> bool {
        let mut removed = false;
        for users in self.users.values_mut() {
            if let Some(old) = users.remove(username) {
                let c = &old.credentials;
                if let Some(count) = self
                    .shapes
                    .get_mut(&(c.mechanism, c.iterations, c.salt.len()))
                {
                    *count = count.saturating_sub(1);
                }
                removed = true;
            }
        }
        removed
    }

    /// `username`'s credentials for `mechanism`.
    pub fn get(&self, mechanism: Mechanism, username: &str) -> Option<&ScramCredentials> {
        self.users
            .get(&mechanism)?
            .get(username)
            .map(|s| &s.credentials)
    }

    /// How many (user, mechanism) credentials the store holds.
    pub fn len(&self) -> usize {
        self.users.values().map(HashMap::len).sum()
    }

    /// Whether the store is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The file's text for every credential, one line each, sorted by user and mechanism.
    pub fn to_file(&self) -> String {
        let mut all: Vec<(&String, &Stored)> = self.users.values().flatten().collect();
        all.sort_by(|a, b| (a.0, a.1.credentials.mechanism).cmp(&(b.0, b.1.credentials.mechanism)));
        let mut out = String::new();
        for (user, stored) in all {
            out.push_str(user);
            out.push(':');
            out.push_str(&stored.credentials.to_entry());
            out.push('\n');
        }
        out
    }

    /// The iterations and salt length most of `mechanism`'s users have (ties: the fewest
    /// iterations, then the shortest salt), or the defaults.
    pub(super) fn common_shape(&self, mechanism: Mechanism) -> (u32, usize) {
        self.shapes
            .iter()
            .filter(|((m, _, _), count)| *m == mechanism && **count > 0)
            .max_by(|(a, ca), (b, cb)| ca.cmp(cb).then((b.1, b.2).cmp(&(a.1, a.2))))
            .map_or((DEFAULT_ITERATIONS, SALT_LEN), |((_, i, s), _)| (*i, *s))
    }
}

#[cfg(test)]
#[path = "credentials_tests.rs"]
mod tests;
