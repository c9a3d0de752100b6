//! `nanomq passwd`: writes and updates password files in Mosquitto's format, with
//! `mosquitto_passwd`'s flags, so that a file it writes is read by Mosquitto and by ours.
//!
//! ```text
//! nanomq passwd [-H sha512-pbkdf2|argon2id] [-I iterations] [-c] FILE USER
//! nanomq passwd [-H sha512-pbkdf2|argon2id] [-I iterations] [-c] -b FILE USER PASSWORD
//! nanomq passwd -D FILE USER
//! nanomq passwd [-H ...] [-I ...] -U FILE
//! nanomq passwd --scram sha256|sha512|all [-I iterations] [-c] [-b] FILE USER [PASSWORD]
//! nanomq passwd --scram ... -D FILE USER
//! ```
//!
//! With `--scram` the file is the broker's SCRAM credentials file (`[auth.scram] file`):
//! salt, StoredKey and ServerKey per user and mechanism (RFC 5802), never the password.
//!
//! Where it differs from `mosquitto_passwd`, on purpose: a changed file is written to a new
//! file beside it and renamed over it (a crash leaves the old file or the new, never half of
//! one), keeping the old file's mode and, where allowed, owner; a created file is mode 0600;
//! `-U` leaves lines that already hold a hash alone, so running it twice does no harm; a user
//! name that would read back as something else (leading `#`, blanks at either end) is refused.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufRead, IsTerminal, Write};
use std::num::NonZeroU32;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, anyhow, bail};
use broker_core::scram::{CredentialStore, Mechanism, ScramCredentials};
use broker_core::{HashAlgorithm, PasswordFileEditor, check_username, hash_password};
use clap::Args;

/// SCRAM's iterations unless -I says otherwise: RFC 7677's minimum, as EMQX uses.
const SCRAM_ITERATIONS: u32 = 4096;

/// The longest password `mosquitto_passwd` takes (an MQTT string's length).
const MAX_PASSWORD_LEN: usize = 65_535;

/// What `nanomq passwd --help` adds after the options.
pub(crate) const AFTER_HELP: &str = "\
Examples:
  nanomq passwd -c /etc/nanomq/passwd alice            create the file, ask for alice's password
  nanomq passwd -b /etc/nanomq/passwd bob 's3cr3t'     add or change bob's password
  nanomq passwd -H argon2id /etc/nanomq/passwd carol   carol's password as an Argon2id hash
  nanomq passwd -D /etc/nanomq/passwd bob              delete bob
  nanomq passwd -U /etc/nanomq/passwd                  hash a file of user:password lines

The file is Mosquitto's `password_file`: Mosquitto 2.0 and later read what this writes, and
this reads what mosquitto_passwd writes. Without -b the password is asked twice, from the
terminal (echo off), or read as two lines from standard input when it is not a terminal.
The default hash is PBKDF2-HMAC-SHA512 with 101 iterations, mosquitto_passwd 2.0's default;
-I sets the iterations (for argon2id: the passes, default 1). argon2id needs Mosquitto 2.1 to
read it. A created file is mode 0600; an updated one keeps its mode.

With --scram the file is a SCRAM credentials file ([auth.scram] file) instead: for each
mechanism asked for (sha256, sha512 or all), the salt, StoredKey and ServerKey derived from
the password with PBKDF2 (-I iterations, default and minimum 4096).
  nanomq passwd --scram all -c /etc/nanomq/scram alice";

/// The options of `nanomq passwd` (those of `mosquitto_passwd`).
#[derive(Debug, Args)]
pub(crate) struct PasswdArgs {
    /// Create a new password file; an existing one is overwritten.
    #[arg(short = 'c', conflicts_with_all = ["delete", "update"])]
    create: bool,

    /// Delete the user instead of adding or updating their password.
    #[arg(short = 'D', conflicts_with_all = ["batch", "update"])]
    delete: bool,

    /// Batch mode: the password is the last argument.
    #[arg(short = 'b')]
    batch: bool,

    /// Hash every plain-text password of the file, in place (`user:password` lines).
    #[arg(short = 'U')]
    update: bool,

    /// The hash: sha512-pbkdf2 ($7$) or argon2id ($argon2id$).
    #[arg(
        short = 'H',
        value_name = "ALGORITHM",
        default_value = "sha512-pbkdf2",
        value_parser = parse_algorithm
    )]
    hash: HashAlgorithm,

    /// Write SCRAM credentials for these mechanisms (sha256, sha512 or all) to a SCRAM
    /// credentials file instead of a Mosquitto password file.
    #[arg(long, value_name = "MECHANISMS", value_parser = parse_scram, conflicts_with = "update")]
    scram: Option<ScramMechanisms>,

    /// PBKDF2's iteration count (default 101; with --scram 4096), or Argon2id's passes
    /// (default 1).
    #[arg(short = 'I', value_name = "ITERATIONS")]
    iterations: Option<NonZeroU32>,

    /// The password file.
    #[arg(value_name = "PASSWORDFILE")]
    file: PathBuf,

    /// The user name.
    #[arg(value_name = "USERNAME")]
    username: Option<String>,

    /// The password (with -b only).
    #[arg(value_name = "PASSWORD")]
    password: Option<String>,
}

/// The mechanisms `--scram` names (one value for clap, not a list of values).
#[derive(Debug, Clone)]
struct ScramMechanisms(Vec<Mechanism>);

fn parse_scram(name: &str) -> Result<ScramMechanisms, String> {
    let mechanisms = match name.to_ascii_lowercase().as_str() {
        "sha256" | "scram-sha-256" => vec![Mechanism::Sha256],
        "sha512" | "scram-sha-512" => vec![Mechanism::Sha512],
        "all" => Mechanism::ALL.to_vec(),
        _ => return Err(format!("{name:?}: expected sha256, sha512 or all")),
    };
    Ok(ScramMechanisms(mechanisms))
}

fn parse_algorithm(name: &str) -> Result<HashAlgorithm, String> {
    name.parse().map_err(|e| format!("{e}"))
}

/// What the arguments ask for.
enum Action {
    /// Set (add or change) a user's password; `create` starts from an empty file.
    Set {
        create: bool,
        username: String,
        password: Option<String>,
    },
    Delete {
        username: String,
    },
    HashPlain,
}

impl PasswdArgs {
    /// The action, once the arguments that go with each flag are checked (as
    /// `mosquitto_passwd` checks them).
    fn action(&self) -> Result<Action> {
        if self.update {
            if self.username.is_some() {
                bail!("-U takes the password file only");
            }
            return Ok(Action::HashPlain);
        }
        let Some(username) = self.username.clone() else {
            bail!("a user name is needed after the password file");
        };
        check_username(&username).map_err(|e| anyhow!("{e}"))?;
        if self.delete {
            if self.password.is_some() {
                bail!("-D takes the password file and the user name only");
            }
            return Ok(Action::Delete { username });
        }
        match (&self.password, self.batch) {
            (None, true) => bail!("-b needs the password after the user name"),
            (Some(_), false) => bail!("a password on the command line needs -b"),
            (Some(password), true) if password.len() > MAX_PASSWORD_LEN => {
                bail!("the password must be shorter than 65,536 bytes")
            }
            _ => {}
        }
        Ok(Action::Set {
            create: self.create,
            username,
            password: self.password.clone(),
        })
    }
}

/// Runs `nanomq passwd`: 0 when done, 1 (with the reason on standard error) otherwise.
pub(crate) fn main(args: PasswdArgs) -> ExitCode {
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("nanomq passwd: error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &PasswdArgs) -> Result<()> {
    let action = args.action()?;
    if let Some(mechanisms) = &args.scram {
        let iterations = args.iterations.map_or(SCRAM_ITERATIONS, NonZeroU32::get);
        let scram = Scram {
            mechanisms: &mechanisms.0,
            iterations,
        };
        return edit(args, action, &scram);
    }
    if let Action::HashPlain = action {
        let (path, mut file) = read(&args.file)?;
        let hashed = file
            .hash_plain_passwords(args.hash, args.iterations)
            .map_err(|e| anyhow!("{e}"))?;
        replace(&path, &file.to_string())?;
        let kept = file.usernames().count() - hashed;
        eprintln!("{hashed} password(s) hashed, {kept} already hashed left as they were");
        return Ok(());
    }
    edit(args, action, &Mosquitto)
}

/// A kind of credentials file `nanomq passwd` edits: Mosquitto's password file, or the
/// SCRAM credentials file.
trait CredentialFile {
    /// The file in memory.
    type File;
    fn empty(&self) -> Self::File;
    /// Reads the existing file (the path it really is, following a link).
    fn read(&self, path: &Path) -> Result<(PathBuf, Self::File)>;
    /// Sets `user`'s credentials from `password`.
    fn set(
        &self,
        file: &mut Self::File,
        args: &PasswdArgs,
        user: &str,
        password: &str,
    ) -> Result<()>;
    /// Removes `user`; whether they were there.
    fn remove(&self, file: &mut Self::File, user: &str) -> bool;
    fn text(&self, file: &Self::File) -> String;
}

/// Mosquitto's password file.
struct Mosquitto;

impl CredentialFile for Mosquitto {
    type File = PasswordFileEditor;

    fn empty(&self) -> Self::File {
        PasswordFileEditor::new()
    }

    fn read(&self, path: &Path) -> Result<(PathBuf, Self::File)> {
        read(path)
    }

    fn set(
        &self,
        file: &mut Self::File,
        args: &PasswdArgs,
        user: &str,
        password: &str,
    ) -> Result<()> {
        set(file, args, user, password)
    }

    fn remove(&self, file: &mut Self::File, user: &str) -> bool {
        file.remove(user)
    }

    fn text(&self, file: &Self::File) -> String {
        file.to_string()
    }
}

/// The SCRAM credentials file (`--scram`): credentials derived for each mechanism asked for.
struct Scram<'a> {
    mechanisms: &'a [Mechanism],
    iterations: u32,
}

impl CredentialFile for Scram<'_> {
    type File = CredentialStore;

    fn empty(&self) -> Self::File {
        CredentialStore::new()
    }

    fn read(&self, path: &Path) -> Result<(PathBuf, Self::File)> {
        let (path, bytes) = read_existing(path, "credentials file")?;
        let text = String::from_utf8(bytes)
            .map_err(|_| anyhow!("credentials file {}: not UTF-8", path.display()))?;
        let store = CredentialStore::parse(&text)
            .map_err(|e| anyhow!("credentials file {}: {e}", path.display()))?;
        Ok((path, store))
    }

    fn set(&self, file: &mut Self::File, _: &PasswdArgs, user: &str, password: &str) -> Result<()> {
        for mechanism in self.mechanisms {
            let credentials = ScramCredentials::derive(*mechanism, password, self.iterations)
                .map_err(|e| anyhow!("{e}"))?;
            file.insert(user, credentials).map_err(|e| anyhow!("{e}"))?;
        }
        Ok(())
    }

    fn remove(&self, file: &mut Self::File, user: &str) -> bool {
        file.remove(user)
    }

    fn text(&self, file: &Self::File) -> String {
        file.to_file()
    }
}

/// Carries out `action` on a file of `kind`.
fn edit<K: CredentialFile>(args: &PasswdArgs, action: Action, kind: &K) -> Result<()> {
    match action {
        Action::Set {
            create: true,
            username,
            password,
        } => {
            let password = password.map_or_else(ask_password, Ok)?;
            let mut file = kind.empty();
            kind.set(&mut file, args, &username, &password)?;
            write_new(&args.file, &kind.text(&file))
        }
        Action::Set {
            create: false,
            username,
            password,
        } => {
            let (path, mut file) = kind.read(&args.file)?;
            // The file first: no one should type a password for a file that is not there.
            let password = password.map_or_else(ask_password, Ok)?;
            kind.set(&mut file, args, &username, &password)?;
            replace(&path, &kind.text(&file))
        }
        Action::Delete { username } => {
            let (path, mut file) = kind.read(&args.file)?;
            if !kind.remove(&mut file, &username) {
                bail!("user {username} not found in {}", path.display());
            }
            replace(&path, &kind.text(&file))
        }
        Action::HashPlain => bail!("-U does not apply to SCRAM credentials"),
    }
}

fn set(file: &mut PasswordFileEditor, args: &PasswdArgs, user: &str, password: &str) -> Result<()> {
    let hash = hash_password(args.hash, password.as_bytes(), args.iterations)
        .map_err(|e| anyhow!("{e}"))?;
    file.set_hash(user, hash).map_err(|e| anyhow!("{e}"))
}

/// Asks for the password twice: on the terminal with echo off, or as two lines of standard
/// input when it is not a terminal (scripts, tests).
fn ask_password() -> Result<String> {
    let stdin = io::stdin();
    let (first, second) = if stdin.is_terminal() {
        let first = rpassword::prompt_password("Password: ").context("cannot read the password")?;
        let second =
            rpassword::prompt_password("Reenter password: ").context("cannot read the password")?;
        (first, second)
    } else {
        let mut lines = stdin.lock().lines();
        let mut next = || -> Result<String> {
            lines
                .next()
                .ok_or_else(|| anyhow!("standard input ended before the password (twice) did"))?
                .context("cannot read the password from standard input")
        };
        (next()?, next()?)
    };
    if first != second {
        bail!("passwords do not match");
    }
    if first.is_empty() {
        bail!("empty password");
    }
    if first.len() > MAX_PASSWORD_LEN {
        bail!("the password must be shorter than 65,536 bytes");
    }
    Ok(first)
}

/// Reads an existing password file.
fn read(path: &Path) -> Result<(PathBuf, PasswordFileEditor)> {
    let (path, bytes) = read_existing(path, "password file")?;
    let file = PasswordFileEditor::parse_bytes(&bytes)
        .map_err(|e| anyhow!("password file {}: {e}", path.display()))?;
    Ok((path, file))
}

/// The bytes of the existing file `path` (a `what`, for the messages), and the path it really
/// is: a symbolic link is followed to the file it names, which is the one to replace.
fn read_existing(path: &Path, what: &str) -> Result<(PathBuf, Vec<u8>)> {
    let path = fs::canonicalize(path)
        .with_context(|| format!("cannot open the {what} {}", path.display()))?;
    let bytes =
        fs::read(&path).with_context(|| format!("cannot read the {what} {}", path.display()))?;
    Ok((path, bytes))
}

/// Writes a new password file (`-c`), mode 0600, replacing any file of that name (or the
/// file a symbolic link of that name points to).
fn write_new(path: &Path, file: &str) -> Result<()> {
    let path = fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    let (temporary, mut out) = temporary_beside(&path)?;
    let written = write_all(&mut out, file).and_then(|()| rename(&temporary, &path));
    if written.is_err() {
        let _ = fs::remove_file(&temporary);
    }
    written
}

/// Replaces the existing `path` with `file`, keeping the old file's mode and (where the
/// system allows) owner.
fn replace(path: &Path, file: &str) -> Result<()> {
    let metadata = fs::metadata(path).with_context(|| format!("cannot read {}", path.display()))?;
    let (temporary, mut out) = temporary_beside(path)?;
    let written = write_all(&mut out, file)
        .and_then(|()| keep_mode_and_owner(&out, &metadata, path))
        .and_then(|()| rename(&temporary, path));
    if written.is_err() {
        let _ = fs::remove_file(&temporary);
    }
    written
}

/// A new file, mode 0600, in `path`'s directory (so that renaming it over `path` is atomic).
fn temporary_beside(path: &Path) -> Result<(PathBuf, File)> {
    let name = path
        .file_name()
        .ok_or_else(|| anyhow!("{} is not a file name", path.display()))?;
    let mut temporary_name = std::ffi::OsString::from(".");
    temporary_name.push(name);
    temporary_name.push(format!(".nanomq-passwd-{}", std::process::id()));
    let temporary = path.with_file_name(temporary_name);
    let mut options = OpenOptions::new();
    // create_new: never follow a link or reuse a file someone else put there.
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let out = options
        .open(&temporary)
        .with_context(|| format!("cannot create {}", temporary.display()))?;
    Ok((temporary, out))
}

fn write_all(out: &mut File, file: &str) -> Result<()> {
    out.write_all(file.as_bytes())
        .and_then(|()| out.sync_all())
        .context("cannot write the new password file")
}

#[cfg(unix)]
fn keep_mode_and_owner(out: &File, old: &fs::Metadata, path: &Path) -> Result<()> {
    use std::os::unix::fs::MetadataExt;
    // The owner first: changing it may clear set-id bits that the mode then restores. A user
    // who may not give the file away (not root) keeps it; the broker reading it is usually
    // that same user.
    if let Err(error) = std::os::unix::fs::fchown(out, Some(old.uid()), Some(old.gid()))
        && error.kind() != io::ErrorKind::PermissionDenied
    {
        return Err(error).with_context(|| format!("cannot keep the owner of {}", path.display()));
    }
    out.set_permissions(old.permissions())
        .with_context(|| format!("cannot keep the mode of {}", path.display()))
}

#[cfg(not(unix))]
fn keep_mode_and_owner(out: &File, old: &fs::Metadata, path: &Path) -> Result<()> {
    out.set_permissions(old.permissions())
        .with_context(|| format!("cannot keep the permissions of {}", path.display()))
}

fn rename(temporary: &Path, path: &Path) -> Result<()> {
    fs::rename(temporary, path).with_context(|| format!("cannot write {}", path.display()))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

    use clap::Parser;

    use super::*;

    #[derive(Debug, Parser)]
    struct Wrapper {
        #[command(flatten)]
        args: PasswdArgs,
    }

    fn parse(argv: &[&str]) -> Result<PasswdArgs, clap::Error> {
        Wrapper::try_parse_from(std::iter::once("passwd").chain(argv.iter().copied()))
            .map(|w| w.args)
    }

    fn action(argv: &[&str]) -> Result<Action> {
        parse(argv).map_err(|e| anyhow!("{e}"))?.action()
    }

    #[test]
    fn flags_and_arguments_as_mosquitto_passwd_takes_them() {
        assert!(matches!(
            action(&["-c", "-b", "f", "u", "p"]).unwrap(),
            Action::Set { create: true, password: Some(p), .. } if p == "p"
        ));
        assert!(matches!(
            action(&["f", "u"]).unwrap(),
            Action::Set {
                create: false,
                password: None,
                ..
            }
        ));
        assert!(matches!(
            action(&["-D", "f", "u"]).unwrap(),
            Action::Delete { .. }
        ));
        assert!(matches!(action(&["-U", "f"]).unwrap(), Action::HashPlain));
        let args = parse(&["-H", "argon2id", "-I", "3", "f", "u"]).unwrap();
        assert_eq!(args.hash, HashAlgorithm::Argon2id);
        assert_eq!(args.iterations, NonZeroU32::new(3));
        assert_eq!(
            parse(&["f", "u"]).unwrap().hash,
            HashAlgorithm::Sha512Pbkdf2
        );
    }

    #[test]
    fn combinations_mosquitto_passwd_refuses_are_refused() {
        for argv in [
            &["-c", "-D", "f", "u"][..],
            &["-c", "-U", "f"],
            &["-D", "-U", "f"],
            &["-b", "-D", "f", "u"],
            &["-H", "sha256", "f", "u"],
            &["-I", "0", "f", "u"],
        ] {
            assert!(parse(argv).is_err(), "{argv:?}");
        }
        for argv in [
            &["-b", "f", "u"][..],
            &["f", "u", "p"],
            &["-U", "f", "u"],
            &["f"],
            &["-D", "f", "u", "p"],
            &["-b", "f", "a:b", "p"],
        ] {
            assert!(action(argv).is_err(), "{argv:?}");
        }
    }
}
