//! Mosquitto `acl_file` fixtures: blocks, anonymous clients, patterns, deny, unsafe names.

use broker_core::acl::{Acl, Action, MosquittoAcl, Permit, RuleRef};

use super::{allowed, anon, check, deny, user};
use Action::{Publish, Receive, Subscribe};
use broker_core::acl::RuleAction as A;

/// The shape of Mosquitto's `aclfile.example`: an anonymous block, a user block, a pattern
/// for every client; plus deny lines, read/write access, and several users.
const MOSQUITTO_FIXTURE: &str = "\
# Clients without a user name.
topic read $SYS/#
topic public/#

# Only clients with the user name \"roger\".
user roger
topic foo/bar
topic write logs/roger
topic read feeds/#
topic deny feeds/private/#

user sensor station
topic readwrite sensors/#

# Every client.
pattern write $SYS/broker/connection/%c/state
pattern readwrite home/%u/#
pattern deny home/%u/locked
pattern read inbox/%c
";

fn mosquitto(no_match: Permit) -> Acl {
    Acl::new(
        &[],
        Some(&MosquittoAcl::parse(MOSQUITTO_FIXTURE).unwrap()),
        no_match,
    )
}

#[test]
fn mosquitto_blocks_anonymous_users_patterns() {
    let acl = mosquitto(Permit::Deny);
    let anon = anon("a1");
    let roger = user("roger", "r1");
    let sensor = user("sensor station", "s1");

    // Anonymous: its block only.
    assert!(allowed(&acl, &anon, Receive, "$SYS/broker/uptime"));
    assert!(allowed(&acl, &anon, Subscribe, "$SYS/#"));
    assert!(!allowed(&acl, &anon, Publish, "$SYS/broker/uptime"));
    assert!(allowed(&acl, &anon, Publish, "public/x"));
    assert!(!allowed(&acl, &anon, Publish, "foo/bar"));
    // roger: his block, not the anonymous one.
    assert!(allowed(&acl, &roger, Publish, "foo/bar"));
    assert!(allowed(&acl, &roger, Subscribe, "foo/bar"));
    assert!(!allowed(&acl, &roger, Publish, "public/x"));
    assert!(!allowed(&acl, &roger, Receive, "$SYS/broker/uptime"));
    assert!(allowed(&acl, &roger, Publish, "logs/roger"));
    assert!(!allowed(&acl, &roger, Receive, "logs/roger"));
    assert!(allowed(&acl, &roger, Receive, "feeds/news"));
    assert!(!allowed(&acl, &roger, Publish, "feeds/news"));
    // A user name with a space is the whole rest of the `user` line.
    assert!(allowed(&acl, &sensor, Publish, "sensors/t1"));
    assert!(!allowed(&acl, &user("sensor", "s1"), Publish, "sensors/t1"));

    // Patterns are for everyone, with %c and %u.
    for who in [&anon, &roger, &sensor] {
        let state = format!("$SYS/broker/connection/{}/state", who.client_id);
        assert!(allowed(&acl, who, Publish, &state));
        assert!(!allowed(
            &acl,
            who,
            Publish,
            "$SYS/broker/connection/other/state"
        ));
        assert!(allowed(
            &acl,
            who,
            Receive,
            &format!("inbox/{}", who.client_id)
        ));
        assert!(!allowed(
            &acl,
            who,
            Publish,
            &format!("inbox/{}", who.client_id)
        ));
    }
    assert!(allowed(&acl, &roger, Publish, "home/roger/lamp"));
    assert!(!allowed(&acl, &roger, Publish, "home/sensor/lamp"));
    // %u: not for a client without a user name.
    assert!(!allowed(&acl, &anon, Publish, "home//lamp"));
    // The file's lines decide, named by number.
    let d = check(&acl, &roger, Publish, "foo/bar");
    assert_eq!(d.rule(), Some(RuleRef::AclFile { line: 7 }));
    // What no line decides is `no_match` (deny is Mosquitto's own answer).
    assert!(check(&acl, &roger, Publish, "elsewhere").is_no_match());
    let open = mosquitto(Permit::Allow);
    assert!(check(&open, &roger, Publish, "elsewhere").is_allowed());
}

#[test]
fn mosquitto_deny_wins_over_allow() {
    let acl = mosquitto(Permit::Allow);
    let roger = user("roger", "r1");
    // `topic deny feeds/private/#` comes after `topic read feeds/#` and still wins.
    let d = check(&acl, &roger, Receive, "feeds/private/x");
    assert_eq!(
        (d.is_allowed(), d.rule()),
        (false, Some(RuleRef::AclFile { line: 10 }))
    );
    assert!(!allowed(&acl, &roger, Subscribe, "feeds/#"));
    assert!(allowed(&acl, &roger, Subscribe, "feeds/news/#"));
    // Among patterns too.
    assert!(!allowed(&acl, &roger, Publish, "home/roger/locked"));
    assert!(allowed(&acl, &roger, Publish, "home/roger/open"));
    // But, as in Mosquitto, a client's own block is checked before any pattern.
    let acl = Acl::new(
        &[],
        Some(&MosquittoAcl::parse("user u\ntopic a/#\npattern deny a/%u").unwrap()),
        Permit::Deny,
    );
    assert!(allowed(&acl, &user("u", "c"), Publish, "a/u"));
}

#[test]
fn mosquitto_unsafe_names_lose_the_patterns() {
    let acl = mosquitto(Permit::Allow);
    for who in [user("ro+ger", "c1"), user("roger", "id#1"), user("#", "c1")] {
        let d = check(&acl, &who, Publish, "anything");
        assert_eq!(
            (d.is_allowed(), d.rule()),
            (false, Some(RuleRef::UnsafeName)),
            "{who:?}"
        );
        assert!(!allowed(&acl, &who, Subscribe, "#"));
    }
    // Their own block still comes first.
    assert!(allowed(&acl, &user("roger", "id#1"), Publish, "foo/bar"));
    // Without patterns, no such refusal (Mosquitto's own rule).
    let acl = Acl::new(
        &[],
        Some(&MosquittoAcl::parse("topic a").unwrap()),
        Permit::Allow,
    );
    assert!(check(&acl, &anon("c+"), Publish, "b").is_no_match());
    // A `/` in a name: %c stands for one level, so the pattern does not apply.
    let acl = Acl::new(
        &[],
        Some(&MosquittoAcl::parse("pattern dev/%c/#").unwrap()),
        Permit::Deny,
    );
    assert!(allowed(&acl, &anon("d1"), Publish, "dev/d1/x"));
    assert!(!allowed(&acl, &anon("d1/x"), Publish, "dev/d1/x/y"));
    // `$SYS` is a fine client id past the first level, but never makes a pattern `$SYS/#`.
    assert!(allowed(&acl, &anon("$SYS"), Publish, "dev/$SYS"));
    let acl = Acl::new(
        &[],
        Some(&MosquittoAcl::parse("pattern %c/#").unwrap()),
        Permit::Deny,
    );
    assert!(allowed(&acl, &anon("me"), Publish, "me/x"));
    assert!(!allowed(&acl, &anon("$SYS"), Receive, "$SYS/broker/uptime"));
    assert!(!allowed(&acl, &anon("$SYS"), Subscribe, "$SYS/#"));
}

#[test]
fn toml_rules_come_before_the_acl_file() {
    let file = MosquittoAcl::parse("pattern readwrite a/#").unwrap();
    let acl = Acl::new(
        &[deny(A::Publish, &["a/secret"])],
        Some(&file),
        Permit::Deny,
    );
    let d = check(&acl, &anon("c"), Publish, "a/secret");
    assert_eq!(d.rule(), Some(RuleRef::Config { index: 0 }));
    assert!(allowed(&acl, &anon("c"), Publish, "a/open"));
    // 2 rules: the TOML one, the pattern, and the refusal of unsafe names.
    assert_eq!(acl.len(), 3);
}
