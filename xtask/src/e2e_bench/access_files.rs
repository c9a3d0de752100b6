//! The files of the access-control scenarios ([`super::access`]): 1,000 ACL rules in
//! nanomq's `[[auth.acl]]` model and their Mosquitto `acl_file` equivalent, and a password
//! file of 100,000 users in Mosquitto's format (`$7$`, PBKDF2-SHA512 at Mosquitto 2.0's
//! default of 101 iterations), which both brokers read; and what each [`Access`] setting adds
//! to each broker's configuration.
//!
//! The rules are a fleet's: per-user and per-client rules for other clients, revoked
//! clients, networks refused subscriptions, and placeholder rules (`users/${username}/#`,
//! `devices/${clientid}/#`). The benchmark clients' topics (`bench/...`) are allowed by the
//! last rule, one for every client with a user name, and `no_match = "deny"`: a check that
//! no rule allowed would lose messages, which the run's accounting shows.
//!
//! The password file is written once by `nanomq passwd -U` (as `mosquitto_passwd -U` hashes a
//! file of `user:password` lines) and kept under `target/bench/access/`: hashing 100,000
//! passwords takes a while.

use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{Context, Result, bail};

use super::broker::{Extra, toml_string};

/// Rules in the ACL.
pub(crate) const ACL_RULES: usize = 1_000;

/// Users in the password file.
pub(crate) const USERS: usize = 100_000;

/// PBKDF2 iterations of the password file's hashes: `mosquitto_passwd` 2.0's default.
pub(crate) const ITERATIONS: u32 = 101;

/// The `nanomq bench` flags that make client `%i` user `user-%i` of the password file.
pub(crate) const CREDENTIALS: [&str; 4] = ["-u", "user-%i", "-P", "pw-%i"];

/// What access control a broker runs with in a scenario.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Access {
    /// None: the baseline.
    None,
    /// The [`ACL_RULES`] rules.
    Acl,
    /// The password file of [`USERS`] users.
    Passwords,
}

impl Access {
    /// Its name in tables and scenario names.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Acl => "1,000 ACL rules",
            Self::Passwords => "100,000 users ($7$)",
        }
    }

    /// What it adds to each broker's configuration, with `files`.
    pub(crate) fn extra(self, files: &Files) -> Extra {
        let mut extra = Extra::default();
        if self == Self::None {
            return extra;
        }
        extra.nanomq.push_str("\n[auth]\n");
        if self == Self::Passwords {
            let _ = writeln!(
                extra.nanomq,
                "password_file = {}",
                toml_string(&files.passwd)
            );
            let _ = writeln!(extra.mosquitto, "password_file {}", files.passwd.display());
        }
        if self == Self::Acl {
            extra.nanomq.push_str("no_match = \"deny\"\n\n");
            extra.nanomq.push_str(&files.rules);
            let _ = writeln!(
                extra.mosquitto,
                "acl_file {}",
                files.mosquitto_acl.display()
            );
        }
        extra
    }
}

/// The files, ready.
#[derive(Debug, Clone)]
pub(crate) struct Files {
    /// The `[[auth.acl]]` tables.
    pub(crate) rules: String,
    /// Mosquitto's `acl_file`.
    pub(crate) mosquitto_acl: PathBuf,
    /// The password file.
    pub(crate) passwd: PathBuf,
}

/// Writes the files into `dir` (the password file only if no earlier run left one), with
/// `nanomq` (the release binary) to hash the passwords.
pub(crate) fn prepare(nanomq: &Path, dir: &Path) -> Result<Files> {
    fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let mosquitto_acl = dir.join("mosquitto.acl");
    fs::write(&mosquitto_acl, mosquitto_acl_file())
        .with_context(|| format!("cannot write {}", mosquitto_acl.display()))?;
    let passwd = dir.join(format!("passwd-{USERS}-{ITERATIONS}"));
    if !is_complete(&passwd) {
        write_password_file(nanomq, &passwd)?;
    }
    Ok(Files {
        rules: nanomq_rules(),
        mosquitto_acl,
        passwd,
    })
}

/// Whether `path` holds the [`USERS`] users, hashed, as [`write_password_file`] leaves it.
fn is_complete(path: &Path) -> bool {
    let Ok(text) = fs::read_to_string(path) else {
        return false;
    };
    let hashed = format!(":$7${ITERATIONS}$");
    text.lines().count() == USERS
        && text.lines().all(|line| line.contains(&hashed))
        && text.starts_with("user-0:")
}

/// `user-I:pw-I` for each user, hashed by `nanomq passwd -U` into `path`.
fn write_password_file(nanomq: &Path, path: &Path) -> Result<()> {
    let started = Instant::now();
    println!("==> writing a password file of {USERS} users ($7$, {ITERATIONS} iterations)");
    let plain = path.with_extension("plain");
    let mut text = String::with_capacity(USERS * 20);
    for i in 0..USERS {
        let _ = writeln!(text, "user-{i}:pw-{i}");
    }
    fs::write(&plain, text).with_context(|| format!("cannot write {}", plain.display()))?;
    let output = Command::new(nanomq)
        .args(["passwd", "-U", "-I", &ITERATIONS.to_string()])
        .arg(&plain)
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("cannot run {} passwd", nanomq.display()))?;
    if !output.status.success() {
        bail!(
            "nanomq passwd -U failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    fs::rename(&plain, path)
        .with_context(|| format!("cannot rename {} to {}", plain.display(), path.display()))?;
    if !is_complete(path) {
        bail!("{}: not {USERS} hashed users", path.display());
    }
    println!(
        "    {} in {:.1} s",
        path.display(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// How many rules of each kind: per-user, per-client, revoked clients, refused networks;
/// the placeholder and catch-all rules make up the rest of [`ACL_RULES`].
const USER_RULES: usize = 600;
/// See [`USER_RULES`].
const CLIENT_RULES: usize = 300;
/// See [`USER_RULES`].
const REVOKED_RULES: usize = 50;
/// See [`USER_RULES`].
const NETWORK_RULES: usize = 45;

/// The last rules, after the per-client ones: placeholders, `$SYS` and `#` refused, and the
/// benchmark clients' topics. `(permit, action, who, topics)`.
const LAST_RULES: [(&str, &str, &str, &str); 5] = [
    (
        "allow",
        "pubsub",
        "username = \"${username}\"",
        "[\"users/${username}/#\"]",
    ),
    (
        "allow",
        "pubsub",
        "all = true",
        "[\"devices/${clientid}/#\"]",
    ),
    (
        "allow",
        "subscribe",
        "username = \"${username}\"",
        "[\"broadcast/#\"]",
    ),
    ("deny", "subscribe", "all = true", "[\"$SYS/#\", \"eq #\"]"),
    (
        "allow",
        "pubsub",
        "username = \"${username}\"",
        "[\"bench/#\"]",
    ),
];

/// The [`ACL_RULES`] `[[auth.acl]]` tables.
pub(crate) fn nanomq_rules() -> String {
    let mut out = String::new();
    let mut rule = |permit: &str, action: &str, who: &str, topics: Option<String>| {
        let _ = write!(
            out,
            "[[auth.acl]]\npermit = \"{permit}\"\naction = \"{action}\"\n{who}\n"
        );
        if let Some(topics) = topics {
            let _ = writeln!(out, "topics = {topics}");
        }
        out.push('\n');
    };
    for n in 0..USER_RULES {
        rule(
            "allow",
            "pubsub",
            &format!("username = \"fleet-{n}\""),
            Some(format!("[\"fleet/{n}/#\", \"alerts/{n}\"]")),
        );
    }
    for n in 0..CLIENT_RULES {
        rule(
            "allow",
            "publish",
            &format!("clientid = \"sensor-{n}\""),
            Some(format!(
                "[\"sensors/{n}/telemetry\", \"sensors/{n}/status\"]"
            )),
        );
    }
    for n in 0..REVOKED_RULES {
        rule(
            "deny",
            "pubsub",
            &format!("clientid = \"revoked-{n}\""),
            None,
        );
    }
    for n in 0..NETWORK_RULES {
        rule(
            "deny",
            "subscribe",
            &format!("ipaddr = \"10.{n}.0.0/16\""),
            Some("[\"#\"]".to_owned()),
        );
    }
    for (permit, action, who, topics) in LAST_RULES {
        rule(permit, action, who, Some(topics.to_owned()));
    }
    out
}

/// Mosquitto's equivalent of [`nanomq_rules`]: the per-user rules as `user` blocks, the
/// per-client ones too (an acl_file has no per-client blocks), the placeholders as `pattern`
/// lines (`%u`, `%c`); the networks have no equivalent, and Mosquitto refuses `$SYS` and
/// unlisted topics by itself.
pub(crate) fn mosquitto_acl_file() -> String {
    let mut out = String::from(
        "# the benchmark's: every client\n\
         pattern readwrite users/%u/#\n\
         pattern readwrite devices/%c/#\n\
         pattern read broadcast/#\n\
         pattern readwrite bench/#\n\n",
    );
    for n in 0..USER_RULES {
        let _ = writeln!(
            out,
            "user fleet-{n}\ntopic readwrite fleet/{n}/#\ntopic readwrite alerts/{n}\n"
        );
    }
    for n in 0..CLIENT_RULES {
        let _ = writeln!(
            out,
            "user sensor-{n}\ntopic write sensors/{n}/telemetry\ntopic write sensors/{n}/status\n"
        );
    }
    for n in 0..REVOKED_RULES {
        let _ = writeln!(out, "user revoked-{n}\ntopic deny #\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn there_are_a_thousand_rules_and_the_bench_topics_have_theirs_last() {
        let rules = nanomq_rules();
        assert_eq!(rules.matches("[[auth.acl]]").count(), ACL_RULES);
        let last = rules.rsplit("[[auth.acl]]").next().unwrap_or_default();
        assert!(
            last.contains("permit = \"allow\"")
                && last.contains("username = \"${username}\"")
                && last.contains("topics = [\"bench/#\"]"),
            "{last}"
        );
        // Other clients' rules, by user name and client id, and placeholders.
        assert!(rules.contains("username = \"fleet-599\"\ntopics = [\"fleet/599/#\""));
        assert!(rules.contains("clientid = \"sensor-0\""));
        assert!(rules.contains("topics = [\"devices/${clientid}/#\"]"));
        // The benchmark clients are nobody the per-client rules name.
        assert!(!rules.contains("\"user-") && !rules.contains("\"nqb-"));

        let mosquitto = mosquitto_acl_file();
        assert!(mosquitto.contains("pattern readwrite bench/#\n"));
        assert_eq!(
            mosquitto.matches("\nuser ").count(),
            USER_RULES + CLIENT_RULES + REVOKED_RULES
        );
    }

    #[test]
    fn each_setting_configures_both_brokers() {
        let files = Files {
            rules: "[[auth.acl]]\n".to_owned(),
            mosquitto_acl: PathBuf::from("/b/acl"),
            passwd: PathBuf::from("/b/passwd"),
        };
        assert_eq!(Access::None.extra(&files), Extra::default());
        let acl = Access::Acl.extra(&files);
        assert!(
            acl.nanomq
                .contains("[auth]\nno_match = \"deny\"\n\n[[auth.acl]]\n")
        );
        assert!(!acl.nanomq.contains("password_file"));
        assert_eq!(acl.mosquitto, "acl_file /b/acl\n");
        let passwords = Access::Passwords.extra(&files);
        assert_eq!(
            passwords.nanomq,
            "\n[auth]\npassword_file = \"/b/passwd\"\n"
        );
        assert_eq!(passwords.mosquitto, "password_file /b/passwd\n");
    }
}
