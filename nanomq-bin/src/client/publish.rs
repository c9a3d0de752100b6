//! `nanomq pub`: connect, publish one message (or each line of standard input, or the same
//! message `--repeat` times) with the full QoS exchange, disconnect.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use bytes::Bytes;
use clap::Args;
use mqtt_client::{Client, Connector, Message, PublishError, SessionState};
use mqtt_codec::{PublishProperties, QoS, TopicName};
use tokio::sync::mpsc;

use super::args::{
    ServerArgs, SessionArgs, build_connect, parse_qos, parse_seconds, user_properties,
};
use super::error::ClientError;

/// The examples `nanomq pub --help` ends with (before the exit codes).
pub(crate) const EXAMPLES: &str = "\
EXAMPLES:
  nanomq pub -h 127.0.0.1 -p 1883 -t sensors/1 -m 21.5 -q 1
  nanomq pub --url mqtt://broker:1883 -t cfg -f config.json -r
  nanomq pub -V 5 -t a/b -m hi -D origin=lab
  tail -f app.log | nanomq pub -t logs -l";

/// The options of `nanomq pub`.
#[derive(Debug, Clone, Args)]
pub(crate) struct PubArgs {
    /// Where to connect.
    #[command(flatten)]
    pub(crate) server: ServerArgs,

    /// Who connects.
    #[command(flatten)]
    pub(crate) session: SessionArgs,

    /// The topic to publish to.
    #[arg(short = 't', long, value_name = "TOPIC")]
    pub(crate) topic: Option<String>,

    /// What to publish.
    #[command(flatten)]
    pub(crate) message: MessageArgs,

    /// QoS of the message.
    #[arg(short = 'q', long, value_name = "QOS", default_value = "0", value_parser = parse_qos)]
    pub(crate) qos: QoS,

    /// Publish retained.
    #[arg(short = 'r', long)]
    pub(crate) retain: bool,

    /// Publish the message this many times.
    #[arg(long, value_name = "COUNT", default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..))]
    pub(crate) repeat: u64,

    /// Seconds between repeats.
    #[arg(long, value_name = "SECONDS", value_parser = parse_seconds)]
    pub(crate) repeat_delay: Option<Duration>,
}

/// Where the message comes from: exactly one of these.
#[derive(Debug, Clone, Args)]
#[group(required = true, multiple = false)]
pub(crate) struct MessageArgs {
    /// The message.
    #[arg(short = 'm', long, value_name = "TEXT")]
    pub(crate) message: Option<String>,

    /// Send the content of this file as the message.
    #[arg(short = 'f', long, value_name = "FILE")]
    pub(crate) file: Option<PathBuf>,

    /// Send an empty message (with -r: delete the retained message).
    #[arg(short = 'n', long = "null-message")]
    pub(crate) null: bool,

    /// Send all of standard input as one message.
    #[arg(short = 's', long = "stdin-file")]
    pub(crate) stdin: bool,

    /// Send each line of standard input as a message.
    #[arg(short = 'l', long = "stdin-line")]
    pub(crate) lines: bool,
}

/// Runs `nanomq pub`.
pub(crate) fn main(args: PubArgs) -> ExitCode {
    super::run_command("pub", run(args))
}

/// The whole command, bounded by `-W`.
async fn run(args: PubArgs) -> Result<(), ClientError> {
    let server = args.server.resolve()?;
    let topic = args
        .topic
        .clone()
        .or_else(|| server.url_topic.clone())
        .ok_or_else(|| ClientError::Usage("a topic is required (-t TOPIC)".to_owned()))?;
    let topic = TopicName::new(topic.as_str())
        .map_err(|e| ClientError::Usage(format!("invalid topic `{topic}`: {e}")))?;
    let options = build_connect(&args.server, &server, &args.session, "pub")?;
    let payload = read_payload(&args.message)?;
    let connector = Connector::new(server.endpoint, &server.tls)?;
    let template = Message {
        topic,
        payload: payload.unwrap_or_default(),
        qos: args.qos,
        retain: args.retain,
        properties: PublishProperties {
            user_properties: user_properties(&args.session.user_properties),
            ..PublishProperties::default()
        },
    };
    let observer = super::trace::observer(args.session.debug);
    let lines = args.message.lines;
    let work = async move {
        let (client, _params) = Client::start(&connector, &options, SessionState::new(), observer)
            .await
            .map_err(|(e, _)| e)?;
        let sent = if lines {
            publish_lines(&client, &template).await
        } else {
            async {
                for i in 0..args.repeat {
                    if i > 0
                        && let Some(delay) = args.repeat_delay
                    {
                        tokio::time::sleep(delay).await;
                    }
                    publish(&client, template.clone()).await?;
                }
                Ok(())
            }
            .await
        };
        let ended = client.disconnect().await;
        match (sent, ended.error) {
            (Ok(()), None) => Ok(()),
            // Why the connection ended says more than the publication it cut short.
            (Ok(()) | Err(ClientError::Closed), Some(e)) => Err(e.into()),
            (Err(e), _) => Err(e),
        }
    };
    super::with_timeout(args.session.timeout, work).await
}

/// Publishes one message, with its full QoS exchange. A connection that ended first is
/// reported by why it ended (the caller's `disconnect` says), not as a lost publication.
async fn publish(client: &Client, message: Message) -> Result<(), ClientError> {
    match client.publish(message).await {
        Ok(_) => Ok(()),
        Err(PublishError::ConnectionLost | PublishError::NotConnected) => Err(ClientError::Closed),
        Err(e) => Err(e.into()),
    }
}

/// The message of `-m`, `-f`, `-n` or `-s`; `None` for `-l`.
fn read_payload(message: &MessageArgs) -> Result<Option<Bytes>, ClientError> {
    if let Some(text) = &message.message {
        return Ok(Some(Bytes::from(text.clone())));
    }
    if let Some(path) = &message.file {
        return std::fs::read(path)
            .map(|b| Some(Bytes::from(b)))
            .map_err(|e| ClientError::Usage(format!("cannot read {}: {e}", path.display())));
    }
    if message.stdin {
        use std::io::Read as _;
        let mut data = Vec::new();
        std::io::stdin()
            .read_to_end(&mut data)
            .map_err(|e| ClientError::Usage(format!("cannot read standard input: {e}")))?;
        return Ok(Some(Bytes::from(data)));
    }
    if message.null {
        return Ok(Some(Bytes::new()));
    }
    Ok(None)
}

/// `-l`: each line of standard input is a message, until its end. The connection is kept
/// alive by the driver while standard input is quiet.
async fn publish_lines(client: &Client, template: &Message) -> Result<(), ClientError> {
    let (tx, mut rx) = mpsc::channel::<std::io::Result<String>>(64);
    // Standard input blocks; a thread of its own reads it.
    std::thread::spawn(move || {
        for line in std::io::stdin().lines() {
            if tx.blocking_send(line).is_err() {
                break;
            }
        }
    });
    while let Some(line) = rx.recv().await {
        let line =
            line.map_err(|e| ClientError::Usage(format!("cannot read standard input: {e}")))?;
        let mut message = template.clone();
        message.payload = Bytes::from(line);
        publish(client, message).await?;
    }
    Ok(())
}

/// Sleeps until `at`, or forever when there is no `at`.
pub(crate) async fn sleep_until_opt(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
