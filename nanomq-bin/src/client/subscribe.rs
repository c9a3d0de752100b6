//! `nanomq sub`: connect, subscribe, print messages as they arrive (payload, `topic payload`
//! or JSON lines) until `-C` messages, `-W` seconds, or Ctrl-C.

use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use mqtt_client::{Client, Connector, Incoming, SessionState};
use mqtt_codec::{
    Publish, QoS, SubscribeProperties, Subscription, SubscriptionOptions, TopicFilter,
};
use tokio::time::Instant;

use super::ClientError;
use super::args::{ServerArgs, SessionArgs, build_connect, parse_qos, user_properties};
use super::output::{Format, Printer};
use super::publish::sleep_until_opt;

/// The examples `nanomq sub --help` ends with (before the exit codes).
pub(crate) const EXAMPLES: &str = "\
EXAMPLES:
  nanomq sub -h 127.0.0.1 -p 1883 -t 'sensors/#' -v
  nanomq sub -t a/b -q 1 -C 10 -W 30 --json
  nanomq sub --url ws://broker:8083/mqtt -t '$SYS/#' -V 5";

/// The options of `nanomq sub`.
#[derive(Debug, Clone, Args)]
pub(crate) struct SubArgs {
    /// Where to connect.
    #[command(flatten)]
    pub(crate) server: ServerArgs,

    /// Who connects.
    #[command(flatten)]
    pub(crate) session: SessionArgs,

    /// A topic filter to subscribe to; repeatable.
    #[arg(short = 't', long = "topic", value_name = "FILTER")]
    pub(crate) topics: Vec<String>,

    /// The subscriptions' QoS.
    #[arg(short = 'q', long, value_name = "QOS", default_value = "0", value_parser = parse_qos)]
    pub(crate) qos: QoS,

    /// Exit after this many messages.
    #[arg(short = 'C', long, value_name = "COUNT", value_parser = clap::value_parser!(u64).range(1..))]
    pub(crate) count: Option<u64>,

    /// Print the topic before the payload.
    #[arg(short = 'v', long, conflicts_with = "json")]
    pub(crate) verbose: bool,

    /// Print each message as a JSON object on a line of its own: topic, qos, retain,
    /// payload (payload_hex if not UTF-8), user_properties.
    #[arg(long)]
    pub(crate) json: bool,

    /// Do not end messages with a newline.
    #[arg(short = 'N', long = "no-newline")]
    pub(crate) no_newline: bool,

    /// Do not print retained messages (those sent because of the subscription).
    #[arg(short = 'R', long = "no-retained")]
    pub(crate) no_retained: bool,
}

/// Runs `nanomq sub`.
pub(crate) fn main(args: SubArgs) -> ExitCode {
    super::run_command("sub", run(args))
}

/// Connects and subscribes within `-W`, then receives until done.
async fn run(args: SubArgs) -> Result<(), ClientError> {
    let started = Instant::now();
    let server = args.server.resolve()?;
    let mut filters = args.topics.clone();
    if filters.is_empty() {
        filters.extend(server.url_topic.clone());
    }
    if filters.is_empty() {
        return Err(ClientError::Usage(
            "at least one topic filter is required (-t FILTER)".to_owned(),
        ));
    }
    let filters = filters
        .iter()
        .map(|f| {
            TopicFilter::new(f.as_str())
                .map_err(|e| ClientError::Usage(format!("invalid topic filter `{f}`: {e}")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let options = build_connect(&args.server, &server, &args.session, "sub")?;
    let connector = Connector::new(server.endpoint, &server.tls)?;
    let timeout = args.session.timeout;
    let properties = SubscribeProperties {
        user_properties: user_properties(&args.session.user_properties),
        ..SubscribeProperties::default()
    };
    let observer = super::trace::observer(args.session.debug);
    let client = super::with_timeout(timeout, async {
        let (client, _params) = Client::start(&connector, &options, SessionState::new(), observer)
            .await
            .map_err(|(e, _)| e)?;
        let subscriptions = filters
            .iter()
            .map(|filter| Subscription {
                filter: filter.clone(),
                options: SubscriptionOptions::new(args.qos),
            })
            .collect();
        let codes = client.subscribe(subscriptions, properties).await?;
        for (filter, reason) in filters.iter().zip(&codes) {
            if reason.is_error() {
                return Err(ClientError::SubscribeRefused {
                    filter: filter.to_string(),
                    reason: *reason,
                });
            }
        }
        Ok(client)
    })
    .await?;
    let deadline = timeout.map(|t| (started + t, t));
    receive(client, &args, deadline).await
}

/// Prints messages until `-C` is reached (success), the deadline passes (timeout) or Ctrl-C
/// (success); disconnects cleanly in every case. Messages that arrived before the SUBACK
/// come first, in order.
async fn receive(
    mut client: Client,
    args: &SubArgs,
    deadline: Option<(Instant, Duration)>,
) -> Result<(), ClientError> {
    let printer = Printer {
        format: if args.json {
            Format::Json
        } else if args.verbose {
            Format::Verbose
        } else {
            Format::Payload
        },
        newline: !args.no_newline,
    };
    let mut received = 0u64;
    let mut deliver = |publish: &Publish| -> Result<Delivered, ClientError> {
        if args.no_retained && publish.retain {
            return Ok(Delivered::More);
        }
        let mut out = std::io::stdout().lock();
        if let Err(e) = printer.print(&mut out, publish) {
            // A closed pipe (`| head`) ends the run quietly.
            if e.kind() == std::io::ErrorKind::BrokenPipe {
                return Ok(Delivered::Enough);
            }
            return Err(ClientError::Io(e));
        }
        received += 1;
        Ok(if args.count.is_some_and(|c| received >= c) {
            Delivered::Enough
        } else {
            Delivered::More
        })
    };
    let interrupted = tokio::signal::ctrl_c();
    tokio::pin!(interrupted);
    loop {
        let incoming = tokio::select! {
            incoming = client.recv() => incoming?,
            () = sleep_until_opt(deadline.map(|(at, _)| at)) => {
                let after = deadline.map_or(Duration::ZERO, |(_, t)| t);
                // The broker may be gone by now; the timeout is what to report.
                let _ = client.disconnect().await;
                return Err(ClientError::Timeout(after));
            }
            _ = &mut interrupted => return finish(client).await,
        };
        if let Incoming::Message(publish) = incoming
            && deliver(&publish)? == Delivered::Enough
        {
            return finish(client).await;
        }
    }
}

/// Disconnects; an error if the connection had ended some other way first.
async fn finish(client: Client) -> Result<(), ClientError> {
    match client.disconnect().await.error {
        None => Ok(()),
        Some(e) => Err(e.into()),
    }
}

/// Whether `-C` is reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Delivered {
    /// Go on.
    More,
    /// Stop: the count is reached, or nobody reads the output any more.
    Enough,
}
