//! `cargo xtask bench`: runs the project's benchmark suites. Today there is one, the criterion
//! micro-benchmarks of the library crates (`--micro`); end-to-end scenarios against the broker
//! become a second [`Suite`] with its own flag.

use std::path::Path;

use anyhow::{Result, bail};

use crate::cmd::Cmd;

pub(crate) const HELP: &str = "\
cargo xtask bench: run the benchmarks

USAGE:
    cargo xtask bench [--micro] [FILTER...] [-- CRITERION-ARGS...]

SUITES:
    --micro     the criterion micro-benchmarks (cargo bench -p mqtt-codec --bench '*')

With no suite flag every suite runs. Today the only suite is --micro: no end-to-end
scenarios exist yet.

Other words (a criterion filter such as `decode`) and everything after `--` (such as
`--save-baseline main`) are passed to the benchmark binaries.

OPTIONS:
    -h, --help  print this help";

/// The crates whose `benches/` hold criterion micro-benchmarks.
const MICRO_CRATES: &[&str] = &["mqtt-codec"];

/// A benchmark suite `cargo xtask bench` can run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Suite {
    /// The criterion micro-benchmarks of [`MICRO_CRATES`].
    Micro,
}

impl Suite {
    /// Every suite, in the order a plain `cargo xtask bench` runs them.
    const ALL: &[Self] = &[Self::Micro];

    fn name(self) -> &'static str {
        match self {
            Self::Micro => "micro (criterion)",
        }
    }

    /// The command that runs this suite, passing `extra` to the benchmark binaries.
    fn command(self, root: &Path, extra: &[String]) -> Cmd {
        match self {
            Self::Micro => {
                let mut cmd = Cmd::cargo().arg("bench");
                for krate in MICRO_CRATES {
                    cmd = cmd.args(["-p", krate]);
                }
                // Only the criterion targets: the libtest harness of lib/unit tests would reject
                // criterion's arguments.
                cmd.args(["--bench", "*"])
                    .arg("--")
                    .args(extra)
                    .current_dir(root)
            }
        }
    }
}

/// What the command line asked for.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
struct Options {
    /// The suites named by flags; empty means every suite.
    suites: Vec<Suite>,
    /// Arguments for the benchmark binaries.
    extra: Vec<String>,
}

impl Options {
    /// Parses the arguments after `bench`; `None` when help was asked for.
    fn parse(args: &[String]) -> Result<Option<Self>> {
        let mut options = Self::default();
        let mut args = args.iter();
        while let Some(arg) = args.next() {
            match arg.as_str() {
                "--micro" => {
                    if !options.suites.contains(&Suite::Micro) {
                        options.suites.push(Suite::Micro);
                    }
                }
                "-h" | "--help" => return Ok(None),
                "--" => {
                    options.extra.extend(args.by_ref().cloned());
                }
                flag if flag.starts_with('-') => bail!(
                    "unknown flag `{flag}` for `cargo xtask bench`; \
                     pass flags for criterion after `--`\n\n{HELP}"
                ),
                filter => options.extra.push(filter.to_owned()),
            }
        }
        Ok(Some(options))
    }

    /// The suites to run: those named, or all of them.
    fn selected(&self) -> &[Suite] {
        if self.suites.is_empty() {
            Suite::ALL
        } else {
            &self.suites
        }
    }
}

/// Runs `cargo xtask bench` with the arguments that follow `bench`.
pub(crate) fn run(args: &[String]) -> Result<()> {
    let Some(options) = Options::parse(args)? else {
        println!("{HELP}");
        return Ok(());
    };
    if options.suites.is_empty() {
        let names: Vec<&str> = Suite::ALL.iter().map(|suite| suite.name()).collect();
        println!(
            "no suite flag given: running every suite: {} (no end-to-end scenarios exist yet)",
            names.join(", ")
        );
    }
    let root = crate::project_root();
    for suite in options.selected() {
        println!("\n==> xtask bench: {}", suite.name());
        suite.command(&root, &options.extra).run()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(list: &[&str]) -> Option<Options> {
        let args: Vec<String> = list.iter().map(|arg| (*arg).to_owned()).collect();
        Options::parse(&args).ok().flatten()
    }

    #[test]
    fn no_flag_selects_every_suite() {
        let options = parse(&[]).unwrap_or_default();
        assert_eq!(options.selected(), Suite::ALL);
        assert!(options.extra.is_empty());
    }

    #[test]
    fn micro_selects_criterion_and_passes_filters_and_args_through() {
        let options = parse(&["--micro", "decode", "--", "--save-baseline", "main"]);
        assert_eq!(
            options,
            Some(Options {
                suites: vec![Suite::Micro],
                extra: vec!["decode".into(), "--save-baseline".into(), "main".into()],
            })
        );
    }

    #[test]
    fn unknown_flags_before_the_separator_are_rejected() {
        let args = vec!["--e2e".to_owned()];
        assert!(Options::parse(&args).is_err());
        assert!(matches!(Options::parse(&["-h".to_owned()]), Ok(None)));
    }

    #[test]
    fn micro_runs_cargo_bench_on_the_criterion_targets() {
        let cmd = Suite::Micro
            .command(Path::new("/r"), &["decode".to_owned()])
            .to_string();
        assert!(
            cmd.ends_with(" bench -p mqtt-codec --bench '*' -- decode"),
            "{cmd}"
        );
    }
}
