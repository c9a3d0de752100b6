//! Running external commands: echo the command line before running it, and name the exact command
//! in the error when it cannot be started or exits unsuccessfully.

use std::env;
use std::ffi::{OsStr, OsString};
use std::fmt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context as _, Result, bail};

/// One command line: program, arguments, working directory and extra environment variables.
///
/// Built by value (`Cmd::new("cargo").arg("test")`), then run with [`Cmd::run`] (output goes to
/// the terminal) or probed with [`Cmd::succeeds_quietly`] / [`Cmd::stdout_quietly`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Cmd {
    program: OsString,
    args: Vec<OsString>,
    cwd: Option<PathBuf>,
    envs: Vec<(OsString, OsString)>,
}

impl Cmd {
    /// A command that runs `program` with no arguments.
    pub(crate) fn new(program: impl AsRef<OsStr>) -> Self {
        Self {
            program: program.as_ref().to_owned(),
            args: Vec::new(),
            cwd: None,
            envs: Vec::new(),
        }
    }

    /// `cargo` from `PATH`: rustup's proxy, which keeps the toolchain this xtask runs under
    /// (`RUSTUP_TOOLCHAIN`, so `cargo +nightly xtask ...` stays on nightly) and echoes as a
    /// command line anyone can paste.
    pub(crate) fn cargo() -> Self {
        Self::new("cargo")
    }

    /// Appends one argument.
    pub(crate) fn arg(mut self, arg: impl AsRef<OsStr>) -> Self {
        self.args.push(arg.as_ref().to_owned());
        self
    }

    /// Appends several arguments.
    pub(crate) fn args<I>(mut self, args: I) -> Self
    where
        I: IntoIterator,
        I::Item: AsRef<OsStr>,
    {
        self.args
            .extend(args.into_iter().map(|arg| arg.as_ref().to_owned()));
        self
    }

    /// Runs the command in `dir` instead of the current directory.
    pub(crate) fn current_dir(mut self, dir: impl AsRef<Path>) -> Self {
        self.cwd = Some(dir.as_ref().to_owned());
        self
    }

    /// Sets an environment variable for the command.
    pub(crate) fn env(mut self, key: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> Self {
        self.envs
            .push((key.as_ref().to_owned(), value.as_ref().to_owned()));
        self
    }

    /// The command line as a user would type it in a shell, with `cd DIR && ` in front when the
    /// command runs somewhere other than the current directory.
    pub(crate) fn describe(&self) -> String {
        match &self.cwd {
            Some(dir) if env::current_dir().ok().as_deref() != Some(dir.as_path()) => {
                format!("cd {} && {self}", quote(dir.as_os_str()))
            }
            _ => self.to_string(),
        }
    }

    /// Echoes the command line to stderr, runs it with the terminal as its stdio, and fails with
    /// an error naming the command unless it exits successfully.
    pub(crate) fn run(&self) -> Result<()> {
        eprintln!("$ {}", self.describe());
        let status = self
            .command()
            .status()
            .with_context(|| format!("could not start `{}`", self.describe()))?;
        if !status.success() {
            bail!("command failed ({status}): `{}`", self.describe());
        }
        Ok(())
    }

    /// Like [`Cmd::run`], but reads the command's standard output line by line, printing each
    /// line and handing it to `on_line` (to tally test results, say).
    pub(crate) fn run_reading_stdout(&self, mut on_line: impl FnMut(&str)) -> Result<()> {
        eprintln!("$ {}", self.describe());
        let mut child = self
            .command()
            .stdout(Stdio::piped())
            .spawn()
            .with_context(|| format!("could not start `{}`", self.describe()))?;
        if let Some(stdout) = child.stdout.take() {
            for line in std::io::BufRead::lines(std::io::BufReader::new(stdout)) {
                let line = line.with_context(|| format!("reading `{}`", self.describe()))?;
                println!("{line}");
                on_line(&line);
            }
        }
        let status = child
            .wait()
            .with_context(|| format!("waiting for `{}`", self.describe()))?;
        if !status.success() {
            bail!("command failed ({status}): `{}`", self.describe());
        }
        Ok(())
    }

    /// Runs the command silently (no echo, stdio discarded); true if it started and exited with
    /// success. For probes such as `cargo fmt --version`.
    pub(crate) fn succeeds_quietly(&self) -> bool {
        self.command()
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|status| status.success())
    }

    /// Runs the command silently and returns its stdout; fails, naming the command, unless it
    /// exits successfully with UTF-8 output.
    pub(crate) fn stdout_quietly(&self) -> Result<String> {
        let output = self
            .command()
            .stdin(Stdio::null())
            .stderr(Stdio::inherit())
            .output()
            .with_context(|| format!("could not start `{}`", self.describe()))?;
        if !output.status.success() {
            bail!("command failed ({}): `{}`", output.status, self.describe());
        }
        String::from_utf8(output.stdout)
            .with_context(|| format!("`{}` printed output that is not UTF-8", self.describe()))
    }

    fn command(&self) -> Command {
        let mut command = Command::new(&self.program);
        command.args(&self.args);
        command.envs(self.envs.iter().map(|(key, value)| (key, value)));
        if let Some(dir) = &self.cwd {
            command.current_dir(dir);
        }
        command
    }
}

/// Renders `KEY=value program args...`, quoting words the shell would split or expand.
impl fmt::Display for Cmd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (key, value) in &self.envs {
            write!(f, "{}={} ", key.to_string_lossy(), quote(value))?;
        }
        f.write_str(&quote(&self.program))?;
        for arg in &self.args {
            write!(f, " {}", quote(arg))?;
        }
        Ok(())
    }
}

/// Quotes one word for a POSIX shell, leaving plain words (`--all`, `a/b.rs`, `-x=1`) bare.
fn quote(word: &OsStr) -> String {
    let word = word.to_string_lossy();
    let plain = !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:,+@%".contains(c));
    if plain {
        word.into_owned()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_quotes_only_what_the_shell_would_mangle() {
        let cmd = Cmd::new("cargo")
            .args(["bench", "--bench", "*", "--", "it's here", ""])
            .env("RUSTC_BOOTSTRAP", "1");
        assert_eq!(
            cmd.to_string(),
            r"RUSTC_BOOTSTRAP=1 cargo bench --bench '*' -- 'it'\''s here' ''"
        );
    }

    #[test]
    fn describe_names_the_directory_it_runs_in() {
        let cmd = Cmd::new("ls").current_dir("/nonexistent/dir");
        assert_eq!(cmd.describe(), "cd /nonexistent/dir && ls");
    }

    #[test]
    fn run_reports_the_failed_command() {
        let err = Cmd::new("sh")
            .args(["-c", "exit 3"])
            .run()
            .err()
            .map(|err| format!("{err:#}"));
        let err = err.unwrap_or_default();
        assert!(err.contains("sh -c 'exit 3'"), "{err}");
        assert!(err.contains("exit status: 3"), "{err}");
    }

    #[test]
    fn run_reports_a_program_that_cannot_start() {
        let err = Cmd::new("xtask-no-such-program-7f3a")
            .run()
            .err()
            .map(|err| format!("{err:#}"))
            .unwrap_or_default();
        assert!(
            err.contains("could not start `xtask-no-such-program-7f3a`"),
            "{err}"
        );
    }

    #[test]
    fn probes_report_success_and_output() {
        assert!(Cmd::new("true").succeeds_quietly());
        assert!(!Cmd::new("false").succeeds_quietly());
        assert!(!Cmd::new("xtask-no-such-program-7f3a").succeeds_quietly());
        let out = Cmd::new("sh")
            .args(["-c", "printf %s \"$GREETING\""])
            .env("GREETING", "hello")
            .stdout_quietly()
            .ok();
        assert_eq!(out.as_deref(), Some("hello"));
    }
}
