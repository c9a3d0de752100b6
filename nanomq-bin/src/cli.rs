//! The command line: `nanomq start [--conf FILE]`, `nanomq reload` (a running broker
//! re-reads its file), the client tools `nanomq pub`, `nanomq sub` and `nanomq bench`, and
//! `nanomq passwd` (whose options live with them, in `reload::command`, `client`, `bench`
//! and `passwd`).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::bench::BenchArgs;
use crate::client::error::EXIT_CODES_HELP;
use crate::client::publish::PubArgs;
use crate::client::subscribe::SubArgs;
use crate::passwd::PasswdArgs;
use crate::reload::command::ReloadArgs;

/// What `nanomq start --help` adds after the options: the configuration at a glance.
const START_HELP: &str = "\
CONFIGURATION (TOML; an absent key takes its default, an unknown key is an error):
  [listeners.tcp]  bind = \"0.0.0.0:1883\"      (required; IP:PORT; port 0: a free port)
  [listeners.ws]   bind = \"0.0.0.0:8083\"      path = \"/mqtt\"
  [listeners.ssl]  bind = \"0.0.0.0:8883\"      certfile, keyfile (PEM; required)
                   cacertfile (PEM)            verify_peer = false
                   fail_if_no_peer_cert = false  use_identity_as_username = false
  [listeners.wss]  bind = \"0.0.0.0:8086\"      path = \"/mqtt\"  (TLS keys as [listeners.ssl],
                                               taken from it when absent)
  [mqtt]           max_packet_size = \"1MB\"     max_mqueue_len = 2048
                   max_mqueue_bytes = \"64MB\"   mqueue_drop = \"drop_oldest\" | \"drop_newest\"
                   mqueue_full = \"backpressure\" | \"drop\"  mqueue_full_wait = \"30s\"
                   queue_qos0 = false          max_inflight = 32
                   retry_interval = \"10s\"      keepalive_multiplier = 1.5
                   session_expiry_default = \"2h\" | \"never\"
                   max_topic_alias = 64        server_keep_alive = 0 (0: not imposed)
                   connect_timeout = \"10s\"     shared_strategy = \"round_robin\" | \"random\"
  [log]            level = \"info\"              to = \"console\" | \"file\"
                   dir = \"logs\"                file = \"nanomq.log\"
                   rotation = \"never\" | \"daily\"

  A listener whose table is absent is off; at least one must be on. Each kind is a cargo
  feature (tcp, ws, tls; wss needs ws and tls); a build without one refuses its table. The
  example file etc/nanomq.toml (in the nanomq-bin crate) documents every key; it is also the
  embedded default (TCP on 1883 and WebSocket on 8083/mqtt). The RUST_LOG environment
  variable, when set, overrides log.level.

  A bad configuration is reported with the key it is about, and the broker does not start.
  The address of each listener is logged once bound: `listening on tcp://IP:PORT`,
  `ssl://IP:PORT`, `ws://IP:PORT/mqtt` or `wss://IP:PORT/mqtt`. A TLS certificate or key
  file that cannot be used stops the start-up, naming the file and the problem.
  SIGINT or SIGTERM stops the broker gracefully: it stops accepting connections, disconnects
  every client (MQTT 5 clients with reason 0x8B, server shutting down), and exits with 0.
  SIGHUP (or `nanomq reload`, or POST /api/v4/reload) re-reads the file: [auth], [limits],
  [log], [[bridges]], [sys] and each listener's allow_anonymous change live, without dropping
  a client; a file with any problem changes nothing; the rest is reported as needing a
  restart.";

/// nanomq: an MQTT 3.1, 3.1.1 and 5.0 broker for the edge and the cloud.
#[derive(Debug, Parser)]
#[command(
    name = "nanomq",
    version,
    after_help = "Examples:\n  \
                  nanomq start                      MQTT over TCP on :1883, WebSocket on :8083/mqtt\n  \
                  nanomq start --conf nanomq.toml   on a configuration file\n\n\
                  Run `nanomq start --help` for the configuration keys."
)]
pub(crate) struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub(crate) command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Start the broker, and run until SIGINT or SIGTERM.
    ///
    /// Without --conf, the broker runs on its embedded default configuration: MQTT over TCP on
    /// 0.0.0.0:1883 and over WebSocket on 0.0.0.0:8083/mqtt, logging at info level to
    /// standard error.
    #[command(after_help = START_HELP)]
    Start(StartArgs),

    /// Publish a message (flags as mosquitto_pub; -h is the host, help is --help).
    #[command(
        disable_help_flag = true,
        after_help = format!("{}\n\n{}", crate::client::publish::EXAMPLES, EXIT_CODES_HELP)
    )]
    Pub(PubArgs),

    /// Subscribe and print messages (flags as mosquitto_sub; -h is the host, help is --help).
    #[command(
        disable_help_flag = true,
        after_help = format!("{}\n\n{}", crate::client::subscribe::EXAMPLES, EXIT_CODES_HELP)
    )]
    Sub(SubArgs),

    /// Generate load and measure: throughput, losses, latency, connections, memory.
    #[command(disable_help_flag = true, after_help = crate::bench::AFTER_HELP)]
    Bench(BenchArgs),

    /// Ask a running broker to re-read its configuration file (through its admin API).
    #[command(after_help = crate::reload::command::AFTER_HELP)]
    Reload(ReloadArgs),

    /// Create or update a password file in Mosquitto's format (flags as mosquitto_passwd).
    #[command(after_help = crate::passwd::AFTER_HELP)]
    Passwd(PasswdArgs),
}

/// The options of `nanomq start`.
#[derive(Debug, Args)]
pub(crate) struct StartArgs {
    /// The configuration file (TOML) to run on, instead of the embedded default.
    #[arg(short = 'c', long, value_name = "FILE")]
    pub(crate) conf: Option<PathBuf>,
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn the_command_line_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn start_takes_an_optional_file() {
        let conf = |argv: &[&str]| match Cli::try_parse_from(argv).unwrap().command {
            Command::Start(args) => args.conf,
            other => panic!("{other:?}"),
        };
        assert_eq!(conf(&["nanomq", "start"]), None);
        assert_eq!(
            conf(&["nanomq", "start", "--conf", "/etc/nanomq.toml"]),
            Some(PathBuf::from("/etc/nanomq.toml"))
        );
        assert_eq!(
            conf(&["nanomq", "start", "-c", "x.toml"]),
            Some(PathBuf::from("x.toml"))
        );
    }

    #[test]
    fn reload_takes_a_url_credentials_or_a_file() {
        let args = |argv: &[&str]| match Cli::try_parse_from(argv).unwrap().command {
            Command::Reload(args) => args,
            other => panic!("{other:?}"),
        };
        let a = args(&["nanomq", "reload", "--url", "http://h:1", "-u", "a:b"]);
        assert_eq!(a.url.as_deref(), Some("http://h:1"));
        assert_eq!(a.user.as_deref(), Some("a:b"));
        let a = args(&["nanomq", "reload", "--api-key", "k", "--conf", "n.toml"]);
        assert_eq!(a.api_key.as_deref(), Some("k"));
        assert_eq!(a.conf, Some(PathBuf::from("n.toml")));
        assert!(Cli::try_parse_from(["nanomq", "reload", "-u", "a:b", "--api-key", "k"]).is_err());
    }

    #[test]
    fn a_subcommand_is_required() {
        assert!(Cli::try_parse_from(["nanomq"]).is_err());
        assert!(Cli::try_parse_from(["nanomq", "stop"]).is_err());
    }
}
