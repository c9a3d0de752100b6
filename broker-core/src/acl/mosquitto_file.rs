//! Mosquitto's `acl_file`, read unchanged, and its meaning as an ordered list of rules.
//!
//! The syntax (Mosquitto 2.x, `src/security_default.c`): `user <name>` starts the block of
//! that user name (the rest of the line, spaces included); `topic [read|write|readwrite|deny]
//! <topic>` adds a rule to the current block (readwrite when the access is left out; the
//! topic is the rest of the line); `topic` lines before the first `user` line are for
//! clients without a user name only; `pattern [access] <topic>` is for every client, with
//! `%u` and `%c` standing for the user name and client id when they are a whole level.
//! Lines starting with `#` are comments. Anything else is an error naming the line, as in
//! Mosquitto 2 (1.x skipped unknown lines). Beyond Mosquitto, which reads spaces only and
//! comments only in the first column, tabs separate words too and a comment may be indented.
//!
//! The checks, as Mosquitto's: a client's own block first, then the patterns; within each,
//! a `deny` rule that matches refuses whatever comes after it ("deny wins"), and otherwise
//! a matching rule with the access asked for allows (a `write` rule says nothing about
//! reading). Between the two, a client whose user name or client id contains `+` or `#` is
//! refused everything the patterns would have decided (Mosquitto does so when there are
//! patterns). What none decides goes to `no_match` (Mosquitto's own answer is deny).
//! Access: `write` is PUBLISH; `read` is SUBSCRIBE and messages delivered.

use std::fmt;

use mqtt_codec::InvalidTopic;

use super::RuleRef;
use super::compile::{Applies, FlatRule};
use super::matcher::{PUBLISH, READ, SUBSCRIBE};
use super::rule::{TopicSpec, Who};

/// A parsed `acl_file`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MosquittoAcl {
    lines: Vec<Line>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Line {
    number: usize,
    /// `None` for a `pattern` line; for a `topic` line, the block's user (`Some(None)`
    /// before the first `user` line).
    user: Option<Option<String>>,
    access: Access,
    topic: TopicSpec,
}

/// What a line grants.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Access {
    Read,
    Write,
    ReadWrite,
    Deny,
}

impl MosquittoAcl {
    /// Parses the text of an `acl_file`.
    pub fn parse(text: &str) -> Result<Self, AclFileError> {
        let mut lines = Vec::new();
        let mut user: Option<String> = None;
        for (i, raw) in text.lines().enumerate() {
            let number = i + 1;
            let error = |kind| AclFileError { line: number, kind };
            let line = raw.trim_matches(is_blank).trim_end();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (keyword, rest) = split_word(line);
            match keyword {
                "topic" | "pattern" => {
                    let (first, remainder) = split_word(rest);
                    if first.is_empty() {
                        return Err(error(AclFileErrorKind::MissingTopic));
                    }
                    let (access, topic) = if remainder.is_empty() {
                        // One word: the topic, read and write (so `topic read` is the
                        // topic "read", as in Mosquitto).
                        (Access::ReadWrite, first)
                    } else {
                        let access = match first {
                            "read" => Access::Read,
                            "write" => Access::Write,
                            "readwrite" => Access::ReadWrite,
                            "deny" => Access::Deny,
                            other => {
                                return Err(error(AclFileErrorKind::InvalidAccess(
                                    other.to_owned(),
                                )));
                            }
                        };
                        (access, remainder)
                    };
                    let pattern = keyword == "pattern";
                    let topic = TopicSpec::mosquitto(topic, pattern).map_err(|reason| {
                        error(AclFileErrorKind::InvalidTopic {
                            topic: topic.to_owned(),
                            reason,
                        })
                    })?;
                    lines.push(Line {
                        number,
                        user: (!pattern).then(|| user.clone()),
                        access,
                        topic,
                    });
                }
                "user" => {
                    if rest.is_empty() {
                        return Err(error(AclFileErrorKind::MissingUsername));
                    }
                    user = Some(rest.to_owned());
                }
                other => return Err(error(AclFileErrorKind::UnknownKeyword(other.to_owned()))),
            }
        }
        Ok(Self { lines })
    }

    /// How many `topic` and `pattern` lines it has.
    pub fn len(&self) -> usize {
        self.lines.len()
    }

    /// Whether it has no `topic` or `pattern` line.
    pub fn is_empty(&self) -> bool {
        self.lines.is_empty()
    }

    /// The file's meaning as ordered rules: every block's deny lines, then its allow lines
    /// (blocks are for disjoint clients, so one list holds them all); then, if there are
    /// patterns, the refusal of unsafe names; then the deny patterns and the others.
    pub(crate) fn flatten(&self) -> Vec<FlatRule> {
        let flat = |line: &Line| {
            let actions = match line.access {
                Access::Read => SUBSCRIBE | READ,
                Access::Write => PUBLISH,
                Access::ReadWrite | Access::Deny => PUBLISH | SUBSCRIBE | READ,
            };
            let who = match &line.user {
                None => Who::All,
                Some(None) => Who::Anonymous,
                Some(Some(name)) => Who::Username(name.clone()),
            };
            FlatRule {
                origin: RuleRef::AclFile { line: line.number },
                allow: line.access != Access::Deny,
                actions,
                who: Applies::Who(who),
                topics: Some(vec![line.topic.clone()]),
            }
        };
        let (topics, patterns): (Vec<&Line>, Vec<&Line>) =
            self.lines.iter().partition(|l| l.user.is_some());
        let denies_first = |lines: &[&Line]| {
            let (deny, allow): (Vec<&Line>, Vec<&Line>) =
                lines.iter().partition(|l| l.access == Access::Deny);
            deny.into_iter().chain(allow).map(flat).collect::<Vec<_>>()
        };
        let mut rules = denies_first(&topics);
        if !patterns.is_empty() {
            rules.push(FlatRule {
                origin: RuleRef::UnsafeName,
                allow: false,
                actions: PUBLISH | SUBSCRIBE | READ,
                who: Applies::UnsafeName,
                topics: None,
            });
        }
        rules.extend(denies_first(&patterns));
        rules
    }
}

fn is_blank(c: char) -> bool {
    c == ' ' || c == '\t'
}

/// The first word of `s` and the rest, without the blanks around them.
fn split_word(s: &str) -> (&str, &str) {
    let s = s.trim_start_matches(is_blank);
    match s.find(is_blank) {
        Some(i) => {
            let (word, rest) = s.split_at(i);
            (word, rest.trim_matches(is_blank))
        }
        None => (s, ""),
    }
}

/// A line of an `acl_file` that cannot be read (the file's author's to fix).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AclFileError {
    /// The line, counted from 1.
    pub line: usize,
    /// What is wrong with it.
    pub kind: AclFileErrorKind,
}

/// What is wrong with a line of an `acl_file`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AclFileErrorKind {
    /// The line starts with a word that is not `topic`, `pattern` or `user`.
    UnknownKeyword(String),
    /// `topic` or `pattern` without a topic.
    MissingTopic,
    /// `user` without a name.
    MissingUsername,
    /// The access is not `read`, `write`, `readwrite` or `deny`.
    InvalidAccess(String),
    /// The topic is not a valid topic filter.
    InvalidTopic {
        /// The topic.
        topic: String,
        /// What is wrong with it.
        reason: InvalidTopic,
    },
}

impl fmt::Display for AclFileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "acl_file line {}: ", self.line)?;
        match &self.kind {
            AclFileErrorKind::UnknownKeyword(k) => {
                write!(f, "\"{k}\" is not topic, pattern or user")
            }
            AclFileErrorKind::MissingTopic => f.write_str("no topic"),
            AclFileErrorKind::MissingUsername => f.write_str("user without a name"),
            AclFileErrorKind::InvalidAccess(a) => {
                write!(f, "access \"{a}\" is not read, write, readwrite or deny")
            }
            AclFileErrorKind::InvalidTopic { topic, reason } => {
                write!(f, "topic \"{topic}\" is not a valid filter: {reason}")
            }
        }
    }
}

impl std::error::Error for AclFileError {}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]

    use super::*;

    fn err(text: &str) -> AclFileError {
        MosquittoAcl::parse(text).unwrap_err()
    }

    #[test]
    fn bad_lines_name_their_number() {
        assert_eq!(
            err("# c\ntopic read a\nfoo bar\n"),
            AclFileError {
                line: 3,
                kind: AclFileErrorKind::UnknownKeyword("foo".into())
            }
        );
        assert_eq!(err("\n\ntopic").line, 3);
        assert_eq!(err("topic").kind, AclFileErrorKind::MissingTopic);
        assert_eq!(err("user  ").kind, AclFileErrorKind::MissingUsername);
        assert_eq!(
            err("topic readonly a/b").kind,
            AclFileErrorKind::InvalidAccess("readonly".into())
        );
        assert!(matches!(
            err("x\n").kind,
            AclFileErrorKind::UnknownKeyword(_)
        ));
        let e = err("user a\npattern write a/#/b");
        assert_eq!(e.line, 2);
        assert!(matches!(e.kind, AclFileErrorKind::InvalidTopic { .. }));
        assert!(e.to_string().starts_with("acl_file line 2: "), "{e}");
    }

    #[test]
    fn words_topics_and_users() {
        let acl = MosquittoAcl::parse(
            "topic read\r\n\ttopic\twrite  a b/c \n  # indented comment\nuser  john smith \ntopic x\n",
        )
        .unwrap();
        let l = &acl.lines;
        assert_eq!(l.len(), 3);
        assert_eq!(
            (l[0].access, l[0].topic.as_str()),
            (Access::ReadWrite, "read")
        );
        assert_eq!(l[0].user, Some(None));
        assert_eq!((l[1].access, l[1].topic.as_str()), (Access::Write, "a b/c"));
        assert_eq!(l[2].user, Some(Some("john smith".into())));
        assert_eq!(l[2].number, 5);
    }
}
