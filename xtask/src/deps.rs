//! Prerequisites: the tools and packages the project's tasks need, how to tell whether each is
//! present, and how to install the missing ones (apt-get, pip into the project's `.venv`, npm,
//! rustup components, `cargo install`).
//!
//! The lists are data: to make `cargo xtask test` install something, add a [`Prerequisite`] to
//! [`TEST`]. For example, the Python MQTT client the end-to-end tests use is
//!
//! ```text
//! Prerequisite {
//!     name: "paho-mqtt (Python)",
//!     check: Check::PythonImport("paho.mqtt.client"),
//!     install: Install::Pip("paho-mqtt==2.1.0"),
//! },
//! ```
//!
//! and the mosquitto command-line clients are the Debian package `Check::OnPath("mosquitto_pub")`
//! with `Install::Apt("mosquitto-clients")`.

use std::collections::BTreeMap;
use std::env;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Result, bail};

use crate::cmd::Cmd;

/// The project's Python virtual environment, relative to the workspace root. Tests that run
/// Python use `.venv/bin/python` so they see exactly the packages installed here.
pub(crate) const VENV_DIR: &str = ".venv";

/// What the linting steps of `cargo xtask test` need.
pub(crate) const LINT: &[Prerequisite] = &[
    Prerequisite {
        name: "rustfmt",
        check: Check::Succeeds(&["cargo", "fmt", "--version"]),
        install: Install::RustupComponent("rustfmt"),
    },
    Prerequisite {
        name: "clippy",
        check: Check::Succeeds(&["cargo", "clippy", "--version"]),
        install: Install::RustupComponent("clippy"),
    },
];

/// What `cargo test --workspace` needs beyond the Rust toolchain: the real clients that
/// nanomq-bin's end-to-end tests drive the broker with. (rumqttc is a dev-dependency, built by
/// cargo.)
pub(crate) const TEST: &[Prerequisite] = &[
    Prerequisite {
        name: "mosquitto clients (mosquitto_pub, mosquitto_sub)",
        check: Check::OnPath("mosquitto_pub"),
        install: Install::Apt("mosquitto-clients"),
    },
    // The Mosquitto broker: the client tools' tests (nanomq-bin/tests/client_tools.rs) run
    // against it as well as against nanomq; `cargo xtask bench` compares with it.
    Prerequisite {
        name: "mosquitto (the broker)",
        check: Check::OnPath("mosquitto"),
        install: Install::Apt("mosquitto"),
    },
    Prerequisite {
        name: "paho-mqtt (Python)",
        check: Check::PythonImport("paho.mqtt.client"),
        install: Install::Pip("paho-mqtt==2.1.0"),
    },
    // The admin API's tests (nanomq-bin/tests/e2e_api.rs) speak HTTP with curl.
    Prerequisite {
        name: "curl",
        check: Check::OnPath("curl"),
        install: Install::Apt("curl"),
    },
    // Prometheus's own Python client parses the broker's exposition in nanomq-bin's
    // ops::prometheus tests: a real parser, not one written here.
    Prerequisite {
        name: "prometheus-client (Python)",
        check: Check::PythonImport("prometheus_client.parser"),
        install: Install::Pip("prometheus-client==0.26.0"),
    },
    // MQTT.js in a headless browser (nanomq-bin/tests/e2e_browser.rs).
    Prerequisite {
        name: "chromium",
        check: Check::OnPath("chromium"),
        install: Install::Apt("chromium"),
    },
    Prerequisite {
        name: "npm",
        check: Check::OnPath("npm"),
        install: Install::Apt("npm"),
    },
    // Node runs MQTT.js outside the browser too (nanomq-bin/tests/e2e_scram.rs).
    Prerequisite {
        name: "node",
        check: Check::OnPath("node"),
        install: Install::Apt("nodejs"),
    },
    Prerequisite {
        name: "MQTT.js (npm package mqtt)",
        check: Check::NodePackage {
            dir: BROWSER_TEST_DIR,
            package: "mqtt",
        },
        install: Install::Npm {
            dir: BROWSER_TEST_DIR,
            package: "mqtt@5.16.0",
        },
    },
];

/// Where the browser test's npm packages go (its `node_modules`), relative to the workspace
/// root: next to the page that loads them.
const BROWSER_TEST_DIR: &str = "nanomq-bin/tests/browser";

/// What `cargo xtask bench`'s counts of instructions need (the Prometheus-scrape section
/// runs the broker under callgrind).
pub(crate) const BENCH_INSTRUCTIONS: &[Prerequisite] = &[Prerequisite {
    name: "valgrind",
    check: Check::OnPath("valgrind"),
    install: Install::Apt("valgrind"),
}];

/// The brokers `cargo xtask bench` compares nanomq with, beyond Mosquitto (in [`TEST`]):
/// rumqttd, built from crates.io. A bench without it still runs (its column says why it is
/// missing), so the end-to-end suite installs this list on its own.
pub(crate) const BENCH_PEERS: &[Prerequisite] = &[Prerequisite {
    name: "rumqttd 0.20 (the broker)",
    check: Check::Succeeds(&["rumqttd", "--version"]),
    install: Install::CargoUnlocked(RUMQTTD_CRATE),
}];

/// The rumqttd release `cargo xtask bench` installs: 0.20.0, the newest on crates.io. Not
/// with its own lock file: that pins metrics 0.22.1, which today's compilers reject
/// (E0521, rust-lang/rust#141402); resolved afresh, it gets metrics 0.22.4, which builds.
pub(crate) const RUMQTTD_CRATE: &str = "rumqttd@0.20.0";

/// What `cargo xtask fuzz` needs.
pub(crate) const FUZZ: &[Prerequisite] = &[Prerequisite {
    name: "cargo-fuzz",
    check: Check::Succeeds(&["cargo", "fuzz", "--version"]),
    install: Install::Cargo("cargo-fuzz"),
}];

/// One thing a task needs: how to tell it is there, and how to install it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Prerequisite {
    /// What to call it in messages.
    pub(crate) name: &'static str,
    /// How to tell it is present.
    pub(crate) check: Check,
    /// How to install it when it is not.
    pub(crate) install: Install,
}

/// How to tell a prerequisite is present.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Check {
    /// An executable of this name is on `PATH` (what `command -v NAME` tells).
    OnPath(&'static str),
    /// This command line (program first) runs and exits successfully, e.g. `cargo fmt --version`.
    Succeeds(&'static [&'static str]),
    /// `import MODULE` works in the project's venv (`.venv/bin/python`).
    PythonImport(&'static str),
    /// `DIR/node_modules/PACKAGE/package.json` exists, `dir` relative to the workspace root.
    NodePackage {
        /// The directory whose `node_modules` holds the package.
        dir: &'static str,
        /// The npm package name (`mqtt`, `@scope/name`).
        package: &'static str,
    },
}

/// How to install a missing prerequisite. Installs of one kind are batched into one command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Install {
    /// A Debian package, installed with `apt-get install` after one `apt-get update`.
    Apt(&'static str),
    /// A pip requirement (`paho-mqtt==2.1.0`), installed into the project's venv, which is
    /// created with `python3 -m venv` if it does not exist.
    Pip(&'static str),
    /// An npm package spec installed with `npm install --prefix DIR`, `dir` relative to the
    /// workspace root.
    Npm {
        /// The directory to install into (its `node_modules`).
        dir: &'static str,
        /// The npm package spec (`mqtt@5`).
        package: &'static str,
    },
    /// A rustup component of the active toolchain.
    RustupComponent(&'static str),
    /// A crate installed with `cargo install --locked`: its name, or `name@version` for
    /// one release.
    Cargo(&'static str),
    /// A crate installed with `cargo install` without `--locked` (its dependencies resolved
    /// afresh, to their newest compatible releases), for a release whose own lock file no
    /// longer builds: `name@version`.
    CargoUnlocked(&'static str),
}

impl Check {
    /// True if the prerequisite is present; `root` is the workspace root.
    pub(crate) fn is_satisfied(&self, root: &Path) -> bool {
        match *self {
            Self::OnPath(name) => find_on_path(name).is_some(),
            Self::Succeeds(command_line) => match command_line.split_first() {
                Some((program, args)) => Cmd::new(program)
                    .args(args)
                    .current_dir(root)
                    .succeeds_quietly(),
                None => false,
            },
            Self::PythonImport(module) => {
                let python = venv_python(root);
                python.is_file()
                    && Cmd::new(python)
                        .args(["-c", &format!("import {module}")])
                        .current_dir(root)
                        .succeeds_quietly()
            }
            Self::NodePackage { dir, package } => root
                .join(dir)
                .join("node_modules")
                .join(package)
                .join("package.json")
                .is_file(),
        }
    }
}

/// The venv's interpreter: `ROOT/.venv/bin/python`.
pub(crate) fn venv_python(root: &Path) -> PathBuf {
    root.join(VENV_DIR).join("bin").join("python")
}

/// Finds an executable named `name` on `PATH`, as `command -v` does.
fn find_on_path(name: &str) -> Option<PathBuf> {
    let path = env::var_os("PATH")?;
    env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| is_executable(candidate))
}

#[cfg(unix)]
fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt as _;
    path.metadata()
        .is_ok_and(|meta| meta.is_file() && meta.permissions().mode() & 0o111 != 0)
}

#[cfg(not(unix))]
fn is_executable(path: &Path) -> bool {
    path.is_file()
}

/// Makes sure every prerequisite in `wanted` is present: checks each, installs the missing ones
/// (batched per installer; `apt-get update` runs once, and only if an apt package is missing),
/// then checks again. Fails naming each tool still missing and the exact command to install it.
pub(crate) fn ensure(root: &Path, wanted: &[Prerequisite]) -> Result<()> {
    ensure_with(root, wanted, Cmd::run)
}

/// [`ensure`], with `run` standing in for running each install command.
fn ensure_with(
    root: &Path,
    wanted: &[Prerequisite],
    mut run: impl FnMut(&Cmd) -> Result<()>,
) -> Result<()> {
    let absent = missing(root, wanted);
    if absent.is_empty() {
        let names: Vec<&str> = wanted.iter().map(|p| p.name).collect();
        if names.is_empty() {
            println!("nothing to check");
        } else {
            println!("present: {}", names.join(", "));
        }
        return Ok(());
    }
    let names: Vec<&str> = absent.iter().map(|p| p.name).collect();
    println!("missing: {}; installing", names.join(", "));

    for cmd in install_plan(root, &absent) {
        if let Err(err) = run(&cmd) {
            bail!(
                "{err:#}\ncould not install the missing prerequisites; install them with:\n{}",
                hints(root, &absent)
            );
        }
    }

    let still_absent: Vec<&Prerequisite> = absent
        .iter()
        .copied()
        .filter(|prerequisite| !prerequisite.check.is_satisfied(root))
        .collect();
    if !still_absent.is_empty() {
        bail!(
            "still missing after installing; install them with:\n{}",
            hints(root, &still_absent)
        );
    }
    println!("installed: {}", names.join(", "));
    Ok(())
}

/// The prerequisites in `wanted` whose check fails.
pub(crate) fn missing<'a>(root: &Path, wanted: &'a [Prerequisite]) -> Vec<&'a Prerequisite> {
    wanted
        .iter()
        .filter(|prerequisite| !prerequisite.check.is_satisfied(root))
        .collect()
}

/// One line per prerequisite: its name and the exact commands that install it alone.
fn hints(root: &Path, missing: &[&Prerequisite]) -> String {
    let mut out = String::new();
    for prerequisite in missing {
        let commands: Vec<String> = install_plan(root, &[*prerequisite])
            .iter()
            .map(Cmd::describe)
            .collect();
        let _ = writeln!(out, "  {}: {}", prerequisite.name, commands.join(" && "));
    }
    out
}

/// The commands that install `missing`, in order: apt (update once, then one install), pip (venv
/// first if needed), npm (one install per directory), rustup (one `component add`), cargo
/// (one install per crate).
pub(crate) fn install_plan(root: &Path, missing: &[&Prerequisite]) -> Vec<Cmd> {
    let mut apt = Vec::new();
    let mut pip = Vec::new();
    let mut npm: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    let mut rustup = Vec::new();
    let mut cargo = Vec::new();
    for prerequisite in missing {
        match prerequisite.install {
            Install::Apt(package) => apt.push(package),
            Install::Pip(requirement) => pip.push(requirement),
            Install::Npm { dir, package } => npm.entry(dir).or_default().push(package),
            Install::RustupComponent(component) => rustup.push(component),
            Install::Cargo(krate) => cargo.push((krate, true)),
            Install::CargoUnlocked(krate) => cargo.push((krate, false)),
        }
    }

    let mut plan = Vec::new();
    if !apt.is_empty() {
        plan.push(apt_get().arg("update"));
        plan.push(
            apt_get()
                .args(["install", "-y", "--no-install-recommends"])
                .args(&apt),
        );
    }
    if !pip.is_empty() {
        let python = venv_python(root);
        if !python.is_file() {
            plan.push(
                Cmd::new("python3")
                    .args(["-m", "venv"])
                    .arg(root.join(VENV_DIR)),
            );
        }
        plan.push(
            Cmd::new(python)
                .args(["-m", "pip", "install", "--disable-pip-version-check"])
                .args(&pip),
        );
    }
    for (dir, packages) in npm {
        plan.push(
            Cmd::new("npm")
                .args(["install", "--no-audit", "--no-fund", "--prefix"])
                .arg(root.join(dir))
                .args(&packages),
        );
    }
    if !rustup.is_empty() {
        plan.push(Cmd::new("rustup").args(["component", "add"]).args(&rustup));
    }
    for (krate, locked) in cargo {
        let install = Cmd::cargo().args(["install", krate]);
        plan.push(if locked {
            install.arg("--locked")
        } else {
            install
        });
    }
    plan
}

/// `apt-get`, non-interactive (CI has no terminal to answer a debconf question).
fn apt_get() -> Cmd {
    Cmd::new("apt-get").env("DEBIAN_FRONTEND", "noninteractive")
}

#[cfg(test)]
mod tests {
    use std::fs;

    use super::*;

    const MISSING_COMMAND: &str = "xtask-no-such-command-7f3a";

    fn scratch_dir(name: &str) -> PathBuf {
        let dir = env::temp_dir().join(format!("xtask-deps-{}-{name}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        dir
    }

    fn strings(plan: &[Cmd]) -> Vec<String> {
        plan.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn a_command_on_path_is_present_and_an_unknown_one_is_missing() {
        let root = Path::new(".");
        assert!(Check::OnPath("sh").is_satisfied(root));
        assert!(!Check::OnPath(MISSING_COMMAND).is_satisfied(root));
    }

    #[test]
    fn a_command_line_check_follows_its_exit_status() {
        let root = Path::new(".");
        assert!(Check::Succeeds(&["sh", "-c", "exit 0"]).is_satisfied(root));
        assert!(!Check::Succeeds(&["sh", "-c", "exit 1"]).is_satisfied(root));
        assert!(!Check::Succeeds(&[MISSING_COMMAND, "--version"]).is_satisfied(root));
        assert!(!Check::Succeeds(&[]).is_satisfied(root));
    }

    #[test]
    fn cargo_itself_is_present() {
        // Whatever runs these tests has cargo.
        let wanted = [Prerequisite {
            name: "cargo",
            check: Check::Succeeds(&["cargo", "--version"]),
            install: Install::Cargo("cargo"),
        }];
        assert!(missing(Path::new("."), &wanted).is_empty());
    }

    #[test]
    fn a_python_import_without_a_venv_is_missing() {
        let root = scratch_dir("no-venv");
        assert!(!Check::PythonImport("sys").is_satisfied(&root));
    }

    #[test]
    fn a_python_import_is_checked_with_the_venv_interpreter() {
        // A stand-in interpreter: succeeds only for `-c "import present"`.
        let root = scratch_dir("fake-venv");
        let python = venv_python(&root);
        let written = python
            .parent()
            .map(fs::create_dir_all)
            .and_then(Result::ok)
            .and_then(|()| fs::write(&python, "#!/bin/sh\n[ \"$2\" = 'import present' ]\n").ok());
        assert!(written.is_some());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let _ = fs::set_permissions(&python, fs::Permissions::from_mode(0o755));
        }
        assert!(Check::PythonImport("present").is_satisfied(&root));
        assert!(!Check::PythonImport("absent").is_satisfied(&root));
        let _ = fs::remove_dir_all(&root);
    }

    #[test]
    fn a_node_package_is_present_once_its_package_json_exists() {
        let root = scratch_dir("node");
        let check = Check::NodePackage {
            dir: "e2e",
            package: "@scope/pkg",
        };
        assert!(!check.is_satisfied(&root));
        let package_dir = root.join("e2e/node_modules/@scope/pkg");
        let written = fs::create_dir_all(&package_dir)
            .and_then(|()| fs::write(package_dir.join("package.json"), "{}"));
        assert!(written.is_ok());
        assert!(check.is_satisfied(&root));
        let _ = fs::remove_dir_all(&root);
    }

    #[test]
    fn nothing_missing_means_nothing_to_install() {
        assert!(install_plan(Path::new("/r"), &[]).is_empty());
        let present = [Prerequisite {
            name: "sh",
            check: Check::OnPath("sh"),
            install: Install::Apt("dash"),
        }];
        let mut ran = Vec::new();
        let result = ensure_with(Path::new("."), &present, |cmd| {
            ran.push(cmd.to_string());
            Ok(())
        });
        assert!(result.is_ok());
        assert!(ran.is_empty(), "{ran:?}");
    }

    #[test]
    fn installs_are_batched_per_installer_with_one_apt_update_first() {
        let wanted = [
            Prerequisite {
                name: "mosquitto clients",
                check: Check::OnPath("mosquitto_pub"),
                install: Install::Apt("mosquitto-clients"),
            },
            Prerequisite {
                name: "rustfmt",
                check: Check::Succeeds(&["cargo", "fmt", "--version"]),
                install: Install::RustupComponent("rustfmt"),
            },
            Prerequisite {
                name: "chromium",
                check: Check::OnPath("chromium"),
                install: Install::Apt("chromium"),
            },
            Prerequisite {
                name: "paho-mqtt",
                check: Check::PythonImport("paho.mqtt.client"),
                install: Install::Pip("paho-mqtt==2.1.0"),
            },
            Prerequisite {
                name: "MQTT.js",
                check: Check::NodePackage {
                    dir: "web",
                    package: "mqtt",
                },
                install: Install::Npm {
                    dir: "web",
                    package: "mqtt@5",
                },
            },
            Prerequisite {
                name: "clippy",
                check: Check::Succeeds(&["cargo", "clippy", "--version"]),
                install: Install::RustupComponent("clippy"),
            },
        ];
        let refs: Vec<&Prerequisite> = wanted.iter().collect();
        let root = scratch_dir("plan");
        let plan = strings(&install_plan(&root, &refs));
        let root = root.display();
        assert_eq!(
            plan,
            [
                "DEBIAN_FRONTEND=noninteractive apt-get update".to_owned(),
                "DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
                 mosquitto-clients chromium"
                    .to_owned(),
                format!("python3 -m venv {root}/.venv"),
                format!(
                    "{root}/.venv/bin/python -m pip install --disable-pip-version-check \
                     paho-mqtt==2.1.0"
                ),
                format!("npm install --no-audit --no-fund --prefix {root}/web mqtt@5"),
                "rustup component add rustfmt clippy".to_owned(),
            ]
        );
    }

    #[test]
    fn cargo_fuzz_installs_with_cargo_install_locked() {
        let refs: Vec<&Prerequisite> = FUZZ.iter().collect();
        let plan = install_plan(Path::new("."), &refs);
        let last = plan.last().map(ToString::to_string).unwrap_or_default();
        assert!(
            last.ends_with("cargo install cargo-fuzz --locked"),
            "{last}"
        );
    }

    #[test]
    fn rumqttd_installs_one_release_with_its_dependencies_resolved_afresh() {
        let refs: Vec<&Prerequisite> = BENCH_PEERS.iter().collect();
        let plan = strings(&install_plan(Path::new("."), &refs));
        assert_eq!(plan, ["cargo install rumqttd@0.20.0"]);
    }

    const IMAGINARY: [Prerequisite; 1] = [Prerequisite {
        name: "imaginary tool",
        check: Check::OnPath(MISSING_COMMAND),
        install: Install::Apt("imaginary-tool"),
    }];

    const IMAGINARY_HINT: &str = "imaginary tool: DEBIAN_FRONTEND=noninteractive apt-get update \
         && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
         imaginary-tool";

    #[test]
    fn a_failed_install_names_the_tool_and_its_install_command() {
        let mut ran = Vec::new();
        let err = ensure_with(Path::new("."), &IMAGINARY, |cmd| {
            ran.push(cmd.to_string());
            bail!("command failed (exit status: 100): `{cmd}`")
        })
        .err()
        .map(|err| format!("{err:#}"))
        .unwrap_or_default();
        assert_eq!(ran, ["DEBIAN_FRONTEND=noninteractive apt-get update"]);
        assert!(err.contains("could not install"), "{err}");
        assert!(err.contains(IMAGINARY_HINT), "{err}");
    }

    #[test]
    fn a_tool_still_missing_after_installing_is_reported() {
        let mut ran = Vec::new();
        let err = ensure_with(Path::new("."), &IMAGINARY, |cmd| {
            ran.push(cmd.to_string());
            Ok(())
        })
        .err()
        .map(|err| format!("{err:#}"))
        .unwrap_or_default();
        assert_eq!(ran.len(), 2, "{ran:?}");
        assert!(err.contains("still missing"), "{err}");
        assert!(err.contains(IMAGINARY_HINT), "{err}");
    }
}
