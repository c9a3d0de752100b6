//! The TOML rule model, one kind of rule at a time, and their precedence.

use std::net::IpAddr;

use broker_core::acl::{Acl, Action, Permit, Principal, Rule, RuleAction, RuleRef, TopicSpec, Who};

use super::{allow, allowed, anon, check, deny, rule, user};
use Action::{Publish, Receive, Subscribe};
use RuleAction as A;

#[test]
fn first_match_wins() {
    let acl = Acl::new(
        &[allow(A::Publish, &["a/#"]), deny(A::Publish, &["a/b"])],
        None,
        Permit::Deny,
    );
    let d = check(&acl, &anon("c"), Publish, "a/b");
    assert!(d.is_allowed());
    assert_eq!(d.rule(), Some(RuleRef::Config { index: 0 }));

    let acl = Acl::new(
        &[deny(A::Publish, &["a/b"]), allow(A::Publish, &["a/#"])],
        None,
        Permit::Deny,
    );
    let d = check(&acl, &anon("c"), Publish, "a/b");
    assert!(!d.is_allowed());
    assert_eq!(d.rule(), Some(RuleRef::Config { index: 0 }));
    let d = check(&acl, &anon("c"), Publish, "a/c");
    assert_eq!(
        (d.is_allowed(), d.rule()),
        (true, Some(RuleRef::Config { index: 1 }))
    );
}

#[test]
fn no_match_decides_what_no_rule_does() {
    for no_match in [Permit::Allow, Permit::Deny] {
        let acl = Acl::new(&[allow(A::Publish, &["a"])], None, no_match);
        let d = check(&acl, &anon("c"), Publish, "b");
        assert!(d.is_no_match());
        assert_eq!(d.is_allowed(), no_match == Permit::Allow);
        assert!(!check(&acl, &anon("c"), Publish, "a").is_no_match());
    }
    let empty = Acl::new(&[], None, Permit::Deny);
    assert!(empty.is_empty());
    assert!(check(&empty, &anon("c"), Subscribe, "#").is_no_match());
}

#[test]
fn actions_publish_subscribe_pubsub() {
    let acl = Acl::new(
        &[
            allow(A::Publish, &["p"]),
            allow(A::Subscribe, &["s"]),
            allow(A::PubSub, &["ps"]),
        ],
        None,
        Permit::Deny,
    );
    let c = anon("c");
    assert!(allowed(&acl, &c, Publish, "p"));
    assert!(!allowed(&acl, &c, Subscribe, "p"));
    assert!(!allowed(&acl, &c, Receive, "p"));
    assert!(!allowed(&acl, &c, Publish, "s"));
    assert!(allowed(&acl, &c, Subscribe, "s"));
    // A subscribe rule is also the rule for receiving (retained messages, delivery).
    assert!(allowed(&acl, &c, Receive, "s"));
    for action in [Publish, Subscribe, Receive] {
        assert!(allowed(&acl, &c, action, "ps"));
    }
}

#[test]
fn who_username_clientid_all_and_or() {
    let acl = Acl::new(
        &[
            rule(Permit::Allow, A::PubSub, Who::username("alice"), &["u"]),
            rule(Permit::Allow, A::PubSub, Who::client_id("dev-7"), &["c"]),
            rule(
                Permit::Allow,
                A::PubSub,
                Who::And(vec![Who::username("bob"), Who::client_id("b1")]),
                &["and"],
            ),
            rule(
                Permit::Allow,
                A::PubSub,
                Who::Or(vec![Who::username("bob"), Who::client_id("x")]),
                &["or"],
            ),
            rule(Permit::Allow, A::PubSub, Who::username("#"), &["all"]),
            rule(Permit::Allow, A::PubSub, Who::Anonymous, &["anon"]),
            rule(Permit::Allow, A::PubSub, Who::AnyUsername, &["named"]),
        ],
        None,
        Permit::Deny,
    );
    let cases: &[(Principal<'_>, &[&str])] = &[
        (user("alice", "a1"), &["u", "all", "named"]),
        (user("bob", "b1"), &["and", "or", "all", "named"]),
        (user("bob", "b2"), &["or", "all", "named"]),
        (anon("x"), &["or", "all", "anon"]),
        (anon("dev-7"), &["c", "all", "anon"]),
        // A user name is compared exactly; the client id is not a user name.
        (user("Alice", "alice"), &["all", "named"]),
    ];
    for (who, yes) in cases {
        for topic in ["u", "c", "and", "or", "all", "anon", "named"] {
            assert_eq!(
                allowed(&acl, who, Publish, topic),
                yes.contains(&topic),
                "{who:?} {topic}"
            );
        }
    }
}

#[test]
fn who_ipaddr_cidr_v4_and_v6() {
    let acl = Acl::new(
        &[
            rule(
                Permit::Allow,
                A::PubSub,
                Who::ip_addr("10.0.0.0/8").unwrap(),
                &["v4"],
            ),
            rule(
                Permit::Allow,
                A::PubSub,
                Who::ip_addr("fd00::/16").unwrap(),
                &["v6"],
            ),
            rule(
                Permit::Allow,
                A::PubSub,
                Who::ip_addr("127.0.0.1").unwrap(),
                &["lo"],
            ),
        ],
        None,
        Permit::Deny,
    );
    let at = |ip: &str| Principal {
        username: None,
        client_id: "c",
        addr: Some(ip.parse::<IpAddr>().unwrap()),
    };
    let cases: &[(&str, &[&str])] = &[
        ("10.200.3.4", &["v4"]),
        ("::ffff:10.0.0.1", &["v4"]),
        ("11.0.0.1", &[]),
        ("fd00:abcd::1", &["v6"]),
        ("fd01::1", &[]),
        ("127.0.0.1", &["lo"]),
        ("127.0.0.2", &[]),
    ];
    for (ip, yes) in cases {
        for topic in ["v4", "v6", "lo"] {
            assert_eq!(
                allowed(&acl, &at(ip), Publish, topic),
                yes.contains(&topic),
                "{ip} {topic}"
            );
        }
    }
    // Without a known address, no network rule is for the client.
    assert!(!allowed(&acl, &anon("c"), Publish, "v4"));
}

#[test]
fn subscriptions_are_checked_filter_against_filter() {
    let acl = Acl::new(&[allow(A::Subscribe, &["sensors/#"])], None, Permit::Deny);
    let c = anon("c");
    for ok in [
        "sensors/#",
        "sensors",
        "sensors/+/temp",
        "sensors/a/b/c",
        "sensors/+",
    ] {
        assert!(allowed(&acl, &c, Subscribe, ok), "{ok}");
    }
    // Filters that can match topics outside `sensors/`.
    for refused in ["#", "+/temp", "+", "+/#", "$SYS/#", "sensorsx/#"] {
        assert!(!allowed(&acl, &c, Subscribe, refused), "{refused}");
    }

    let acl = Acl::new(
        &[allow(A::Subscribe, &["sensors/+/temp"])],
        None,
        Permit::Deny,
    );
    assert!(allowed(&acl, &c, Subscribe, "sensors/+/temp"));
    assert!(allowed(&acl, &c, Subscribe, "sensors/kitchen/temp"));
    assert!(!allowed(&acl, &c, Subscribe, "sensors/#"));
    assert!(!allowed(&acl, &c, Subscribe, "sensors/+/+"));
    assert!(!allowed(&acl, &c, Subscribe, "sensors/+/temp/#"));

    // A deny rule refuses every filter that could deliver one of its topics.
    let acl = Acl::new(
        &[
            deny(A::Subscribe, &["sensors/secret"]),
            allow(A::Subscribe, &["#"]),
        ],
        None,
        Permit::Allow,
    );
    for refused in ["#", "sensors/+", "sensors/#", "+/secret", "sensors/secret"] {
        let d = check(&acl, &c, Subscribe, refused);
        assert_eq!(
            (d.is_allowed(), d.rule()),
            (false, Some(RuleRef::Config { index: 0 })),
            "{refused}"
        );
    }
    for ok in ["sensors/open", "sensors/+/x", "other/#", "sensors/secret/x"] {
        assert!(allowed(&acl, &c, Subscribe, ok), "{ok}");
    }
}

#[test]
fn shared_subscriptions_are_checked_by_their_filter() {
    let acl = Acl::new(&[allow(A::Subscribe, &["jobs/#"])], None, Permit::Deny);
    let c = anon("c");
    assert!(allowed(&acl, &c, Subscribe, "$share/workers/jobs/+"));
    assert!(!allowed(&acl, &c, Subscribe, "$share/workers/#"));
    assert!(!allowed(&acl, &c, Subscribe, "$share/jobs/other"));
    // A rule cannot name a shared subscription: it would never match.
    assert!(TopicSpec::parse("$share/g/jobs/#").is_err());
}

#[test]
fn literal_filter_names_hash_itself() {
    let acl = Acl::new(
        &[deny(A::Subscribe, &["eq #"]), allow(A::PubSub, &["#"])],
        None,
        Permit::Deny,
    );
    let c = anon("c");
    assert!(!allowed(&acl, &c, Subscribe, "#"));
    assert!(!allowed(&acl, &c, Subscribe, "$share/g/#"));
    assert!(allowed(&acl, &c, Subscribe, "a/#"));
    assert!(allowed(&acl, &c, Subscribe, "+"));
    assert!(allowed(&acl, &c, Receive, "a"));
    // NanoMQ's spelling.
    let acl = Acl::new(
        &[deny(A::Subscribe, &["@a/+"]), allow(A::Subscribe, &["#"])],
        None,
        Permit::Deny,
    );
    assert!(!allowed(&acl, &c, Subscribe, "a/+"));
    assert!(allowed(&acl, &c, Subscribe, "a/b"));
    assert!(allowed(&acl, &c, Subscribe, "a/#"));
    // A literal without wildcards is also a topic name.
    let acl = Acl::new(&[allow(A::Publish, &["eq a/b"])], None, Permit::Deny);
    assert!(allowed(&acl, &c, Publish, "a/b"));
    assert!(!allowed(&acl, &c, Publish, "a/b/c"));
}

#[test]
fn sys_topics_need_a_rule_that_names_them() {
    let acl = Acl::new(
        &[allow(A::PubSub, &["#"]), allow(A::PubSub, &["+/x"])],
        None,
        Permit::Deny,
    );
    let c = anon("c");
    assert!(!allowed(&acl, &c, Receive, "$SYS/broker/uptime"));
    assert!(!allowed(&acl, &c, Receive, "$SYS/x"));
    assert!(!allowed(&acl, &c, Subscribe, "$SYS/#"));
    assert!(allowed(&acl, &c, Subscribe, "#"));
    assert!(allowed(&acl, &c, Receive, "a/$SYS"));

    // A rule without topics: allow is what `#` matches, deny is everything.
    let acl = Acl::new(
        &[Rule::new(Permit::Allow, A::PubSub, Who::All, vec![])],
        None,
        Permit::Deny,
    );
    assert!(allowed(&acl, &c, Receive, "a/b"));
    assert!(!allowed(&acl, &c, Receive, "$SYS/x"));
    let acl = Acl::new(
        &[
            rule(Permit::Deny, A::PubSub, Who::username("eve"), &[]),
            allow(A::Subscribe, &["$SYS/#"]),
        ],
        None,
        Permit::Deny,
    );
    assert!(!allowed(&acl, &user("eve", "e"), Receive, "$SYS/x"));
    assert!(!allowed(&acl, &user("eve", "e"), Subscribe, "$SYS/#"));
    assert!(allowed(&acl, &user("ann", "a"), Subscribe, "$SYS/broker/+"));
    assert!(allowed(
        &acl,
        &user("ann", "a"),
        Receive,
        "$SYS/broker/uptime"
    ));
}

#[test]
fn placeholders_give_each_client_its_own_subtree() {
    let acl = Acl::new(
        &[
            rule(
                Permit::Allow,
                A::PubSub,
                Who::username("${username}"),
                &["users/${username}/#"],
            ),
            allow(A::Publish, &["clients/${clientid}/up"]),
        ],
        None,
        Permit::Deny,
    );
    let alice = user("alice", "phone");
    assert!(allowed(&acl, &alice, Publish, "users/alice/x"));
    assert!(allowed(&acl, &alice, Subscribe, "users/alice/#"));
    assert!(allowed(&acl, &alice, Receive, "users/alice"));
    assert!(!allowed(&acl, &alice, Publish, "users/bob/x"));
    assert!(!allowed(&acl, &alice, Subscribe, "users/+/x"));
    assert!(!allowed(&acl, &alice, Subscribe, "users/#"));
    assert!(allowed(&acl, &alice, Publish, "clients/phone/up"));
    assert!(!allowed(&acl, &alice, Publish, "clients/tablet/up"));
    // Without a user name the rule is not for the client.
    assert!(!allowed(&acl, &anon("phone"), Publish, "users/phone/x"));
}

/// Names that are wildcards, several levels, empty, or a `$` topic, as placeholder values.
#[test]
fn a_name_with_wildcard_characters_never_widens_a_pattern() {
    let acl = Acl::new(
        &[
            allow(A::PubSub, &["users/${username}/#"]),
            allow(A::PubSub, &["${clientid}/#"]),
            allow(A::PubSub, &["eq box/${clientid}"]),
        ],
        None,
        Permit::Deny,
    );
    for name in ["+", "#", "a/b", "", "x+", "#/y", "a/+/b", "$SYS"] {
        let who = user(name, name);
        let client = acl.for_client(&who);
        let topics = [
            "users/a/b",
            "users/a/b/c",
            "users/x",
            "users/+",
            "users/#",
            "a/b",
            "a/b/c",
            "x",
            "$SYS/x",
            "box/+",
            "box/a/b",
            "box/",
        ];
        for topic in topics {
            for action in [Publish, Receive] {
                let d = client.check(action, topic);
                assert_eq!(d, acl.check_linear(&who, action, topic));
                assert!(d.is_no_match(), "{name:?} {action:?} {topic}: {d:?}");
            }
        }
        for filter in [
            "users/#",
            "users/+/#",
            "users/+",
            "#",
            "+/#",
            "$SYS/#",
            "a/#",
            "box/+",
        ] {
            let d = check(&acl, &who, Subscribe, filter);
            assert!(d.is_no_match(), "{name:?} {filter}: {d:?}");
        }
    }
    // `$SYS` as a user name is fine past the first level.
    assert!(allowed(&acl, &user("$SYS", "c"), Publish, "users/$SYS/x"));
    // A deny rule a name cannot fill does not apply either: as a literal level, it
    // could match no topic anyway.
    let acl = Acl::new(
        &[
            deny(A::PubSub, &["private/${username}/#"]),
            allow(A::PubSub, &["private/#"]),
        ],
        None,
        Permit::Deny,
    );
    assert!(!allowed(&acl, &user("bob", "c"), Publish, "private/bob/x"));
    assert!(allowed(&acl, &user("bob", "c"), Publish, "private/alice/x"));
    assert!(allowed(&acl, &user("+", "c"), Publish, "private/alice/x"));
    assert!(!allowed(&acl, &user("bob", "c"), Subscribe, "private/#"));
    // With a name it cannot fill, the deny rule matches no topic, so it refuses no filter.
    assert!(allowed(&acl, &user("+", "c"), Subscribe, "private/#"));
}
