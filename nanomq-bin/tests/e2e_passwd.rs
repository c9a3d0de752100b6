//! Password files shared with Mosquitto, both ways: a file the real `mosquitto_passwd` writes
//! is read by our library (`broker_core::PasswordFile`), and a file `nanomq passwd` writes
//! (created, updated, a user deleted, plain text hashed with `-U`) is read by the real
//! `mosquitto` broker, which lets `mosquitto_pub -u -P` in with the right password and
//! refuses the wrong one.
//!
//! Argon2id (`-H argon2id`) is checked against our library only: Mosquitto 2.0 (Debian 12's
//! 2.0.11) drops such lines ("Invalid password hash type"); Argon2id arrived in 2.1.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod e2e;

use std::fs;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use broker_core::{PasswordCheck, PasswordFile};
use e2e::{Background, Output, require_on_path, run, scratch_dir};

/// How long one command may take.
const PATIENCE: Duration = Duration::from_secs(30);

/// `nanomq passwd ARGS`, standard input closed.
fn nanomq_passwd(args: &[&str]) -> Output {
    run(
        Command::new(env!("CARGO_BIN_EXE_nanomq"))
            .arg("passwd")
            .args(args),
        PATIENCE,
    )
}

/// `nanomq passwd ARGS` with `input` on standard input (a pipe, not a terminal).
fn nanomq_passwd_with_input(args: &[&str], input: &str) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_nanomq"));
    command.arg("passwd").args(args);
    let mut child = Background::spawn_with_stdin(&mut command);
    child.write_stdin(input);
    child.close_stdin();
    child.finish(PATIENCE)
}

fn succeeded(what: &str, output: &Output) {
    assert!(
        output.status.success(),
        "{what} failed ({:?})\nstdout:\n{}\nstderr:\n{}",
        output.status,
        output.stdout,
        output.stderr
    );
}

fn mosquitto_passwd(args: &[&str]) {
    require_on_path("mosquitto_passwd", "mosquitto");
    let output = run(Command::new("mosquitto_passwd").args(args), PATIENCE);
    succeeded("mosquitto_passwd", &output);
}

fn path_str(path: &Path) -> &str {
    path.to_str().unwrap()
}

fn mode(path: &Path) -> u32 {
    fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// The real Mosquitto broker on a free loopback port, anonymous clients refused, users from
/// `password_file`.
struct Mosquitto {
    _process: Background,
    address: SocketAddr,
}

impl Mosquitto {
    fn start(name: &str, password_file: &Path) -> Self {
        require_on_path("mosquitto", "mosquitto");
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let conf = scratch_dir(name).join("mosquitto.conf");
        // `user root`: run as root (as the tests are here), Mosquitto would otherwise drop to
        // the `mosquitto` user before reading the file, which our 0600 file does not let it
        // read. Ignored when not run as root.
        fs::write(
            &conf,
            format!(
                "listener {port} 127.0.0.1\nallow_anonymous false\npassword_file {}\n\
                 persistence false\nuser root\nlog_dest stderr\nlog_type all\n",
                password_file.display()
            ),
        )
        .unwrap();
        let process = Background::spawn(Command::new("mosquitto").arg("-c").arg(&conf));
        let address = SocketAddr::from(([127, 0, 0, 1], port));
        let deadline = Instant::now() + PATIENCE;
        while TcpStream::connect(address).is_err() {
            assert!(Instant::now() < deadline, "mosquitto did not listen");
            std::thread::sleep(Duration::from_millis(20));
        }
        Self {
            _process: process,
            address,
        }
    }

    /// `mosquitto_pub -u USER [-P PASSWORD]`, MQTT 3.1.1: what it printed and whether the
    /// broker let it in.
    fn publish_as(&self, user: Option<&str>, password: Option<&str>) -> (bool, Output) {
        require_on_path("mosquitto_pub", "mosquitto-clients");
        let mut command = Command::new("mosquitto_pub");
        command
            .args(["-h", "127.0.0.1", "-p"])
            .arg(self.address.port().to_string())
            .args(["-V", "mqttv311", "-t", "passwd/test", "-m", "hello"]);
        if let Some(user) = user {
            command.args(["-u", user]);
        }
        if let Some(password) = password {
            command.args(["-P", password]);
        }
        let output = run(&mut command, PATIENCE);
        (output.status.success(), output)
    }

    fn assert_accepts(&self, user: &str, password: &str) {
        let (accepted, output) = self.publish_as(Some(user), Some(password));
        assert!(
            accepted,
            "mosquitto refused {user} with the right password\n{}",
            output.stderr
        );
    }

    fn assert_refuses(&self, user: Option<&str>, password: Option<&str>) {
        let (accepted, output) = self.publish_as(user, password);
        assert!(!accepted, "mosquitto accepted {user:?} / {password:?}");
        assert!(
            output.stderr.contains("not authorised"),
            "refused for another reason than authentication: {}",
            output.stderr
        );
    }
}

#[test]
fn a_file_mosquitto_passwd_writes_is_read_by_our_library() {
    let dir = scratch_dir("passwd_from_mosquitto");
    let file = dir.join("passwd");
    mosquitto_passwd(&["-c", "-b", path_str(&file), "alice", "correct horse"]);
    mosquitto_passwd(&["-b", "-I", "2000", path_str(&file), "bob", "s3cr3t"]);
    mosquitto_passwd(&["-H", "sha512", "-b", path_str(&file), "dave", "legacy"]);
    mosquitto_passwd(&["-b", path_str(&file), "émile", "pässwörd"]);
    let text = fs::read_to_string(&file).unwrap();
    assert!(
        text.contains("bob:$7$2000$") && text.contains("dave:$6$"),
        "{text}"
    );

    let passwords = PasswordFile::load(&file).unwrap();
    assert_eq!(passwords.len(), 4);
    for (user, right) in [
        ("alice", "correct horse"),
        ("bob", "s3cr3t"),
        ("dave", "legacy"),
        ("émile", "pässwörd"),
    ] {
        assert_eq!(
            passwords.check(user, right.as_bytes()),
            PasswordCheck::Match,
            "{user}"
        );
        assert_eq!(
            passwords.check(user, format!("{right}!").as_bytes()),
            PasswordCheck::Mismatch,
            "{user}"
        );
    }
    assert_eq!(
        passwords.check("mallory", b"correct horse"),
        PasswordCheck::UnknownUser
    );

    // And `nanomq passwd` edits the file Mosquitto wrote, leaving the other lines as they are.
    succeeded(
        "nanomq passwd -b",
        &nanomq_passwd(&["-b", path_str(&file), "bob", "n3w"]),
    );
    let edited = fs::read_to_string(&file).unwrap();
    let lines: Vec<&str> = edited.lines().collect();
    let original: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 4);
    assert_eq!(lines[0], original[0]);
    assert!(lines[1].starts_with("bob:$7$101$"), "{edited}");
    assert_eq!(lines[2..], original[2..]);
    let passwords = PasswordFile::load(&file).unwrap();
    assert_eq!(passwords.check("bob", b"n3w"), PasswordCheck::Match);
    assert_eq!(passwords.check("bob", b"s3cr3t"), PasswordCheck::Mismatch);
}

#[test]
fn a_file_nanomq_passwd_writes_is_accepted_by_mosquitto() {
    let dir = scratch_dir("passwd_to_mosquitto");
    let file = dir.join("passwd");
    succeeded(
        "nanomq passwd -c -b",
        &nanomq_passwd(&["-c", "-b", path_str(&file), "alice", "correct horse"]),
    );
    assert_eq!(mode(&file), 0o600, "a created password file is private");
    // An update keeps the file's mode.
    fs::set_permissions(&file, fs::Permissions::from_mode(0o640)).unwrap();
    succeeded(
        "nanomq passwd -b -I",
        &nanomq_passwd(&["-b", "-I", "1000", path_str(&file), "bob", "s3cr3t"]),
    );
    assert_eq!(mode(&file), 0o640);
    // Asked twice on standard input (not a terminal here).
    succeeded(
        "nanomq passwd (prompted)",
        &nanomq_passwd_with_input(&[path_str(&file), "carol"], "typed in\ntyped in\n"),
    );
    succeeded(
        "nanomq passwd -b",
        &nanomq_passwd(&["-b", path_str(&file), "dave", "to be deleted"]),
    );
    succeeded(
        "nanomq passwd -D",
        &nanomq_passwd(&["-D", path_str(&file), "dave"]),
    );
    let text = fs::read_to_string(&file).unwrap();
    assert!(
        text.contains("bob:$7$1000$") && !text.contains("dave:"),
        "{text}"
    );

    let mosquitto = Mosquitto::start("passwd_to_mosquitto_broker", &file);
    mosquitto.assert_accepts("alice", "correct horse");
    mosquitto.assert_accepts("bob", "s3cr3t");
    mosquitto.assert_accepts("carol", "typed in");
    mosquitto.assert_refuses(Some("alice"), Some("correct horse!"));
    mosquitto.assert_refuses(Some("bob"), Some("correct horse"));
    mosquitto.assert_refuses(Some("dave"), Some("to be deleted"));
    mosquitto.assert_refuses(None, None);
}

#[test]
fn plain_text_passwords_hashed_with_dash_u_are_accepted_by_mosquitto() {
    let dir = scratch_dir("passwd_update");
    let file = dir.join("passwd");
    fs::write(&file, "# plain text\nalice:first one\n\nbob: second \n").unwrap();
    assert!(
        PasswordFile::load(&file).is_err(),
        "plain text is not a password file"
    );
    let output = nanomq_passwd(&["-U", path_str(&file)]);
    succeeded("nanomq passwd -U", &output);
    let once = fs::read_to_string(&file).unwrap();
    assert!(once.starts_with("# plain text\nalice:$7$101$"), "{once}");
    // A second -U (which would ruin a file with mosquitto_passwd) changes nothing.
    succeeded(
        "nanomq passwd -U again",
        &nanomq_passwd(&["-U", path_str(&file)]),
    );
    assert_eq!(fs::read_to_string(&file).unwrap(), once);

    let mosquitto = Mosquitto::start("passwd_update_broker", &file);
    mosquitto.assert_accepts("alice", "first one");
    // Blanks around a password are not part of it, for Mosquitto as for us.
    mosquitto.assert_accepts("bob", "second");
    mosquitto.assert_refuses(Some("alice"), Some("first"));
    let passwords = PasswordFile::load(&file).unwrap();
    assert_eq!(passwords.check("bob", b"second"), PasswordCheck::Match);
}

#[test]
fn argon2id_files_are_read_by_our_library() {
    let dir = scratch_dir("passwd_argon2id");
    let file = dir.join("passwd");
    succeeded(
        "nanomq passwd -c -b -H argon2id",
        &nanomq_passwd(&[
            "-c",
            "-b",
            "-H",
            "argon2id",
            path_str(&file),
            "erin",
            "memory hard",
        ]),
    );
    succeeded(
        "nanomq passwd -b",
        &nanomq_passwd(&["-b", path_str(&file), "frank", "pbkdf2 beside it"]),
    );
    let text = fs::read_to_string(&file).unwrap();
    assert!(
        text.starts_with("erin:$argon2id$v=19$m=47104,t=1,p=1$"),
        "{text}"
    );
    let passwords = PasswordFile::load(&file).unwrap();
    assert_eq!(
        passwords.check("erin", b"memory hard"),
        PasswordCheck::Match
    );
    assert_eq!(
        passwords.check("erin", b"memory soft"),
        PasswordCheck::Mismatch
    );
    assert_eq!(
        passwords.check("frank", b"pbkdf2 beside it"),
        PasswordCheck::Match
    );
}

#[test]
fn mistakes_are_refused_and_leave_the_file_as_it_was() {
    let dir = scratch_dir("passwd_mistakes");
    let file: PathBuf = dir.join("passwd");
    succeeded(
        "nanomq passwd -c -b",
        &nanomq_passwd(&["-c", "-b", path_str(&file), "alice", "one"]),
    );
    let before = fs::read_to_string(&file).unwrap();

    let refused = |output: Output, needle: &str| {
        assert!(!output.status.success(), "succeeded: {}", output.stderr);
        assert!(
            output.stderr.contains(needle),
            "expected {needle:?} in {}",
            output.stderr
        );
    };
    refused(
        nanomq_passwd_with_input(&[path_str(&file), "bob"], "one\ntwo\n"),
        "passwords do not match",
    );
    refused(
        nanomq_passwd(&["-D", path_str(&file), "nobody"]),
        "user nobody not found",
    );
    refused(nanomq_passwd(&["-b", path_str(&file), "a:b", "x"]), "':'");
    refused(
        nanomq_passwd(&["-b", path_str(&dir.join("missing")), "bob", "x"]),
        "cannot open the password file",
    );
    assert_eq!(fs::read_to_string(&file).unwrap(), before);
    // Nothing left behind beside it.
    assert_eq!(fs::read_dir(&dir).unwrap().count(), 1);

    // A bad line stops the tool, naming the line, and the file is not touched.
    let bad = format!("{before}# a comment\nbob-without-a-colon\n");
    fs::write(&file, &bad).unwrap();
    refused(
        nanomq_passwd(&["-b", path_str(&file), "carol", "x"]),
        "line 3: no `:`",
    );
    assert_eq!(fs::read_to_string(&file).unwrap(), bad);
    let error = PasswordFile::load(&file).unwrap_err().to_string();
    assert!(error.contains("line 3"), "{error}");
}
