//! `cargo xtask bench`: runs the project's benchmark suites: the end-to-end scenarios against
//! the release broker, compared with Mosquitto and rumqttd (`--e2e`, the default; see
//! [`crate::e2e_bench`]), and the criterion micro-benchmarks of the library crates
//! (`--micro`).

use std::path::Path;

use anyhow::{Context as _, Result, bail};

use crate::cmd::Cmd;
use crate::e2e_bench;

pub(crate) const HELP: &str = "\
cargo xtask bench: run the benchmarks

USAGE:
    cargo xtask bench [--e2e] [--micro] [E2E-OPTIONS] [FILTER...] [-- CRITERION-ARGS...]

SUITES:
    --e2e       end to end: the release nanomq broker and its peers, Mosquitto (if Debian's
                `mosquitto` is installed) and rumqttd 0.20 (installed with `cargo install`
                when missing), with equivalent configurations, on ephemeral loopback
                ports, driven by `nanomq bench` through the same scenarios (QoS 0 and 1 fan-in,
                fan-out 1->50, 50 pairs, latency at a fixed rate, a QoS 1 flood, pairs with
                a subscriber that never reads and the broker's memory growth, one pair's
                latency with 10,000 retained messages while another client floods
                SUBSCRIBEs, 10,000 idle connections with the broker's memory per
                connection), alternating brokers, with the best peer per figure; then
                nanomq and Mosquitto with access control,
                each against its own run without (QoS 1 fan-in and 50 pairs with 1,000 ACL
                rules and with a password file of 100,000 $7$ users, the CONNECT rate with
                those hashes, one pair's latency beside a connect storm; 3 rounds each);
                then 50 pairs QoS 1 and fan-out QoS 0 against nanomq alone over tcp, ws,
                ssl and wss (TLS with a throwaway certificate from `openssl`, if
                installed); then 50 pairs QoS 1 against nanomq with its admin API, with
                a Prometheus scrape of /metrics every 100 ms and without (3 rounds),
                and the broker's instructions per scrape and per delivered message
                under valgrind's callgrind (installed with apt-get when missing), which
                give the scrapes' share of its work at the measured rate;
                then QoS 1 fan-in to an
                offline persistent subscriber against nanomq with sessions in memory and
                with its SQLite store at sync = \"periodic\" and \"always\"; then, with
                Mosquitto as the upstream, 100,000 QoS 1 messages forwarded by the edge's
                bridge (nanomq's [[bridges]] against Mosquitto's bridge) and the drain of
                100,000 queued while the upstream was down (against the upstream's own
                ingest from a direct publisher); 3 rounds each; then each broker's
                instructions per delivered message under callgrind (fan-out QoS 0 and 1,
                pairs, fan-in; fixed counts, a fresh broker each). Prints Markdown tables with
                the ratios nanomq/best peer, nanomq/mosquitto, transport/tcp, scraping/without,
                store/in-memory and bridge/baseline and writes
                target/bench/e2e.{md,svg,json}. A few minutes.
    --micro     the criterion micro-benchmarks (cargo bench -p mqtt-codec --bench '*')

With no suite flag, --e2e runs. Give both flags for both.

E2E-OPTIONS:
    --seconds N        seconds of publishing per throughput scenario (default 5)
    --clients N        clients of fan-in, fan-out and pairs (default 50)
    --connections N    idle connections (default 10000)
    --no-mosquitto     no Mosquitto in the main table (nor in the access-control and
                       bridge sections)
    --no-rumqttd       no rumqttd in the main table (and no `cargo install` of it)
    --persistence-only only the persistence section (min(--clients, 20) publishers,
                       min(--seconds, 3) s per store, then the queued backlog of 1,000
                       offline sessions, about 1 min); writes
                       target/bench/persistence.{md,json}, leaving e2e.* as they were
    --only TEXT        only the scenarios whose names contain TEXT (repeatable), with the
                       runs they are compared with, in every section (e.g. --only
                       \"retained lookup\", --only stalled); writes target/bench/
                       e2e-only.{md,svg,json}, leaving e2e.* as they were; --only \"access
                control\" runs the access-control section alone, --only bridge the
                       bridge section, --only scrape the Prometheus-scrape section,
                       --only backlog the queued backlog of offline sessions

Other words (a criterion filter such as `decode`) and everything after `--` (such as
`--save-baseline main`) are passed to the criterion benchmark binaries.

OPTIONS:
    -h, --help  print this help";

/// The crates whose `benches/` hold criterion micro-benchmarks.
const MICRO_CRATES: &[&str] = &["mqtt-codec"];

/// A benchmark suite `cargo xtask bench` can run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Suite {
    /// The end-to-end scenarios, nanomq against Mosquitto.
    E2e,
    /// The criterion micro-benchmarks of [`MICRO_CRATES`].
    Micro,
}

impl Suite {
    /// The suites a plain `cargo xtask bench` runs.
    const DEFAULT: &[Self] = &[Self::E2e];

    fn name(self) -> &'static str {
        match self {
            Self::E2e => "end to end (nanomq vs mosquitto and rumqttd)",
            Self::Micro => "micro (criterion)",
        }
    }

    /// The command that runs the micro-benchmarks, passing `extra` to the benchmark binaries.
    fn micro_command(root: &Path, extra: &[String]) -> Cmd {
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

/// What the command line asked for.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
struct Options {
    /// The suites named by flags; empty means [`Suite::DEFAULT`].
    suites: Vec<Suite>,
    /// Arguments for the benchmark binaries.
    extra: Vec<String>,
    /// The end-to-end suite's options.
    e2e: e2e_bench::Options,
}

impl Options {
    /// Parses the arguments after `bench`; `None` when help was asked for.
    fn parse(args: &[String]) -> Result<Option<Self>> {
        let mut options = Self::default();
        let mut args = args.iter();
        while let Some(arg) = args.next() {
            match arg.as_str() {
                "--micro" | "--e2e" => {
                    let suite = if arg == "--micro" {
                        Suite::Micro
                    } else {
                        Suite::E2e
                    };
                    if !options.suites.contains(&suite) {
                        options.suites.push(suite);
                    }
                }
                "--no-mosquitto" => options.e2e.mosquitto = false,
                "--no-rumqttd" => options.e2e.rumqttd = false,
                "--persistence-only" => options.e2e.persistence_only = true,
                "--only" => {
                    let text = args.next().context("--only needs a text")?;
                    options.e2e.only.push(text.clone());
                }
                "--seconds" | "--clients" | "--connections" => {
                    let value = args
                        .next()
                        .with_context(|| format!("{arg} needs a number"))?;
                    let n: u64 =
                        value.parse().ok().filter(|n| *n > 0).with_context(|| {
                            format!("{arg} {value}: expected a positive number")
                        })?;
                    let sizes = &mut options.e2e.sizes;
                    match arg.as_str() {
                        "--seconds" => sizes.seconds = n,
                        "--clients" => sizes.clients = usize::try_from(n)?,
                        _ => sizes.connections = usize::try_from(n)?,
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

    /// The suites to run: those named, or the default.
    fn selected(&self) -> &[Suite] {
        if self.suites.is_empty() {
            Suite::DEFAULT
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
        println!("no suite flag given: running the end-to-end suite (--micro for criterion)");
    }
    let root = crate::project_root();
    for suite in options.selected() {
        println!("\n==> xtask bench: {}", suite.name());
        match suite {
            Suite::E2e => e2e_bench::run(&root, options.e2e.clone())?,
            Suite::Micro => Suite::micro_command(&root, &options.extra).run()?,
        }
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
    fn no_flag_selects_the_end_to_end_suite() {
        let options = parse(&[]).unwrap_or_default();
        assert_eq!(options.selected(), [Suite::E2e]);
        assert!(options.extra.is_empty());
        let both = parse(&["--micro", "--e2e"]).unwrap_or_default();
        assert_eq!(both.selected(), [Suite::Micro, Suite::E2e]);
    }

    #[test]
    fn micro_selects_criterion_and_passes_filters_and_args_through() {
        let options = parse(&["--micro", "decode", "--", "--save-baseline", "main"]);
        assert_eq!(
            options,
            Some(Options {
                suites: vec![Suite::Micro],
                extra: vec!["decode".into(), "--save-baseline".into(), "main".into()],
                e2e: e2e_bench::Options::default(),
            })
        );
    }

    #[test]
    fn e2e_options_size_the_scenarios() {
        let options = parse(&["--seconds", "2", "--clients", "5", "--connections", "100"]);
        let e2e = options.unwrap_or_default().e2e;
        assert_eq!(
            (e2e.sizes.seconds, e2e.sizes.clients, e2e.sizes.connections),
            (2, 5, 100)
        );
        assert!(parse(&["--no-mosquitto"]).is_some_and(|o| !o.e2e.mosquitto && o.e2e.rumqttd));
        assert!(parse(&["--no-rumqttd"]).is_some_and(|o| o.e2e.mosquitto && !o.e2e.rumqttd));
        assert!(!parse(&[]).unwrap_or_default().e2e.persistence_only);
        let persistence = parse(&["--persistence-only", "--seconds", "1"]).unwrap_or_default();
        assert!(persistence.e2e.persistence_only);
        assert_eq!(persistence.selected(), [Suite::E2e]);
        assert_eq!(persistence.e2e.sizes.seconds, 1);
        assert!(Options::parse(&["--seconds".to_owned()]).is_err());
        let only = parse(&["--only", "retained lookup", "--only", "stalled"]).unwrap_or_default();
        assert_eq!(only.e2e.only, ["retained lookup", "stalled"]);
        assert!(only.extra.is_empty());
        assert!(Options::parse(&["--only".to_owned()]).is_err());
        assert!(Options::parse(&["--seconds".to_owned(), "0".to_owned()]).is_err());
    }

    #[test]
    fn unknown_flags_before_the_separator_are_rejected() {
        let args = vec!["--e3e".to_owned()];
        assert!(Options::parse(&args).is_err());
        assert!(matches!(Options::parse(&["-h".to_owned()]), Ok(None)));
    }

    #[test]
    fn micro_runs_cargo_bench_on_the_criterion_targets() {
        let cmd = Suite::micro_command(Path::new("/r"), &["decode".to_owned()]).to_string();
        assert!(
            cmd.ends_with(" bench -p mqtt-codec --bench '*' -- decode"),
            "{cmd}"
        );
    }
}
