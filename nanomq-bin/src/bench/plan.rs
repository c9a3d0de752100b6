//! From the command line to a [`Plan`]: how many publishers and subscribers, their topics
//! and filters (`%i` is the client's index), which publishers each subscriber hears (so that
//! every message can be accounted for), and the timing. Each scenario has its defaults.

use std::time::Duration;

use mqtt_codec::{QoS, TopicFilter, TopicName};

use super::{BenchArgs, Scenario};
use crate::client::ClientError;
use crate::client::args::{Server, ServerArgs};

/// How long publishing lasts when neither `--duration` nor `--count` says.
const DEFAULT_DURATION: Duration = Duration::from_secs(10);
/// The cap on a run given by `--count` alone.
const COUNT_CAP: Duration = Duration::from_secs(60);
/// The Session Expiry Interval of `--offline` subscribers when `--session-expiry` does not
/// say (MQTT 5).
const DEFAULT_SESSION_EXPIRY: u32 = 3600;

/// Everything a run does.
#[derive(Debug, Clone)]
pub(crate) struct Plan {
    /// The scenario.
    pub(crate) scenario: Scenario,
    /// Where the broker is.
    pub(crate) server: Server,
    /// The connection flags.
    pub(crate) server_args: ServerArgs,
    /// A short id that keeps this run's client ids and default topics apart from others'.
    pub(crate) run_id: String,
    /// Each publisher's topic.
    pub(crate) publishers: Vec<TopicName>,
    /// Each subscriber's filter.
    pub(crate) subscribers: Vec<TopicFilter>,
    /// For each subscriber, the publishers its filter matches.
    pub(crate) routes: Vec<Vec<u32>>,
    /// Connections that only connect and stay (`conn`).
    pub(crate) idle: usize,
    /// QoS of publications and subscriptions.
    pub(crate) qos: QoS,
    /// Payload size in bytes (at least the stamp's).
    pub(crate) size: usize,
    /// Messages per publisher (`None`: until the duration ends).
    pub(crate) count: Option<u64>,
    /// How long publishers publish (`sub`, `conn`: how long clients stay connected).
    pub(crate) duration: Duration,
    /// Time between two messages of one publisher (`None`: as fast as possible).
    pub(crate) interval: Option<Duration>,
    /// Time between two connection attempts (`None`: as fast as the handshake limit allows).
    pub(crate) connect_interval: Option<Duration>,
    /// QoS 1/2 messages in flight per publisher (also capped by the broker's Receive
    /// Maximum).
    pub(crate) inflight: u16,
    /// How long to wait for the last messages and acknowledgements once publishing ends.
    pub(crate) drain: Duration,
    /// A process whose resident memory to report (the broker's).
    pub(crate) rss_pid: Option<u32>,
    /// `--offline`: subscribers are offline persistent sessions while publishers publish;
    /// the Session Expiry Interval they ask for (MQTT 5).
    pub(crate) offline: Option<u32>,
}

/// `template` with `%i` replaced by `index`.
fn expand(template: &str, index: usize) -> String {
    template.replace("%i", &index.to_string())
}

/// A short, probably unique, id for this run.
fn run_id() -> String {
    let nanos = super::stamp::now_ns();
    format!(
        "{:06x}",
        (nanos ^ u64::from(std::process::id()).rotate_left(20)) & 0xff_ffff
    )
}

impl Plan {
    /// The plan `args` describe.
    pub(crate) fn new(args: &BenchArgs) -> Result<Self, ClientError> {
        let usage = |text: String| ClientError::Usage(text);
        let server = args.server.resolve()?;
        let run = run_id();
        let scenario = args.scenario;
        let clients = args.clients.unwrap_or(match scenario {
            Scenario::Pub | Scenario::Sub => 10,
            Scenario::Conn => 1000,
            Scenario::Fanin | Scenario::Fanout | Scenario::Pairs => 50,
            Scenario::Latency => 1,
        });
        if clients == 0 {
            return Err(usage("--clients must be at least 1".to_owned()));
        }
        let (publishers, subscribers, idle) = match scenario {
            Scenario::Pub => (clients, 0, 0),
            Scenario::Sub => (0, clients, 0),
            Scenario::Conn => (0, 0, clients),
            Scenario::Fanin => (clients, 1, 0),
            Scenario::Fanout => (1, clients, 0),
            Scenario::Pairs | Scenario::Latency => (clients, clients, 0),
        };
        let (default_topic, default_filter) = match scenario {
            Scenario::Pub | Scenario::Sub | Scenario::Conn => {
                ("bench/%i".to_owned(), "bench/#".to_owned())
            }
            Scenario::Fanin => (
                format!("bench/{run}/fanin/%i"),
                format!("bench/{run}/fanin/+"),
            ),
            Scenario::Fanout => (format!("bench/{run}/fanout"), format!("bench/{run}/fanout")),
            Scenario::Pairs | Scenario::Latency => (
                format!("bench/{run}/pairs/%i"),
                format!("bench/{run}/pairs/%i"),
            ),
        };
        let topic = args.topic.clone().unwrap_or(default_topic);
        let filter = match (&args.filter, &args.topic, scenario) {
            (Some(filter), _, _) => filter.clone(),
            // `sub -t X` means subscribe to X.
            (None, Some(topic), Scenario::Sub) => topic.clone(),
            (None, Some(topic), Scenario::Fanout | Scenario::Pairs | Scenario::Latency) => {
                topic.clone()
            }
            _ => default_filter,
        };
        let publishers = (0..publishers)
            .map(|i| {
                let t = expand(&topic, i);
                TopicName::new(t.as_str()).map_err(|e| usage(format!("invalid topic `{t}`: {e}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let subscribers = (0..subscribers)
            .map(|i| {
                let f = expand(&filter, i);
                TopicFilter::new(f.as_str())
                    .map_err(|e| usage(format!("invalid topic filter `{f}`: {e}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let routes = subscribers
            .iter()
            .map(|filter| {
                (0u32..)
                    .zip(&publishers)
                    .filter(|(_, topic)| filter.matches(topic))
                    .map(|(i, _)| i)
                    .collect()
            })
            .collect();
        let interval = match (args.rate, args.interval, scenario) {
            (Some(rate), _, _) if rate > 0.0 && rate.is_finite() => {
                Some(Duration::from_secs_f64(1.0 / rate))
            }
            (Some(rate), _, _) => return Err(usage(format!("invalid --rate {rate}"))),
            (None, Some(interval), _) => Some(interval),
            // Latency is measured at a steady, moderate rate, not at saturation.
            (None, None, Scenario::Latency) => Some(Duration::from_millis(1)),
            (None, None, _) => None,
        };
        let connect_interval = match args.connect_rate {
            Some(rate) if rate > 0.0 && rate.is_finite() => {
                Some(Duration::from_secs_f64(1.0 / rate))
            }
            Some(rate) => return Err(usage(format!("invalid --connect-rate {rate}"))),
            None => None,
        };
        let offline = match (args.offline, args.session_expiry, scenario) {
            (true, expiry, Scenario::Fanin | Scenario::Fanout | Scenario::Pairs) => {
                Some(expiry.unwrap_or(DEFAULT_SESSION_EXPIRY))
            }
            (true, _, other) => {
                return Err(usage(format!(
                    "--offline needs publishers and subscribers: fanin, fanout or pairs, not {}",
                    other.name()
                )));
            }
            (false, Some(_), _) => {
                return Err(usage("--session-expiry needs --offline".to_owned()));
            }
            (false, None, _) => None,
        };
        let duration = match (args.duration, args.count) {
            (Some(d), _) => d,
            (None, Some(_)) => COUNT_CAP,
            (None, None) => DEFAULT_DURATION,
        };
        Ok(Self {
            scenario,
            server,
            server_args: args.server.clone(),
            run_id: run,
            publishers,
            subscribers,
            routes,
            idle,
            qos: args.qos,
            size: args.size.max(super::stamp::STAMP_LEN),
            count: args.count,
            duration,
            interval,
            connect_interval,
            inflight: args.inflight.max(1),
            drain: args.drain,
            rss_pid: args.rss_pid,
            offline,
        })
    }

    /// The client id of publisher `i`, subscriber `i` or idle connection `i`.
    pub(crate) fn client_id(&self, role: char, index: usize) -> String {
        format!("nqb-{}-{role}{index}", self.run_id)
    }

    /// The number of publisher (`role` 'p'), subscriber ('s') or idle connection ('c')
    /// `index` among all the run's clients: subscribers first, then publishers, then idle
    /// connections, so that each client has its own.
    pub(crate) fn client_number(&self, role: char, index: usize) -> usize {
        match role {
            's' => index,
            'p' => self.subscribers.len() + index,
            _ => self.subscribers.len() + self.publishers.len() + index,
        }
    }

    /// The user name and password of client `role` `index` (see [`Self::client_number`]):
    /// `-u` and `-P` with `%i` replaced by its number, so that each client can be a
    /// different user of a password file (`-u user-%i -P pw-%i`).
    pub(crate) fn credentials(&self, role: char, index: usize) -> (Option<String>, Option<String>) {
        let number = self.client_number(role, index);
        let fill = |template: &Option<String>| template.as_deref().map(|t| expand(t, number));
        (fill(&self.server.username), fill(&self.server.password))
    }
}

/// The plan of `nanomq bench ARGS...`, for tests.
#[cfg(test)]
pub(crate) fn parse(args: &[&str]) -> Plan {
    try_parse(args).unwrap_or_else(|e| panic!("{e}"))
}

/// The plan of `nanomq bench ARGS...`, or the usage error, for tests.
#[cfg(test)]
pub(crate) fn try_parse(args: &[&str]) -> Result<Plan, ClientError> {
    use clap::Parser;

    #[derive(Debug, Parser)]
    #[command(disable_help_flag = true)]
    struct Wrapper {
        #[command(flatten)]
        bench: BenchArgs,
    }

    let mut argv = vec!["bench"];
    argv.extend_from_slice(args);
    let args = Wrapper::try_parse_from(argv).map(|w| w.bench);
    Plan::new(&args.unwrap_or_else(|e| panic!("{e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(args: &[&str]) -> Plan {
        parse(args)
    }

    #[test]
    fn presets_shape_the_topology() {
        let fanin = plan(&["fanin", "-c", "3"]);
        assert_eq!((fanin.publishers.len(), fanin.subscribers.len()), (3, 1));
        assert_eq!(fanin.routes, vec![vec![0, 1, 2]]);

        let fanout = plan(&["fanout", "-c", "4"]);
        assert_eq!((fanout.publishers.len(), fanout.subscribers.len()), (1, 4));
        assert_eq!(fanout.routes, vec![vec![0]; 4]);

        let pairs = plan(&["pairs", "-c", "3", "--count", "10"]);
        assert_eq!(pairs.routes, vec![vec![0], vec![1], vec![2]]);
        assert_eq!((pairs.count, pairs.duration), (Some(10), COUNT_CAP));

        let latency = plan(&["latency"]);
        assert_eq!(latency.interval, Some(Duration::from_millis(1)));
        assert_eq!(latency.publishers.len(), 1);

        let conn = plan(&["conn", "-c", "7"]);
        assert_eq!((conn.idle, conn.publishers.len()), (7, 0));
    }

    #[test]
    fn templates_expand_the_client_index() {
        let p = plan(&["pub", "-c", "2", "-t", "x/%i/y", "--rate", "10", "-s", "1"]);
        let topics: Vec<&str> = p.publishers.iter().map(|t| t.as_str()).collect();
        assert_eq!(topics, ["x/0/y", "x/1/y"]);
        assert_eq!(p.interval, Some(Duration::from_millis(100)));
        assert_eq!(p.size, super::super::stamp::STAMP_LEN);
        let s = plan(&["sub", "-c", "1", "-t", "x/+/y"]);
        assert_eq!(s.subscribers[0].as_str(), "x/+/y");
        assert!(p.client_id('p', 1).len() <= 23);
    }

    #[test]
    fn offline_subscribers_need_publishers_and_subscribers() {
        for preset in ["fanin", "fanout", "pairs"] {
            assert_eq!(plan(&[preset, "--offline"]).offline, Some(3600), "{preset}");
        }
        let p = plan(&["fanin", "--offline", "--session-expiry", "60"]);
        assert_eq!(p.offline, Some(60));
        assert_eq!(plan(&["fanin"]).offline, None);
        for refused in [
            &["pub", "--offline"][..],
            &["sub", "--offline"],
            &["conn", "--offline"],
            &["latency", "--offline"],
            &["fanin", "--session-expiry", "60"],
        ] {
            assert!(
                matches!(try_parse(refused), Err(ClientError::Usage(_))),
                "{refused:?}"
            );
        }
    }

    #[test]
    fn each_client_may_be_a_different_user() {
        let p = plan(&["fanin", "-c", "2", "-u", "user-%i", "-P", "pw-%i"]);
        let users: Vec<_> = [('s', 0), ('p', 0), ('p', 1)]
            .into_iter()
            .map(|(role, i)| p.credentials(role, i))
            .collect();
        let pair = |u: &str, pw: &str| (Some(u.to_owned()), Some(pw.to_owned()));
        assert_eq!(
            users,
            [
                pair("user-0", "pw-0"),
                pair("user-1", "pw-1"),
                pair("user-2", "pw-2")
            ]
        );
        let conn = plan(&["conn", "-c", "3", "-u", "u%i"]);
        assert_eq!(conn.credentials('c', 2), (Some("u2".to_owned()), None));
        // Without %i every client is the same user.
        let same = plan(&["pairs", "-c", "2", "-u", "alice", "-P", "secret"]);
        assert_eq!(same.credentials('p', 1), pair("alice", "secret"));
        assert_eq!(plan(&["pub"]).credentials('p', 0), (None, None));
    }

    #[test]
    fn client_ids_differ_from_run_to_run() {
        // An --offline run must never resume the sessions of an earlier run.
        let (a, b) = (plan(&["fanin", "--offline"]), plan(&["fanin", "--offline"]));
        assert_eq!(a.client_id('s', 0), a.client_id('s', 0));
        assert_ne!(a.client_id('s', 0), b.client_id('s', 0));
    }
}
