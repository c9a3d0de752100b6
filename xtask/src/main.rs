//! `cargo xtask`: the project's developer tasks, as subcommands of one small binary (the
//! cargo-xtask pattern; `.cargo/config.toml` aliases `cargo xtask` to `cargo run -p xtask --`).
//!
//! This file only dispatches. Each task lives in its own module:
//!
//! - [`test`](mod@test): `cargo xtask test` / `cargo xtask ci`, the project's test command (what
//!   CI runs);
//! - [`fuzz`]: `cargo xtask fuzz`, the cargo-fuzz targets of the codec and the broker;
//! - [`bench`](mod@bench): `cargo xtask bench`, the benchmark suites, with
//!   [`e2e_bench`] (nanomq against Mosquitto and rumqttd, end to end);
//!
//! and two modules serve them: [`deps`] (prerequisites: what is needed, how to check and install
//! it) and [`cmd`] (running a command with its command line echoed and named in errors).

mod bench;
mod cmd;
mod deps;
mod e2e_bench;
mod fuzz;
mod test;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Result, bail};

const HELP: &str = "\
cargo xtask: the project's developer tasks

USAGE:
    cargo xtask <TASK> [OPTIONS]

TASKS:
    test     install prerequisites, check formatting, run clippy and every test (what CI runs)
    ci       same as test
    fuzz     run the codec's and the broker's fuzz targets for a bounded time
    bench    run the benchmarks: end to end against Mosquitto and rumqttd, criterion (--micro)
    help     print this help, or a task's help (cargo xtask help fuzz)

Run `cargo xtask <TASK> --help` for a task's options.";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

/// Dispatches to the task named by the first argument.
fn run(args: &[String]) -> Result<()> {
    let Some((task, rest)) = args.split_first() else {
        println!("{HELP}");
        bail!("no task given");
    };
    match task.as_str() {
        "test" | "ci" => test::run(rest),
        "fuzz" => fuzz::run(rest),
        "bench" => bench::run(rest),
        "help" | "-h" | "--help" => {
            println!("{}", help(rest.first().map(String::as_str))?);
            Ok(())
        }
        other => bail!("unknown task `{other}`\n\n{HELP}"),
    }
}

/// The help text of `task`, or of the whole tool when no task is named.
fn help(task: Option<&str>) -> Result<&'static str> {
    Ok(match task {
        None => HELP,
        Some("test" | "ci") => test::HELP,
        Some("fuzz") => fuzz::HELP,
        Some("bench") => bench::HELP,
        Some(other) => bail!("unknown task `{other}`\n\n{HELP}"),
    })
}

/// The workspace root: the parent of this crate's directory.
fn project_root() -> PathBuf {
    let manifest_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest_dir.parent().unwrap_or(manifest_dir).to_path_buf()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_task_has_help() {
        for task in [None, Some("test"), Some("ci"), Some("fuzz"), Some("bench")] {
            let text = help(task).unwrap_or_default();
            assert!(text.starts_with("cargo xtask"), "{task:?}: {text}");
        }
        assert!(help(Some("deploy")).is_err());
    }

    #[test]
    fn unknown_tasks_are_rejected() {
        assert!(run(&["deploy".to_owned()]).is_err());
    }

    #[test]
    fn the_project_root_is_the_workspace() {
        let manifest = std::fs::read_to_string(project_root().join("Cargo.toml"));
        assert!(manifest.is_ok_and(|text| text.contains("[workspace]")));
    }
}
