//! Mosquitto's password file (`password_file`), read unchanged, and the check of a CONNECT's
//! user name and password against it.
//!
//! One `username:hash` per line, the hash in one of the formats of `password_hash`. As
//! Mosquitto reads it: blanks around the user name and the hash are ignored, blank lines
//! are skipped, and so are comments (a line whose first non-blank character is `#`).
//! Where Mosquitto would skip a line silently or keep the first of two entries for one user
//! (2.0), this reader refuses the file with the line and the problem: a password file that
//! does not say what its author meant should stop the broker, not let a user in, or out, by
//! surprise.
//!
//! Checking is synchronous and deliberately slow (PBKDF2, Argon2): callers run it off the
//! async workers.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

use super::hash_format::HashError;
use super::password_hash::{Cost, PasswordHash, default_decoy};

/// The longest user name (and password) Mosquitto takes: an MQTT string's length.
pub(crate) const MAX_FIELD_LEN: usize = 65_535;

/// A password file, read and decoded: every user's hash.
#[derive(Debug, Clone)]
pub struct PasswordFile {
    users: HashMap<String, PasswordHash>,
    /// Verified in place of a user that does not exist, so that an unknown user name takes as
    /// long to refuse as a wrong password: shaped as the most common hash of the file.
    decoy: PasswordHash,
}

/// The outcome of [`PasswordFile::check`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PasswordCheck {
    /// The user exists and the password is theirs.
    Match,
    /// The user exists and the password is not theirs.
    Mismatch,
    /// No such user (the time taken was that of a wrong password).
    UnknownUser,
}

/// A line of a password file that cannot be read, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PasswordFileError {
    /// The line, counted from 1.
    pub line: usize,
    /// What is wrong with it.
    pub kind: PasswordFileErrorKind,
}

/// What is wrong with a line of a password file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PasswordFileErrorKind {
    /// The line is not UTF-8 (user names are MQTT strings).
    NotUtf8,
    /// No `:` between user name and hash.
    NoSeparator,
    /// Nothing before the `:`.
    EmptyUsername,
    /// A user name longer than an MQTT string can be.
    UsernameTooLong {
        /// Its length in bytes.
        len: usize,
    },
    /// Nothing after the `:`.
    NoPassword,
    /// A second `:` (no hash has one).
    ExtraField,
    /// The user already has a line.
    DuplicateUser {
        /// The user name.
        username: String,
        /// The line that has it first.
        first_line: usize,
    },
    /// The text after the `:` is not a hash Mosquitto writes.
    BadHash(HashError),
}

impl fmt::Display for PasswordFileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: ", self.line)?;
        match &self.kind {
            PasswordFileErrorKind::NotUtf8 => f.write_str("not UTF-8"),
            PasswordFileErrorKind::NoSeparator => {
                f.write_str("no `:` between the user name and the password hash")
            }
            PasswordFileErrorKind::EmptyUsername => f.write_str("no user name before the `:`"),
            PasswordFileErrorKind::UsernameTooLong { len } => {
                write!(f, "a user name of {len} bytes (at most {MAX_FIELD_LEN})")
            }
            PasswordFileErrorKind::NoPassword => f.write_str("no password hash after the `:`"),
            PasswordFileErrorKind::ExtraField => {
                f.write_str("a second `:` (a line is `username:hash`)")
            }
            PasswordFileErrorKind::DuplicateUser {
                username,
                first_line,
            } => write!(f, "user `{username}` again (first on line {first_line})"),
            PasswordFileErrorKind::BadHash(why) => write!(f, "{why}"),
        }
    }
}

impl std::error::Error for PasswordFileError {}

/// Why [`PasswordFile::load`] failed.
#[derive(Debug)]
pub enum LoadPasswordFileError {
    /// The file could not be read.
    Io {
        /// The file.
        path: PathBuf,
        /// What the system said.
        source: io::Error,
    },
    /// A line of the file is bad.
    Invalid {
        /// The file.
        path: PathBuf,
        /// The line and its problem.
        error: PasswordFileError,
    },
}

impl fmt::Display for LoadPasswordFileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Io { path, source } => {
                write!(
                    f,
                    "cannot read the password file {}: {source}",
                    path.display()
                )
            }
            Self::Invalid { path, error } => {
                write!(f, "password file {}: {error}", path.display())
            }
        }
    }
}

impl std::error::Error for LoadPasswordFileError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Io { source, .. } => Some(source),
            Self::Invalid { error, .. } => Some(error),
        }
    }
}

/// One line of a password file, its structure checked, its hash not yet decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Line<'a> {
    /// Blank, or a comment: kept as written.
    Other(&'a str),
    /// `username:secret`, both trimmed; the secret is a hash, or a plain password before
    /// `-U` hashes it.
    Entry {
        /// The line as written.
        raw: &'a str,
        username: &'a str,
        secret: &'a str,
    },
}

/// Splits `text` into lines and checks each one's structure: a `:`, a user name, a secret, no
/// user twice. Returns each line with its number (from 1).
pub(crate) fn parse_lines(text: &str) -> Result<Vec<(usize, Line<'_>)>, PasswordFileError> {
    let mut lines = Vec::new();
    let mut first_line_of: HashMap<&str, usize> = HashMap::new();
    for (index, raw) in text.lines().enumerate() {
        let number = index + 1;
        let error = |kind| PasswordFileError { line: number, kind };
        let trimmed = raw.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            lines.push((number, Line::Other(raw)));
            continue;
        }
        let Some((username, secret)) = trimmed.split_once(':') else {
            return Err(error(PasswordFileErrorKind::NoSeparator));
        };
        let username = username.trim();
        let secret = secret.trim();
        if username.is_empty() {
            return Err(error(PasswordFileErrorKind::EmptyUsername));
        }
        if username.len() > MAX_FIELD_LEN {
            return Err(error(PasswordFileErrorKind::UsernameTooLong {
                len: username.len(),
            }));
        }
        if secret.is_empty() {
            return Err(error(PasswordFileErrorKind::NoPassword));
        }
        if secret.contains(':') {
            return Err(error(PasswordFileErrorKind::ExtraField));
        }
        match first_line_of.entry(username) {
            Entry::Occupied(first) => {
                return Err(error(PasswordFileErrorKind::DuplicateUser {
                    username: username.to_owned(),
                    first_line: *first.get(),
                }));
            }
            Entry::Vacant(slot) => {
                slot.insert(number);
            }
        }
        lines.push((
            number,
            Line::Entry {
                raw,
                username,
                secret,
            },
        ));
    }
    Ok(lines)
}

/// `bytes` as text, or the error naming the first line that is not UTF-8.
pub(crate) fn utf8_text(bytes: &[u8]) -> Result<&str, PasswordFileError> {
    std::str::from_utf8(bytes).map_err(|e| {
        let valid = bytes.get(..e.valid_up_to()).unwrap_or_default();
        PasswordFileError {
            line: 1 + valid.iter().filter(|&&b| b == b'\n').count(),
            kind: PasswordFileErrorKind::NotUtf8,
        }
    })
}

impl PasswordFile {
    /// Reads a password file's text. Every line must be blank, a comment, or `username:hash`
    /// with a hash Mosquitto writes; the first that is not is the error.
    pub fn parse(text: &str) -> Result<Self, PasswordFileError> {
        let lines = parse_lines(text)?;
        let mut users = HashMap::with_capacity(lines.len());
        // How many hashes of each cost, and the first of them: the decoy takes the shape of
        // the most common, so that most users' refusals look like an unknown user's.
        let mut costs: HashMap<Cost, (usize, usize)> = HashMap::new();
        for (number, line) in lines {
            let Line::Entry {
                username, secret, ..
            } = line
            else {
                continue;
            };
            let hash = PasswordHash::parse(secret).map_err(|why| PasswordFileError {
                line: number,
                kind: PasswordFileErrorKind::BadHash(why),
            })?;
            costs.entry(hash.cost()).or_insert((0, number)).0 += 1;
            users.insert(username.to_owned(), hash);
        }
        let decoy = costs
            .iter()
            // Most users first; among equals, the earliest line, so the choice is the same
            // on every load of the same file.
            .max_by_key(|(_, (count, first))| (*count, std::cmp::Reverse(*first)))
            .and_then(|(cost, _)| users.values().find(|hash| hash.cost() == *cost))
            .map_or_else(default_decoy, PasswordHash::decoy);
        Ok(Self { users, decoy })
    }

    /// Reads the password file at `path` (see [`PasswordFile::parse`]).
    pub fn load(path: &Path) -> Result<Self, LoadPasswordFileError> {
        let bytes = std::fs::read(path).map_err(|source| LoadPasswordFileError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        utf8_text(&bytes)
            .and_then(Self::parse)
            .map_err(|error| LoadPasswordFileError::Invalid {
                path: path.to_path_buf(),
                error,
            })
    }

    /// Checks `password` for `username`. Slow by design (the file's hash function, e.g.
    /// PBKDF2 or Argon2): run it off the async workers. An unknown user costs one
    /// verification too (of a decoy shaped as the file's most common hash), so the time taken
    /// does not tell whether a user exists.
    pub fn check(&self, username: &str, password: &[u8]) -> PasswordCheck {
        match self.users.get(username) {
            Some(hash) if hash.verify(password) => PasswordCheck::Match,
            Some(_) => PasswordCheck::Mismatch,
            None => {
                // The result is meaningless; only the work matters, so keep the optimiser
                // from dropping it.
                std::hint::black_box(self.decoy.verify(std::hint::black_box(password)));
                PasswordCheck::UnknownUser
            }
        }
    }

    /// How many users the file has.
    pub fn len(&self) -> usize {
        self.users.len()
    }

    /// Whether the file has no users.
    pub fn is_empty(&self) -> bool {
        self.users.is_empty()
    }

    /// Whether `username` has a line.
    pub fn contains(&self, username: &str) -> bool {
        self.users.contains_key(username)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

    use super::*;

    /// Written by Mosquitto 2.0.11's `mosquitto_passwd` on this machine: alice's password is
    /// `correct horse battery staple`, bob's `s3cr3t` (1,000 iterations), dave's `legacy`
    /// (`-H sha512`).
    const MOSQUITTO_FILE: &str = "\
alice:$7$101$viiFLYqpHefeNxE1$wkB3Rr6bqKUeomieN9MbbNrfmpcDUv1Zl/mNNCVu/ybmDIZnTEGiyiH6uZmi9zsljYmhHLI5b8heo0gWruOVmA==
bob:$7$1000$7xkS1M/jnt61QofQ$8EzZ/RURliz/3J6j6E9X5hUY3k3Mt2z5uh30ZRFRN89eR+r3272O1rDsMgR+CXl04cM/kAVLZifEg0SMViDRtA==
dave:$6$v4W8o4Tbz77l3i4J$hBVgQVPhxDdkSvpjRak2KRd192t2LTl83bimRCnCq9TwHTaFYNmBefyauFcyFhzX8SQoKpqH+Q8fSqiIXv6zjA==
";

    const ARGON2ID: &str = "$argon2id$v=19$m=1024,t=2,p=1$c2FsdHNhbHRzYWx0MTI$pPCmMEPVsX2oN4v6OtMihOjkv0smriTfmiWnuPzwkVY";

    #[test]
    fn checks_users_of_a_file_mosquitto_wrote() {
        let file = PasswordFile::parse(MOSQUITTO_FILE).unwrap();
        assert_eq!(file.len(), 3);
        assert_eq!(
            file.check("alice", b"correct horse battery staple"),
            PasswordCheck::Match
        );
        assert_eq!(file.check("alice", b"s3cr3t"), PasswordCheck::Mismatch);
        assert_eq!(file.check("bob", b"s3cr3t"), PasswordCheck::Match);
        assert_eq!(file.check("dave", b"legacy"), PasswordCheck::Match);
        assert_eq!(file.check("dave", b""), PasswordCheck::Mismatch);
        assert_eq!(file.check("carol", b"s3cr3t"), PasswordCheck::UnknownUser);
        // User names are exact: no case folding, no trimming of what the client sent.
        assert_eq!(
            file.check("Alice", b"correct horse battery staple"),
            PasswordCheck::UnknownUser
        );
        assert_eq!(file.check("bob ", b"s3cr3t"), PasswordCheck::UnknownUser);
    }

    #[test]
    fn comments_blank_lines_blanks_and_crlf_as_mosquitto_reads_them() {
        let text = format!(
            "# users of the edge broker\n\n   \n\t# indented comment\n  erin : {ARGON2ID}  \r\n\r\n"
        );
        let file = PasswordFile::parse(&text).unwrap();
        assert_eq!(file.len(), 1);
        assert_eq!(file.check("erin", b"hunter2"), PasswordCheck::Match);
        assert_eq!(file.check("erin", b"hunter3"), PasswordCheck::Mismatch);
        assert!(PasswordFile::parse("").unwrap().is_empty());
        assert_eq!(
            PasswordFile::parse("# nobody\n").unwrap().check("x", b"y"),
            PasswordCheck::UnknownUser
        );
    }

    #[test]
    fn a_bad_line_is_an_error_naming_it() {
        let error = |text: &str| PasswordFile::parse(text).unwrap_err();
        let good = MOSQUITTO_FILE.lines().next().unwrap();
        let with_bad_third_line = |bad: &str| format!("# comment\n{good}\n{bad}\n");
        let cases = [
            ("mallory", PasswordFileErrorKind::NoSeparator),
            (":$7$101$x$y", PasswordFileErrorKind::EmptyUsername),
            ("mallory:", PasswordFileErrorKind::NoPassword),
            ("mallory:   ", PasswordFileErrorKind::NoPassword),
            ("mallory:$6$a$b:c", PasswordFileErrorKind::ExtraField),
            (
                "mallory:secret",
                PasswordFileErrorKind::BadHash(HashError::PlainText),
            ),
            (
                "mallory:$1$abc$def",
                PasswordFileErrorKind::BadHash(HashError::UnknownScheme("1".into())),
            ),
            (
                "alice:$7$101$AQIDBAUGBwgJCgsM$AA==",
                PasswordFileErrorKind::DuplicateUser {
                    username: "alice".into(),
                    first_line: 2,
                },
            ),
        ];
        for (bad, kind) in cases {
            let got = error(&with_bad_third_line(bad));
            assert_eq!(got, PasswordFileError { line: 3, kind }, "{bad}");
            assert!(got.to_string().starts_with("line 3: "), "{got}");
        }
        let long = format!("{}:{ARGON2ID}", "u".repeat(MAX_FIELD_LEN + 1));
        assert_eq!(
            error(&long).kind,
            PasswordFileErrorKind::UsernameTooLong {
                len: MAX_FIELD_LEN + 1
            }
        );
        assert_eq!(
            error("bob:$7$101$AQIDBAUGBwgJCgsM$AA==").to_string(),
            "line 1: a hash of 1 bytes (allowed: 64 bytes)"
        );
    }

    #[test]
    fn a_line_that_is_not_utf8_is_named() {
        let bytes = b"# ok\nalice:$7$x\nb\xffb:$7$y\n";
        assert_eq!(
            utf8_text(bytes).unwrap_err(),
            PasswordFileError {
                line: 3,
                kind: PasswordFileErrorKind::NotUtf8
            }
        );
    }

    #[test]
    fn load_names_the_file() {
        let dir = std::env::temp_dir().join(format!("nanomq-pwfile-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("passwd");
        std::fs::write(&path, format!("{MOSQUITTO_FILE}oops\n")).unwrap();
        let error = PasswordFile::load(&path).unwrap_err();
        assert!(
            matches!(&error, LoadPasswordFileError::Invalid { error, .. } if error.line == 4),
            "{error}"
        );
        assert!(
            error.to_string().contains(&path.display().to_string()),
            "{error}"
        );
        std::fs::write(&path, MOSQUITTO_FILE).unwrap();
        assert_eq!(PasswordFile::load(&path).unwrap().len(), 3);
        let missing = PasswordFile::load(&dir.join("missing")).unwrap_err();
        assert!(
            matches!(missing, LoadPasswordFileError::Io { .. }),
            "{missing}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn the_decoy_has_the_shape_of_the_most_common_hash() {
        let file = PasswordFile::parse(MOSQUITTO_FILE).unwrap();
        // Three costs, one user each: the first line's wins.
        let alice = PasswordHash::parse(
            MOSQUITTO_FILE
                .lines()
                .next()
                .unwrap()
                .split_once(':')
                .unwrap()
                .1,
        )
        .unwrap();
        assert_eq!(file.decoy.cost(), alice.cost());
        let text = format!("{MOSQUITTO_FILE}erin:{ARGON2ID}\nfrank:{ARGON2ID}\n");
        let file = PasswordFile::parse(&text).unwrap();
        assert_eq!(
            file.decoy.cost(),
            PasswordHash::parse(ARGON2ID).unwrap().cost()
        );
        assert!(!file.decoy.verify(b"hunter2"));
        let empty = PasswordFile::parse("").unwrap();
        assert_eq!(empty.decoy.cost(), default_decoy().cost());
    }
}
