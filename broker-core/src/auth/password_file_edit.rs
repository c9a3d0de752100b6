//! A password file as `nanomq passwd` edits it: its lines in order, comments and blank lines
//! kept, a user's line replaced where it stands, a new user appended, as `mosquitto_passwd`
//! does; and plain-text passwords hashed in place (`-U`).

use std::fmt;
use std::num::NonZeroU32;

use super::hash_format::HashError;
use super::password_file::{
    Line, MAX_FIELD_LEN, PasswordFileError, PasswordFileErrorKind, parse_lines, utf8_text,
};
use super::password_hash::{HashAlgorithm, PasswordHash, hash_password};

/// The lines of a password file, editable.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PasswordFileEditor {
    lines: Vec<EditLine>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum EditLine {
    /// A comment or a blank line, as written.
    Other(String),
    /// A user's line. `raw` is the line as read, written back unchanged until the entry is.
    Entry {
        username: String,
        secret: String,
        raw: Option<String>,
    },
}

/// Why a user name cannot go into a password file: Mosquitto (and this reader) would read the
/// line back as something else.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UsernameError {
    /// The empty user name.
    Empty,
    /// Longer than an MQTT string.
    TooLong {
        /// Its length in bytes.
        len: usize,
    },
    /// A `:`, which ends the user name.
    Colon,
    /// A control character (`mosquitto_passwd` refuses them).
    ControlCharacter,
    /// Blanks at either end, which reading trims.
    OuterWhitespace,
    /// A leading `#`, which makes the line a comment.
    LeadingHash,
}

impl fmt::Display for UsernameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Empty => f.write_str("the user name is empty"),
            Self::TooLong { len } => {
                write!(f, "the user name has {len} bytes (at most {MAX_FIELD_LEN})")
            }
            Self::Colon => f.write_str("the user name must not contain the ':' character"),
            Self::ControlCharacter => {
                f.write_str("the user name must not contain control characters")
            }
            Self::OuterWhitespace => f.write_str("the user name must not start or end with blanks"),
            Self::LeadingHash => f.write_str("the user name must not start with '#'"),
        }
    }
}

impl std::error::Error for UsernameError {}

/// Checks that `username` reads back as itself from a password file line.
pub fn check_username(username: &str) -> Result<(), UsernameError> {
    if username.is_empty() {
        Err(UsernameError::Empty)
    } else if username.len() > MAX_FIELD_LEN {
        Err(UsernameError::TooLong {
            len: username.len(),
        })
    } else if username.contains(':') {
        Err(UsernameError::Colon)
    } else if username.chars().any(char::is_control) {
        Err(UsernameError::ControlCharacter)
    } else if username.trim() != username {
        Err(UsernameError::OuterWhitespace)
    } else if username.starts_with('#') {
        Err(UsernameError::LeadingHash)
    } else {
        Ok(())
    }
}

impl PasswordFileEditor {
    /// An empty file (`-c`).
    pub fn new() -> Self {
        Self::default()
    }

    /// Reads a file's lines. Only their structure is checked (`username:secret`, no user
    /// twice): a secret may be a plain-text password, for [`Self::hash_plain_passwords`].
    pub fn parse(text: &str) -> Result<Self, PasswordFileError> {
        let lines = parse_lines(text)?
            .into_iter()
            .map(|(_, line)| match line {
                Line::Other(raw) => EditLine::Other(raw.to_owned()),
                Line::Entry {
                    raw,
                    username,
                    secret,
                } => EditLine::Entry {
                    username: username.to_owned(),
                    secret: secret.to_owned(),
                    raw: Some(raw.to_owned()),
                },
            })
            .collect();
        Ok(Self { lines })
    }

    /// As [`Self::parse`], from the file's bytes (the error names a line that is not UTF-8).
    pub fn parse_bytes(bytes: &[u8]) -> Result<Self, PasswordFileError> {
        Self::parse(utf8_text(bytes)?)
    }

    /// Whether `username` has a line.
    pub fn contains(&self, username: &str) -> bool {
        self.entry(username).is_some()
    }

    /// The user names, in file order.
    pub fn usernames(&self) -> impl Iterator<Item = &str> {
        self.lines.iter().filter_map(|line| match line {
            EditLine::Entry { username, .. } => Some(username.as_str()),
            EditLine::Other(_) => None,
        })
    }

    /// Gives `username` the hash `hash` (as [`hash_password`] writes it): their line is
    /// replaced where it stands, or a line is appended for a new user.
    pub fn set_hash(&mut self, username: &str, hash: String) -> Result<(), UsernameError> {
        check_username(username)?;
        match self.entry(username) {
            Some(index) => {
                if let Some(line) = self.lines.get_mut(index) {
                    *line = EditLine::Entry {
                        username: username.to_owned(),
                        secret: hash,
                        raw: None,
                    };
                }
            }
            None => self.lines.push(EditLine::Entry {
                username: username.to_owned(),
                secret: hash,
                raw: None,
            }),
        }
        Ok(())
    }

    /// Removes `username`'s line; false if they had none.
    pub fn remove(&mut self, username: &str) -> bool {
        match self.entry(username) {
            Some(index) => {
                self.lines.remove(index);
                true
            }
            None => false,
        }
    }

    /// Hashes every password that is not already a hash (`-U`), in place; returns how many.
    ///
    /// `mosquitto_passwd -U` hashes every line, so running it twice, or on a file that is
    /// already hashed, makes every password unusable. Here a line that already holds a hash
    /// Mosquitto reads is left as it is, so `-U` can be run again safely.
    pub fn hash_plain_passwords(
        &mut self,
        algorithm: HashAlgorithm,
        iterations: Option<NonZeroU32>,
    ) -> Result<usize, HashError> {
        let mut hashed = 0;
        for line in &mut self.lines {
            if let EditLine::Entry { secret, raw, .. } = line
                && PasswordHash::parse(secret).is_err()
            {
                *secret = hash_password(algorithm, secret.as_bytes(), iterations)?;
                *raw = None;
                hashed += 1;
            }
        }
        Ok(hashed)
    }

    /// Checks that every line would be read by [`super::PasswordFile::parse`]: the first
    /// secret that is not a hash is the error.
    pub fn check_hashes(&self) -> Result<(), PasswordFileError> {
        for (index, line) in self.lines.iter().enumerate() {
            if let EditLine::Entry { secret, .. } = line {
                PasswordHash::parse(secret).map_err(|why| PasswordFileError {
                    line: index + 1,
                    kind: PasswordFileErrorKind::BadHash(why),
                })?;
            }
        }
        Ok(())
    }

    fn entry(&self, username: &str) -> Option<usize> {
        self.lines
            .iter()
            .position(|line| matches!(line, EditLine::Entry { username: u, .. } if u == username))
    }
}

/// The file's text: one line each, `\n`-terminated; unchanged lines as they were read.
impl fmt::Display for PasswordFileEditor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for line in &self.lines {
            match line {
                EditLine::Other(raw) | EditLine::Entry { raw: Some(raw), .. } => {
                    writeln!(f, "{raw}")?
                }
                EditLine::Entry {
                    username,
                    secret,
                    raw: None,
                } => writeln!(f, "{username}:{secret}")?,
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

    use super::super::password_file::{PasswordCheck, PasswordFile};
    use super::*;

    const FAST: Option<NonZeroU32> = NonZeroU32::new(2);

    fn hash(password: &str) -> String {
        hash_password(HashAlgorithm::Sha512Pbkdf2, password.as_bytes(), FAST).unwrap()
    }

    #[test]
    fn edits_keep_line_order_comments_and_untouched_lines() {
        let bob = hash("b");
        let text = format!(
            "# staff\nalice:{a}\n\n  bob :{bob}  \n# end\n",
            a = hash("a")
        );
        let mut editor = PasswordFileEditor::parse(&text).unwrap();
        // Untouched, it writes back what it read (but CRLF, which becomes LF).
        assert_eq!(editor.to_string(), text);

        let alice = hash("a2");
        editor.set_hash("alice", alice.clone()).unwrap();
        editor.set_hash("carol", hash("c")).unwrap();
        let written = editor.to_string();
        let lines: Vec<&str> = written.lines().collect();
        assert_eq!(lines[0], "# staff");
        assert_eq!(lines[1], format!("alice:{alice}"));
        assert_eq!(
            lines[3],
            format!("  bob :{bob}  "),
            "an untouched line is kept as written"
        );
        assert_eq!(lines[4], "# end");
        assert!(
            lines[5].starts_with("carol:$7$2$"),
            "a new user goes at the end"
        );

        let file = PasswordFile::parse(&written).unwrap();
        assert_eq!(file.check("alice", b"a2"), PasswordCheck::Match);
        assert_eq!(file.check("alice", b"a"), PasswordCheck::Mismatch);
        assert_eq!(file.check("bob", b"b"), PasswordCheck::Match);
        assert_eq!(file.check("carol", b"c"), PasswordCheck::Match);

        assert!(editor.remove("bob"));
        assert!(!editor.remove("bob"));
        assert_eq!(editor.usernames().collect::<Vec<_>>(), ["alice", "carol"]);
        assert!(!editor.to_string().contains("bob"));
    }

    #[test]
    fn hashing_plain_passwords_leaves_hashes_alone_and_can_run_twice() {
        let dave = hash("d");
        let text = format!("# plain\nalice:first\nbob : $ecret \ndave:{dave}\n");
        let mut editor = PasswordFileEditor::parse(&text).unwrap();
        assert!(
            PasswordFile::parse(&text).is_err(),
            "plain text is not a password file"
        );
        assert!(editor.check_hashes().is_err());
        assert_eq!(
            editor
                .hash_plain_passwords(HashAlgorithm::Sha512Pbkdf2, FAST)
                .unwrap(),
            2
        );
        editor.check_hashes().unwrap();
        let once = editor.to_string();
        assert!(once.contains(&format!("dave:{dave}")), "{once}");
        assert_eq!(
            editor
                .hash_plain_passwords(HashAlgorithm::Sha512Pbkdf2, FAST)
                .unwrap(),
            0
        );
        assert_eq!(editor.to_string(), once);
        let file = PasswordFile::parse(&once).unwrap();
        assert_eq!(file.check("alice", b"first"), PasswordCheck::Match);
        assert_eq!(file.check("bob", b"$ecret"), PasswordCheck::Match);
        assert_eq!(file.check("dave", b"d"), PasswordCheck::Match);
    }

    #[test]
    fn user_names_that_would_read_back_differently_are_refused() {
        let mut editor = PasswordFileEditor::new();
        for (name, error) in [
            ("", UsernameError::Empty),
            ("a:b", UsernameError::Colon),
            ("a\tb", UsernameError::ControlCharacter),
            (" a", UsernameError::OuterWhitespace),
            ("a ", UsernameError::OuterWhitespace),
            ("#a", UsernameError::LeadingHash),
        ] {
            assert_eq!(editor.set_hash(name, hash("x")), Err(error), "{name:?}");
        }
        assert!(matches!(
            check_username(&"u".repeat(MAX_FIELD_LEN + 1)),
            Err(UsernameError::TooLong { .. })
        ));
        editor.set_hash("a b#c", hash("x")).unwrap();
        editor.set_hash("émile", hash("y")).unwrap();
        let file = PasswordFile::parse(&editor.to_string()).unwrap();
        assert_eq!(file.check("a b#c", b"x"), PasswordCheck::Match);
        assert_eq!(file.check("émile", b"y"), PasswordCheck::Match);
    }

    #[test]
    fn a_structurally_bad_line_is_refused_with_its_number() {
        let error = PasswordFileEditor::parse("a:x\n\nnocolon\n").unwrap_err();
        assert_eq!(error.line, 3);
        assert_eq!(error.kind, PasswordFileErrorKind::NoSeparator);
        let error = PasswordFileEditor::parse_bytes(b"a:x\n\xff:y\n").unwrap_err();
        assert_eq!(error.line, 2);
    }
}
