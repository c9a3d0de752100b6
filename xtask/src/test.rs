//! `cargo xtask test` (and its alias `cargo xtask ci`): the project's one test command, what CI
//! runs. Installs prerequisites, checks formatting, runs clippy, then runs every test.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Result, bail};

use crate::cmd::Cmd;
use crate::deps::{self, Prerequisite};

pub(crate) const HELP: &str = "\
cargo xtask test: the project's test command (CI runs it through .ci/run)

USAGE:
    cargo xtask test [--no-install] [--skip-lint]
    cargo xtask ci   [--no-install] [--skip-lint]   (same as test)

STEPS:
    1. prerequisites  install what the tests need (rustfmt, clippy; apt, pip, npm packages)
    2. formatting     cargo fmt --all -- --check
    3. clippy         cargo clippy --workspace --all-targets --all-features -- -D warnings
    4-6. tcp-only, ws-only, tls-only build
                      the broker with one transport each: cargo clippy -p nanomq-bin
                      --all-targets --no-default-features --features tcp|ws|tls -- -D warnings
    7. tests          cargo test --workspace --all-features (unit, integration and doc tests)

OPTIONS:
    --no-install    skip step 1 (check and install nothing)
    --skip-lint     skip steps 2 and 3, and the lint tools in step 1; steps 4-6 use cargo check
    -h, --help      print this help

Stops at the first failing step and exits non-zero.";

/// What the command line asked for.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Options {
    no_install: bool,
    skip_lint: bool,
}

impl Options {
    /// Parses the arguments after `test`; `None` when help was asked for.
    fn parse(args: &[String]) -> Result<Option<Self>> {
        let mut options = Self::default();
        for arg in args {
            match arg.as_str() {
                "--no-install" => options.no_install = true,
                "--skip-lint" => options.skip_lint = true,
                "-h" | "--help" => return Ok(None),
                other => bail!("unknown argument `{other}` for `cargo xtask test`\n\n{HELP}"),
            }
        }
        Ok(Some(options))
    }
}

/// One step of the test run.
#[derive(Debug)]
enum Step {
    /// Make sure these prerequisites are present, installing the missing ones.
    Prerequisites(Vec<Prerequisite>),
    /// Run this command.
    Run(Cmd),
    /// Run this `cargo test` command and sum up its results.
    Tests(Cmd),
}

/// The builds of the broker with a single transport: each step's title and the feature.
const SINGLE_TRANSPORT_BUILDS: [(&str, &str); 3] = [
    ("tcp-only build", "tcp"),
    ("ws-only build", "ws"),
    ("tls-only build", "tls"),
];

/// The steps `options` selects, each with its title, in the order they run.
fn plan(root: &Path, options: Options) -> Vec<(&'static str, Step)> {
    let mut steps = Vec::new();
    if !options.no_install {
        let mut wanted = Vec::new();
        if !options.skip_lint {
            wanted.extend_from_slice(deps::LINT);
        }
        wanted.extend_from_slice(deps::TEST);
        steps.push(("prerequisites", Step::Prerequisites(wanted)));
    }
    if !options.skip_lint {
        steps.push((
            "formatting",
            Step::Run(
                Cmd::cargo()
                    .args(["fmt", "--all", "--", "--check"])
                    .current_dir(root),
            ),
        ));
        steps.push((
            "clippy",
            Step::Run(
                Cmd::cargo()
                    .args(["clippy", "--workspace", "--all-targets", "--all-features"])
                    .args(["--", "-D", "warnings"])
                    .current_dir(root),
            ),
        ));
    }
    // Each transport is a cargo feature: the broker must build (and lint clean) with any one.
    for (title, feature) in SINGLE_TRANSPORT_BUILDS {
        let cmd = if options.skip_lint {
            Cmd::cargo().arg("check")
        } else {
            Cmd::cargo().arg("clippy")
        };
        let cmd = cmd
            .args(["-p", "nanomq-bin", "--all-targets", "--no-default-features"])
            .args(["--features", feature]);
        let cmd = if options.skip_lint {
            cmd
        } else {
            cmd.args(["--", "-D", "warnings"])
        };
        steps.push((title, Step::Run(cmd.current_dir(root))));
    }
    steps.push((
        "tests",
        Step::Tests(
            Cmd::cargo()
                .args(["test", "--workspace", "--all-features"])
                .current_dir(root),
        ),
    ));
    steps
}

/// Runs `cargo xtask test` with the arguments that follow `test`.
pub(crate) fn run(args: &[String]) -> Result<()> {
    let Some(options) = Options::parse(args)? else {
        println!("{HELP}");
        return Ok(());
    };
    let root = crate::project_root();
    let steps = plan(&root, options);
    let total = steps.len();
    let titles: Vec<&str> = steps.iter().map(|(title, _)| *title).collect();
    let started = Instant::now();
    let mut tally = Tally::default();

    for (number, (title, step)) in (1..).zip(steps) {
        println!("\n==> xtask test [{number}/{total}] {title}");
        let step_started = Instant::now();
        let result = match &step {
            Step::Prerequisites(wanted) => deps::ensure(&root, wanted),
            Step::Run(cmd) => cmd.run(),
            Step::Tests(cmd) => {
                let result = cmd.run_reading_stdout(|line| tally.add(line));
                // One line that sums up every test binary, whatever the outcome.
                println!("\n{tally}");
                result
            }
        };
        if let Err(err) = result {
            eprintln!("{err:#}");
            bail!(
                "xtask test: FAILED at step {number}/{total} ({title}) after {}",
                seconds(started.elapsed())
            );
        }
        println!(
            "==> xtask test [{number}/{total}] {title}: ok in {}",
            seconds(step_started.elapsed())
        );
    }

    println!(
        "\nxtask test: OK, all {total} steps succeeded ({}) in {}",
        titles.join(", "),
        seconds(started.elapsed())
    );
    Ok(())
}

/// The sum of the `test result:` lines of every test binary cargo ran.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Tally {
    passed: u64,
    failed: u64,
    ignored: u64,
}

impl Tally {
    /// Adds a line like `test result: ok. 9 passed; 0 failed; 1 ignored; 0 measured; ...`.
    fn add(&mut self, line: &str) {
        let Some(counts) = line.trim().strip_prefix("test result: ") else {
            return;
        };
        for part in counts.split(['.', ';']) {
            let mut words = part.split_whitespace();
            if let (Some(n), Some(what)) = (words.next(), words.next()) {
                let Ok(n) = n.parse::<u64>() else {
                    continue;
                };
                match what {
                    "passed" => self.passed += n,
                    "failed" => self.failed += n,
                    "ignored" => self.ignored += n,
                    _ => {}
                }
            }
        }
    }
}

impl std::fmt::Display for Tally {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "tests: {} passed, {} failed, {} skipped",
            self.passed, self.failed, self.ignored
        )
    }
}

fn seconds(duration: Duration) -> String {
    format!("{:.1}s", duration.as_secs_f64())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(args: &[&str]) -> Vec<String> {
        args.iter().map(|arg| (*arg).to_owned()).collect()
    }

    fn titles(options: Options) -> Vec<&'static str> {
        plan(Path::new("/r"), options)
            .into_iter()
            .map(|(title, _)| title)
            .collect()
    }

    #[test]
    fn flags_parse_and_unknown_ones_are_rejected() {
        assert_eq!(Options::parse(&[]).ok(), Some(Some(Options::default())));
        assert_eq!(
            Options::parse(&args(&["--skip-lint", "--no-install"])).ok(),
            Some(Some(Options {
                no_install: true,
                skip_lint: true
            }))
        );
        assert_eq!(Options::parse(&args(&["--help"])).ok(), Some(None));
        assert!(Options::parse(&args(&["--fast"])).is_err());
    }

    #[test]
    fn by_default_every_step_runs() {
        assert_eq!(
            titles(Options::default()),
            [
                "prerequisites",
                "formatting",
                "clippy",
                "tcp-only build",
                "ws-only build",
                "tls-only build",
                "tests"
            ]
        );
    }

    #[test]
    fn flags_skip_their_steps() {
        let no_install = Options {
            no_install: true,
            ..Options::default()
        };
        let builds = ["tcp-only build", "ws-only build", "tls-only build"];
        let mut expected = vec!["formatting", "clippy"];
        expected.extend(builds);
        expected.push("tests");
        assert_eq!(titles(no_install), expected);
        let skip_lint = Options {
            skip_lint: true,
            ..Options::default()
        };
        let mut expected = vec!["prerequisites"];
        expected.extend(builds);
        expected.push("tests");
        assert_eq!(titles(skip_lint), expected);
        let both = Options {
            no_install: true,
            skip_lint: true,
        };
        let mut expected = builds.to_vec();
        expected.push("tests");
        assert_eq!(titles(both), expected);
    }

    #[test]
    fn without_lint_the_single_transport_builds_are_checked() {
        let commands: Vec<String> = plan(
            Path::new("/r"),
            Options {
                skip_lint: true,
                ..Options::default()
            },
        )
        .into_iter()
        .filter_map(|(_, step)| match step {
            Step::Run(cmd) | Step::Tests(cmd) => Some(cmd.to_string()),
            Step::Prerequisites(_) => None,
        })
        .collect();
        assert_eq!(commands.len(), 4, "{commands:?}");
        for (cmd, feature) in commands.iter().zip(["tcp", "ws", "tls"]) {
            assert!(
                cmd.ends_with(&format!(
                    " check -p nanomq-bin --all-targets --no-default-features --features {feature}"
                )),
                "{cmd}"
            );
        }
    }

    #[test]
    fn the_lint_tools_are_wanted_only_when_linting() {
        let wanted = |options| {
            plan(Path::new("/r"), options)
                .into_iter()
                .find_map(|(_, step)| match step {
                    Step::Prerequisites(wanted) => Some(wanted),
                    Step::Run(_) | Step::Tests(_) => None,
                })
                .unwrap_or_default()
        };
        let linting = wanted(Options::default());
        assert!(deps::LINT.iter().all(|p| linting.contains(p)));
        assert!(deps::TEST.iter().all(|p| linting.contains(p)));
        let skip_lint = wanted(Options {
            skip_lint: true,
            ..Options::default()
        });
        assert!(!deps::LINT.iter().any(|p| skip_lint.contains(p)));
    }

    #[test]
    fn the_steps_run_the_documented_commands() {
        let commands: Vec<String> = plan(Path::new("/r"), Options::default())
            .into_iter()
            .filter_map(|(_, step)| match step {
                Step::Run(cmd) | Step::Tests(cmd) => Some(cmd.to_string()),
                Step::Prerequisites(_) => None,
            })
            .collect();
        let expected = [
            " fmt --all -- --check",
            " clippy --workspace --all-targets --all-features -- -D warnings",
            " clippy -p nanomq-bin --all-targets --no-default-features --features tcp -- -D warnings",
            " clippy -p nanomq-bin --all-targets --no-default-features --features ws -- -D warnings",
            " clippy -p nanomq-bin --all-targets --no-default-features --features tls -- -D warnings",
            " test --workspace --all-features",
        ];
        assert_eq!(commands.len(), expected.len(), "{commands:?}");
        for (cmd, tail) in commands.iter().zip(expected) {
            assert!(cmd.ends_with(tail), "{cmd:?} should end with {tail:?}");
        }
    }

    #[test]
    fn tally_sums_every_test_binary() {
        let mut tally = Tally::default();
        for line in [
            "test result: ok. 9 passed; 0 failed; 1 ignored; 0 measured; 0 filtered out; finished in 0.05s",
            "running 3 tests",
            "test result: FAILED. 2 passed; 1 failed; 0 ignored; 0 measured; 0 filtered out",
        ] {
            tally.add(line);
        }
        assert_eq!(tally.to_string(), "tests: 11 passed, 1 failed, 1 skipped");
    }
}
