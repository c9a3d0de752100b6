//! A PUBLISH check against 1,000 authorization rules: the compiled tries
//! (`ClientAcl::check`, resolved once per client) against two linear scans of every rule,
//! in the same run so the ratios are measured: `lean_scan`, the loop NanoMQ runs (each
//! rule's "who", then its filters matched without allocating, placeholders replaced into a
//! new string), written here; and `reference_scan`, the library's own reference
//! (`Acl::check_linear`, which the tests hold the tries to, and which allocates per topic).
//!
//! The rules are a plausible large configuration: 900 rules each for one user
//! (`devices/userN/#`), 50 deny rules for everyone (`factory/lineN/secret`), 49 rules for
//! client networks (`site/N/#` from 10.N.0.0/16), and a last rule for everyone with a
//! placeholder (`users/${username}/#`). Topics: the client's own device (rule 500 decides),
//! its placeholder subtree (the last rule decides), and one no rule matches. A Mosquitto
//! `acl_file` of the same shape (900 user blocks, 50 patterns) is measured too.
//! Run with `cargo bench -p broker-core --bench acl`.

#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::fmt::Write;
use std::hint::black_box;

use broker_core::acl::{
    Acl, Action, IpNet, MosquittoAcl, Permit, Principal, Rule, RuleAction, RuleRef, TopicSpec, Who,
};
use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};

fn topics(list: &[&str]) -> Vec<TopicSpec> {
    list.iter().map(|t| TopicSpec::parse(t).unwrap()).collect()
}

fn rules() -> Vec<Rule> {
    let mut rules = Vec::new();
    for n in 0..900 {
        rules.push(Rule::new(
            Permit::Allow,
            RuleAction::PubSub,
            Who::username(&format!("user{n}")),
            topics(&[&format!("devices/user{n}/#")]),
        ));
    }
    for n in 0..50 {
        rules.push(Rule::new(
            Permit::Deny,
            RuleAction::Publish,
            Who::All,
            topics(&[&format!("factory/line{n}/secret")]),
        ));
    }
    for n in 0..49 {
        rules.push(Rule::new(
            Permit::Allow,
            RuleAction::Publish,
            Who::ip_addr(&format!("10.{n}.0.0/16")).unwrap(),
            topics(&[&format!("site/{n}/#")]),
        ));
    }
    rules.push(Rule::new(
        Permit::Allow,
        RuleAction::PubSub,
        Who::All,
        topics(&["users/${username}/#"]),
    ));
    assert_eq!(rules.len(), 1000);
    rules
}

/// A rule as a simple implementation keeps it: strings, scanned in order.
struct LeanRule {
    allow: bool,
    publish: bool,
    who: LeanWho,
    filters: Vec<String>,
}

enum LeanWho {
    All,
    Username(String),
    Net(IpNet),
}

fn lean_rules(rules: &[Rule]) -> Vec<LeanRule> {
    // The same rules as `rules()`, rebuilt from the same loops.
    let mut lean = Vec::new();
    for n in 0..900 {
        lean.push(LeanRule {
            allow: true,
            publish: true,
            who: LeanWho::Username(format!("user{n}")),
            filters: vec![format!("devices/user{n}/#")],
        });
    }
    for n in 0..50 {
        lean.push(LeanRule {
            allow: false,
            publish: true,
            who: LeanWho::All,
            filters: vec![format!("factory/line{n}/secret")],
        });
    }
    for n in 0..49 {
        lean.push(LeanRule {
            allow: true,
            publish: true,
            who: LeanWho::Net(format!("10.{n}.0.0/16").parse().unwrap()),
            filters: vec![format!("site/{n}/#")],
        });
    }
    lean.push(LeanRule {
        allow: true,
        publish: true,
        who: LeanWho::All,
        filters: vec!["users/${username}/#".into()],
    });
    assert_eq!(lean.len(), rules.len());
    lean
}

/// MQTT matching of a topic name by a filter, without allocating.
fn matches(filter: &str, topic: &str) -> bool {
    if topic.starts_with('$') && filter.starts_with(['+', '#']) {
        return false;
    }
    let mut levels = topic.split('/');
    for pattern in filter.split('/') {
        match pattern {
            "#" => return true,
            "+" => {
                if levels.next().is_none() {
                    return false;
                }
            }
            literal => {
                if levels.next() != Some(literal) {
                    return false;
                }
            }
        }
    }
    levels.next().is_none()
}

/// The first rule that decides, as NanoMQ's `auth_acl` finds it.
fn lean_scan(rules: &[LeanRule], who: &Principal<'_>, topic: &str) -> Option<bool> {
    for rule in rules {
        if !rule.publish {
            continue;
        }
        let applies = match &rule.who {
            LeanWho::All => true,
            LeanWho::Username(name) => who.username == Some(name.as_str()),
            LeanWho::Net(net) => who.addr.is_some_and(|ip| net.contains(ip)),
        };
        if !applies {
            continue;
        }
        for filter in &rule.filters {
            let hit = if filter.contains("${") {
                let Some(name) = who.username else { continue };
                matches(&filter.replace("${username}", name), topic)
            } else {
                matches(filter, topic)
            };
            if hit {
                return Some(rule.allow);
            }
        }
    }
    None
}

fn acl_file() -> MosquittoAcl {
    let mut text = String::new();
    for n in 0..900 {
        writeln!(text, "user user{n}\ntopic readwrite devices/user{n}/#").unwrap();
    }
    for n in 0..49 {
        writeln!(text, "pattern deny factory/line{n}/%c/secret").unwrap();
    }
    writeln!(text, "pattern readwrite users/%u/#").unwrap();
    MosquittoAcl::parse(&text).unwrap()
}

fn checks(c: &mut Criterion) {
    let rules = rules();
    let lean = lean_rules(&rules);
    let toml = Acl::new(&rules, None, Permit::Deny);
    let file = Acl::new(&[], Some(&acl_file()), Permit::Deny);
    let who = Principal {
        username: Some("user500"),
        client_id: "client-500",
        addr: Some("10.20.30.40".parse().unwrap()),
    };
    for (source, acl, cases) in [
        (
            "toml",
            &toml,
            [
                (
                    "own_device",
                    "devices/user500/temp",
                    Some(RuleRef::Config { index: 500 }),
                ),
                (
                    "placeholder",
                    "users/user500/inbox",
                    Some(RuleRef::Config { index: 999 }),
                ),
                ("no_match", "plant/7/line/3/temp", None),
            ],
        ),
        (
            "acl_file",
            &file,
            [
                (
                    "own_device",
                    "devices/user500/temp",
                    Some(RuleRef::AclFile { line: 1002 }),
                ),
                (
                    "placeholder",
                    "users/user500/inbox",
                    Some(RuleRef::AclFile { line: 1850 }),
                ),
                ("no_match", "plant/7/line/3/temp", None),
            ],
        ),
    ] {
        assert_eq!(acl.len(), if source == "toml" { 1000 } else { 951 });
        let client = acl.for_client(&who);
        for (name, topic, decided_by) in cases {
            let fast = client.check(Action::Publish, topic);
            assert_eq!(fast, acl.check_linear(&who, Action::Publish, topic));
            assert_eq!(fast.rule(), decided_by, "{source} {name}");
            let mut group = c.benchmark_group(format!("acl_{source}_{name}"));
            if source == "toml" {
                let expected = decided_by.map(|_| fast.is_allowed());
                assert_eq!(lean_scan(&lean, &who, topic), expected);
                group.bench_function(BenchmarkId::from_parameter("lean_scan"), |b| {
                    b.iter(|| lean_scan(&lean, black_box(&who), black_box(topic)))
                });
            }
            group.bench_function(BenchmarkId::from_parameter("reference_scan"), |b| {
                b.iter(|| acl.check_linear(black_box(&who), Action::Publish, black_box(topic)))
            });
            group.bench_function(BenchmarkId::from_parameter("trie"), |b| {
                b.iter(|| client.check(Action::Publish, black_box(topic)))
            });
            group.finish();
        }
    }
    // What a connection pays once, at CONNECT.
    c.bench_function("acl_toml_for_client", |b| {
        b.iter(|| toml.for_client(black_box(&who)))
    });
}

criterion_group!(benches, checks);
criterion_main!(benches);
