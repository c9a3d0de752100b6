//! `cargo xtask fuzz`: runs the cargo-fuzz targets of `mqtt-codec/fuzz` and `broker-core/fuzz`
//! for a bounded time each, and turns a crash into instructions for keeping it as a
//! regression test of the crate it came from.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result, bail};

use crate::cmd::Cmd;
use crate::deps;

pub(crate) const HELP: &str = "\
cargo xtask fuzz: run the fuzz targets of the codec (mqtt-codec/fuzz: decode, roundtrip) and
of the broker (broker-core/fuzz: broker, scripted clients against one in-process broker)

USAGE:
    cargo xtask fuzz [--seconds N] [--crate CRATE] [--target NAME]

OPTIONS:
    --seconds N     fuzz each target for N seconds (default 60)
    --crate CRATE   fuzz only this crate's targets: mqtt-codec or broker-core (default both)
    --target NAME   fuzz only this target (a file name in <crate>/fuzz/fuzz_targets/)
    -h, --help      print this help

Installs cargo-fuzz (cargo install cargo-fuzz --locked) if it is missing, and sets
RUSTC_BOOTSTRAP=1 when the active toolchain is not nightly. New inputs go to
<crate>/fuzz/corpus/<target>/; <crate>/fuzz/seeds/<target>/, if present, is read as an
extra seed corpus. An input that runs longer than 30 s counts as a crash (a hang). A crash
stops the run and names the artifact to copy into <crate>/tests/fuzz_regressions/.";

/// The crates with a cargo-fuzz project (`<crate>/fuzz`), relative to the workspace root, in
/// the order they are fuzzed.
const FUZZED_CRATES: [&str; 2] = ["mqtt-codec", "broker-core"];

/// Where a crate keeps crash inputs as regression tests, relative to the crate.
const REGRESSIONS_DIR: &str = "tests/fuzz_regressions";

/// How long one input may run before libFuzzer reports it as a hang (seconds).
const HANG_SECONDS: u64 = 30;

/// How long each target runs when `--seconds` is not given.
const DEFAULT_SECONDS: u64 = 60;

/// What the command line asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Options {
    seconds: u64,
    krate: Option<String>,
    target: Option<String>,
}

impl Options {
    /// Parses the arguments after `fuzz`; `None` when help was asked for.
    fn parse(args: &[String]) -> Result<Option<Self>> {
        let mut options = Self {
            seconds: DEFAULT_SECONDS,
            krate: None,
            target: None,
        };
        let mut args = args.iter();
        while let Some(arg) = args.next() {
            let (flag, inline_value) = match arg.split_once('=') {
                Some((flag, value)) if flag.starts_with("--") => (flag, Some(value.to_owned())),
                _ => (arg.as_str(), None),
            };
            let mut value = || {
                inline_value
                    .clone()
                    .or_else(|| args.next().cloned())
                    .with_context(|| format!("`{flag}` needs a value\n\n{HELP}"))
            };
            match flag {
                "--seconds" => {
                    let text = value()?;
                    options.seconds = match text.parse::<u64>() {
                        Ok(seconds) if seconds > 0 => seconds,
                        _ => bail!("`--seconds` wants a whole number above 0, not `{text}`"),
                    };
                }
                "--crate" => {
                    let name = value()?;
                    if !FUZZED_CRATES.contains(&name.as_str()) {
                        bail!(
                            "no fuzz project for crate `{name}`; the crates are: {}",
                            FUZZED_CRATES.join(", ")
                        );
                    }
                    options.krate = Some(name);
                }
                "--target" => options.target = Some(value()?),
                "-h" | "--help" => return Ok(None),
                other => bail!("unknown argument `{other}` for `cargo xtask fuzz`\n\n{HELP}"),
            }
        }
        Ok(Some(options))
    }
}

/// Runs `cargo xtask fuzz` with the arguments that follow `fuzz`.
pub(crate) fn run(args: &[String]) -> Result<()> {
    let Some(options) = Options::parse(args)? else {
        println!("{HELP}");
        return Ok(());
    };
    let root = crate::project_root();
    let mut targets = Vec::new();
    for krate in FUZZED_CRATES {
        if options
            .krate
            .as_deref()
            .is_some_and(|wanted| wanted != krate)
        {
            continue;
        }
        let fuzz_dir = root.join(krate).join("fuzz");
        if !fuzz_dir.join("Cargo.toml").is_file() {
            bail!(
                "no cargo-fuzz project at {} (expected its Cargo.toml and fuzz_targets/)",
                fuzz_dir.display()
            );
        }
        for target in discover_targets(&fuzz_dir.join("fuzz_targets"))? {
            targets.push(Target {
                krate,
                name: target,
            });
        }
    }
    let selected = select(&targets, options.target.as_deref())?;

    deps::ensure(&root, deps::FUZZ)?;
    let nightly = is_nightly(
        &Cmd::new("rustc")
            .arg("--version")
            .current_dir(&root)
            .stdout_quietly()?,
    );
    if !nightly {
        println!("the active toolchain is not nightly: fuzzing with RUSTC_BOOTSTRAP=1");
    }

    let total = selected.len();
    for (number, target) in (1..).zip(&selected) {
        println!(
            "\n==> xtask fuzz [{number}/{total}] {target} for {}s",
            options.seconds
        );
        let crate_dir = root.join(target.krate);
        let fuzz_dir = crate_dir.join("fuzz");
        let name = target.name.as_str();
        let corpus = fuzz_dir.join("corpus").join(name);
        fs::create_dir_all(&corpus)
            .with_context(|| format!("could not create {}", corpus.display()))?;
        let seeds = fuzz_dir.join("seeds").join(name);
        let artifacts_dir = fuzz_dir.join("artifacts").join(name);
        let artifacts_before = files_in(&artifacts_dir);

        let mut cmd = Cmd::cargo().args(["fuzz", "run", name]).arg(&corpus);
        if seeds.is_dir() {
            cmd = cmd.arg(&seeds);
        }
        cmd = cmd
            .arg("--")
            .arg(format!("-max_total_time={}", options.seconds))
            .arg(format!("-timeout={HANG_SECONDS}"))
            .current_dir(&crate_dir);
        if !nightly {
            cmd = cmd.env("RUSTC_BOOTSTRAP", "1");
        }

        if let Err(err) = cmd.run() {
            let crashes: Vec<PathBuf> = files_in(&artifacts_dir)
                .difference(&artifacts_before)
                .cloned()
                .collect();
            if crashes.is_empty() {
                return Err(err.context(format!(
                    "fuzz target `{target}` failed without writing a crash artifact \
                     (see the output above)"
                )));
            }
            bail!("{}", crash_report(&root, target, &crashes));
        }
    }

    let names: Vec<String> = selected.iter().map(ToString::to_string).collect();
    println!(
        "\nxtask fuzz: OK, {total} target(s) ran {}s each without a crash: {}",
        options.seconds,
        names.join(", ")
    );
    Ok(())
}

/// One fuzz target: its crate and its name.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Target {
    /// The crate, relative to the workspace root (its fuzz project is `<krate>/fuzz`).
    krate: &'static str,
    /// The target's name, the stem of its file in `fuzz_targets/`.
    name: String,
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.krate, self.name)
    }
}

/// The fuzz target names: the stems of `fuzz_targets/*.rs`, sorted.
fn discover_targets(dir: &Path) -> Result<Vec<String>> {
    let entries = fs::read_dir(dir).with_context(|| format!("could not list {}", dir.display()))?;
    let mut targets = Vec::new();
    for entry in entries {
        let path = entry
            .with_context(|| format!("could not list {}", dir.display()))?
            .path();
        if path.is_file()
            && path.extension().is_some_and(|ext| ext == "rs")
            && let Some(stem) = path.file_stem().and_then(|stem| stem.to_str())
        {
            targets.push(stem.to_owned());
        }
    }
    targets.sort();
    if targets.is_empty() {
        bail!("no fuzz targets (*.rs) in {}", dir.display());
    }
    Ok(targets)
}

/// All targets, or those named `wanted` if there are any.
fn select(targets: &[Target], wanted: Option<&str>) -> Result<Vec<Target>> {
    let Some(name) = wanted else {
        return Ok(targets.to_vec());
    };
    let named: Vec<Target> = targets
        .iter()
        .filter(|target| target.name == name)
        .cloned()
        .collect();
    if named.is_empty() {
        let all: Vec<String> = targets.iter().map(ToString::to_string).collect();
        bail!(
            "no fuzz target `{name}`; the targets are: {}",
            all.join(", ")
        );
    }
    Ok(named)
}

/// True for a `rustc --version` line of a nightly (or locally built dev) compiler.
fn is_nightly(version: &str) -> bool {
    version.contains("-nightly") || version.contains("-dev")
}

/// The files directly in `dir` (none if it does not exist).
fn files_in(dir: &Path) -> BTreeSet<PathBuf> {
    fs::read_dir(dir)
        .into_iter()
        .flatten()
        .filter_map(|entry| entry.ok().map(|entry| entry.path()))
        .filter(|path| path.is_file())
        .collect()
}

/// What to tell the user when `target` crashed and wrote `crashes`.
fn crash_report(root: &Path, target: &Target, crashes: &[PathBuf]) -> String {
    let shown: Vec<String> = crashes
        .iter()
        .map(|path| {
            path.strip_prefix(root)
                .unwrap_or(path)
                .display()
                .to_string()
        })
        .collect();
    let first = shown.first().map_or("<artifact>", String::as_str);
    let krate = target.krate;
    let name = &target.name;
    let crate_relative = first.strip_prefix(&format!("{krate}/")).unwrap_or(first);
    let regressions = format!("{krate}/{REGRESSIONS_DIR}");
    format!(
        "fuzz target `{target}` found a crash; the input is in:\n    {}\n\
         Keep it as a regression test by copying it into {regressions}/:\n    \
         mkdir -p {regressions} && cp {} {regressions}/\n\
         Reproduce it with:\n    \
         cd {krate} && cargo fuzz run {name} {crate_relative}",
        shown.join("\n    "),
        shown.join(" "),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(args: &[&str]) -> Vec<String> {
        args.iter().map(|arg| (*arg).to_owned()).collect()
    }

    fn parse(list: &[&str]) -> Option<Options> {
        Options::parse(&args(list)).ok().flatten()
    }

    fn target(krate: &'static str, name: &str) -> Target {
        Target {
            krate,
            name: name.to_owned(),
        }
    }

    #[test]
    fn defaults_to_every_target_of_both_crates_for_a_minute() {
        assert_eq!(
            parse(&[]),
            Some(Options {
                seconds: 60,
                krate: None,
                target: None
            })
        );
        assert_eq!(FUZZED_CRATES, ["mqtt-codec", "broker-core"]);
    }

    #[test]
    fn flags_take_separate_or_inline_values() {
        let expected = Some(Options {
            seconds: 5,
            krate: Some("broker-core".to_owned()),
            target: Some("broker".to_owned()),
        });
        assert_eq!(
            parse(&[
                "--seconds",
                "5",
                "--target",
                "broker",
                "--crate",
                "broker-core"
            ]),
            expected
        );
        assert_eq!(
            parse(&["--crate=broker-core", "--target=broker", "--seconds=5"]),
            expected
        );
    }

    #[test]
    fn bad_arguments_are_rejected() {
        for bad in [
            &["--seconds"][..],
            &["--seconds", "0"],
            &["--seconds", "soon"],
            &["--target"],
            &["--crate"],
            &["--crate", "transport-tcp"],
            &["--jobs", "2"],
            &["decode"],
        ] {
            assert!(Options::parse(&args(bad)).is_err(), "{bad:?}");
        }
        assert!(matches!(Options::parse(&args(&["--help"])), Ok(None)));
    }

    #[test]
    fn targets_are_the_rust_files_of_fuzz_targets() {
        let dir = std::env::temp_dir().join(format!("xtask-fuzz-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let made = fs::create_dir_all(dir.join("not_a_target.rs"))
            .and_then(|()| fs::write(dir.join("decode_packet.rs"), ""))
            .and_then(|()| fs::write(dir.join("decode.rs"), ""))
            .and_then(|()| fs::write(dir.join("README.md"), ""));
        assert!(made.is_ok());
        let targets = discover_targets(&dir).ok();
        assert_eq!(
            targets,
            Some(vec!["decode".to_owned(), "decode_packet".to_owned()])
        );
        let _ = fs::remove_dir_all(&dir);
        assert!(discover_targets(&dir).is_err());
    }

    #[test]
    fn a_named_target_must_exist_in_a_selected_crate() {
        let targets = [
            target("mqtt-codec", "decode"),
            target("broker-core", "broker"),
        ];
        assert_eq!(select(&targets, None).ok(), Some(targets.to_vec()));
        assert_eq!(
            select(&targets, Some("broker")).ok(),
            Some(vec![target("broker-core", "broker")])
        );
        let err = select(&targets, Some("c"))
            .err()
            .map(|err| err.to_string())
            .unwrap_or_default();
        assert!(
            err.contains(
                "no fuzz target `c`; the targets are: mqtt-codec/decode, broker-core/broker"
            ),
            "{err}"
        );
    }

    #[test]
    fn every_crate_has_a_fuzz_project_with_targets() {
        let root = crate::project_root();
        for krate in FUZZED_CRATES {
            let dir = root.join(krate).join("fuzz");
            assert!(dir.join("Cargo.toml").is_file(), "{}", dir.display());
            let targets = discover_targets(&dir.join("fuzz_targets")).unwrap_or_default();
            assert!(!targets.is_empty(), "no targets in {}", dir.display());
        }
    }

    #[test]
    fn nightly_is_told_from_the_version_line() {
        assert!(is_nightly("rustc 1.97.0-nightly (abcdef123 2026-05-01)"));
        assert!(!is_nightly("rustc 1.95.0 (59807616e 2026-04-14)"));
        assert!(!is_nightly("rustc 1.96.0-beta.3 (abcdef123 2026-05-01)"));
    }

    #[test]
    fn a_crash_report_says_where_to_copy_the_input() {
        let root = Path::new("/w");
        let crash = root.join("mqtt-codec/fuzz/artifacts/decode/crash-1234");
        let report = crash_report(root, &target("mqtt-codec", "decode"), &[crash]);
        assert!(
            report.contains("    mqtt-codec/fuzz/artifacts/decode/crash-1234\n"),
            "{report}"
        );
        assert!(
            report.contains(
                "cp mqtt-codec/fuzz/artifacts/decode/crash-1234 mqtt-codec/tests/fuzz_regressions/"
            ),
            "{report}"
        );
        assert!(
            report.contains(
                "cd mqtt-codec && cargo fuzz run decode fuzz/artifacts/decode/crash-1234"
            ),
            "{report}"
        );
    }

    #[test]
    fn a_broker_crash_goes_to_the_broker_regressions() {
        let root = Path::new("/w");
        let crash = root.join("broker-core/fuzz/artifacts/broker/crash-99");
        let report = crash_report(root, &target("broker-core", "broker"), &[crash]);
        assert!(
            report.starts_with("fuzz target `broker-core/broker` found a crash"),
            "{report}"
        );
        assert!(
            report.contains(
                "cp broker-core/fuzz/artifacts/broker/crash-99 broker-core/tests/fuzz_regressions/"
            ),
            "{report}"
        );
        assert!(
            report
                .contains("cd broker-core && cargo fuzz run broker fuzz/artifacts/broker/crash-99"),
            "{report}"
        );
    }
}
