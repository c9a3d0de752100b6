//! The MQTT client side of the `nanomq` binary: `nanomq pub`, `nanomq sub`, and the
//! connection layer `nanomq bench` drives its load with. The client itself (transports,
//! CONNECT / CONNACK, QoS flows, keep alive) is the mqtt-client crate; this is the command
//! line around it.
//!
//! Modules:
//! - [`args`]: the mosquitto-style flags, and the connect options they make.
//! - [`transport`], [`conn`]: mqtt-client's transports and packet reader/writer under the
//!   names `nanomq bench` uses.
//! - [`publish`], [`subscribe`]: the two commands, on [`mqtt_client::Client`].
//! - [`output`]: how `sub` prints messages; [`trace`]: `-d`.
//! - [`error`]: what can fail, and the exit code of each outcome.

use std::future::Future;
use std::process::ExitCode;
use std::time::Duration;

pub(crate) mod args;
pub(crate) mod conn;
pub(crate) mod error;
pub(crate) mod output;
pub(crate) mod publish;
pub(crate) mod subscribe;
pub(crate) mod trace;
pub(crate) mod transport;

pub(crate) use error::ClientError;

/// Runs a client command on a single-threaded runtime and turns its outcome into the exit
/// code; an error is printed as `nanomq NAME: error: ...`.
pub(crate) fn run_command(
    name: &str,
    command: impl Future<Output = Result<(), ClientError>>,
) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("nanomq {name}: error: cannot start the async runtime: {e}");
            return ExitCode::from(error::EXIT_NETWORK);
        }
    };
    let result = runtime.block_on(command);
    // Nothing that matters is left running; a blocked stdin reader must not hold us up.
    runtime.shutdown_timeout(Duration::from_millis(100));
    match result {
        Ok(()) => ExitCode::from(error::EXIT_OK),
        Err(e) => {
            eprintln!("nanomq {name}: error: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}

/// Runs `work`, giving up with [`ClientError::Timeout`] after `timeout`.
pub(crate) async fn with_timeout<T>(
    timeout: Option<Duration>,
    work: impl Future<Output = Result<T, ClientError>>,
) -> Result<T, ClientError> {
    match timeout {
        None => work.await,
        Some(limit) => tokio::time::timeout(limit, work)
            .await
            .map_err(|_| ClientError::Timeout(limit))?,
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;
    use mqtt_client::Scheme;
    use mqtt_codec::{ProtocolVersion, QoS};

    use crate::cli::{Cli, Command};

    fn parse(argv: &[&str]) -> Command {
        Cli::try_parse_from(argv).unwrap().command
    }

    #[test]
    fn dash_h_is_the_host_and_help_is_long_only() {
        let Command::Pub(args) = parse(&[
            "nanomq", "pub", "-h", "broker", "-p", "1999", "-t", "t", "-m", "m",
        ]) else {
            panic!("not pub");
        };
        assert_eq!(
            (args.server.host.as_str(), args.server.port),
            ("broker", Some(1999))
        );
        let help = Cli::try_parse_from(["nanomq", "sub", "--help"]).unwrap_err();
        assert_eq!(help.kind(), clap::error::ErrorKind::DisplayHelp);
        assert!(help.to_string().contains("EXIT CODES"));
        let help = Cli::try_parse_from(["nanomq", "bench", "--help"]).unwrap_err();
        assert!(help.to_string().contains("SCENARIOS"));
    }

    #[test]
    fn mosquitto_flags_parse() {
        let Command::Sub(args) = parse(&[
            "nanomq", "sub", "-t", "a/#", "-t", "b", "-q", "2", "-V", "mqttv5", "-i", "me", "-c",
            "-k", "30", "-C", "3", "-W", "1.5", "-v", "-u", "u", "-P", "p", "-D", "k=v",
        ]) else {
            panic!("not sub");
        };
        assert_eq!(args.topics, ["a/#", "b"]);
        assert_eq!(args.qos, QoS::ExactlyOnce);
        assert_eq!(args.server.version, ProtocolVersion::V5);
        assert_eq!(args.session.client_id.as_deref(), Some("me"));
        assert!(args.session.no_clean && args.verbose);
        assert_eq!((args.server.keepalive, args.count), (30, Some(3)));
        assert_eq!(
            args.session.timeout,
            Some(std::time::Duration::from_millis(1500))
        );
        assert_eq!(
            args.session.user_properties,
            [("k".to_owned(), "v".to_owned())]
        );
        // Exactly one message source for pub.
        assert!(Cli::try_parse_from(["nanomq", "pub", "-t", "t"]).is_err());
        assert!(Cli::try_parse_from(["nanomq", "pub", "-t", "t", "-m", "x", "-n"]).is_err());
        assert!(Cli::try_parse_from(["nanomq", "sub", "-t", "t", "-v", "--json"]).is_err());
    }

    #[test]
    fn tls_flags_turn_tls_on_and_urls_override_host_and_port() {
        let Command::Pub(args) =
            parse(&["nanomq", "pub", "-t", "t", "-m", "m", "--cafile", "ca.pem"])
        else {
            panic!("not pub");
        };
        let server = args.server.resolve().unwrap();
        assert_eq!(
            (server.endpoint.scheme, server.endpoint.port),
            (Scheme::Mqtts, 8883)
        );
        let Command::Pub(args) = parse(&[
            "nanomq",
            "pub",
            "-m",
            "m",
            "-h",
            "ignored",
            "--url",
            "ws://u:pw@h:9/path",
        ]) else {
            panic!("not pub");
        };
        let server = args.server.resolve().unwrap();
        assert_eq!(server.endpoint.to_string(), "ws://h:9/path");
        assert_eq!(
            (server.username.as_deref(), server.password.as_deref()),
            (Some("u"), Some("pw"))
        );
    }

    #[test]
    fn the_connect_follows_the_flags() {
        let Command::Sub(args) = parse(&[
            "nanomq",
            "sub",
            "-t",
            "t",
            "-V",
            "5",
            "-i",
            "id",
            "-c",
            "-x",
            "60",
            "-k",
            "5",
            "--will-topic",
            "w",
            "--will-payload",
            "bye",
            "--will-qos",
            "1",
            "-D",
            "a=b",
        ]) else {
            panic!("not sub");
        };
        let server = args.server.resolve().unwrap();
        let connect = super::args::build_connect(&args.server, &server, &args.session, "sub")
            .unwrap()
            .to_connect()
            .unwrap();
        assert_eq!(connect.client_id.as_str(), "id");
        assert!(!connect.clean_start);
        assert_eq!(connect.keep_alive, 5);
        assert_eq!(connect.properties.session_expiry_interval, Some(60));
        assert_eq!(connect.properties.user_properties.len(), 1);
        let will = connect.will.unwrap();
        assert_eq!(
            (will.topic.as_str(), &will.payload[..], will.qos),
            ("w", &b"bye"[..], QoS::AtLeastOnce)
        );
        // v5-only options on 3.1.1 are usage errors.
        let Command::Sub(args) = parse(&["nanomq", "sub", "-t", "t", "-x", "60"]) else {
            panic!("not sub");
        };
        let err =
            super::args::build_connect(&args.server, &server, &args.session, "sub").unwrap_err();
        assert_eq!(err.exit_code(), super::error::EXIT_USAGE);
    }
}
