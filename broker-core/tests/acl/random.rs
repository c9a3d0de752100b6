//! Random rule sets (TOML rules and `acl_file`s) and clients, from a deterministic
//! generator: the tries must give the reference scan's answer on every case.

use broker_core::acl::{
    Acl, Action, MosquittoAcl, Permit, Principal, Rule, RuleAction, TopicSpec, Who,
};

use Action::{Publish, Receive, Subscribe};
use RuleAction as A;

/// xorshift64*: deterministic, so a failure reproduces.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len())]
    }

    fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }
}

/// Levels that names and placeholders also take, so placeholders often match.
const LEVELS: &[&str] = &["a", "b", "alice", "c1", "$SYS", "", "x"];
const USERNAMES: &[&str] = &["alice", "bob", "+", "#", "a/b", "", "$SYS", "a"];
const CLIENT_IDS: &[&str] = &["c1", "alice", "+", "x/y", "", "$SYS", "a", "b"];
const ADDRS: &[&str] = &["10.1.2.3", "::ffff:10.0.0.1", "fd00::1", "192.168.1.1"];

fn random_levels(rng: &mut Rng, wildcards: bool, placeholders: Option<(&str, &str)>) -> String {
    let n = 1 + rng.below(4);
    let mut levels = Vec::new();
    for i in 0..n {
        let level = match (wildcards, rng.below(10)) {
            (true, 0 | 1) => "+",
            (true, 2) if i == n - 1 => "#",
            (_, 3) if placeholders.is_some() => placeholders.unwrap().0,
            (_, 4) if placeholders.is_some() => placeholders.unwrap().1,
            _ => rng.pick(LEVELS),
        };
        levels.push(level);
    }
    let s = levels.join("/");
    // The empty string is neither a topic nor a filter.
    if s.is_empty() { "a".to_owned() } else { s }
}

fn random_who(rng: &mut Rng, depth: usize) -> Who {
    match rng.below(if depth > 0 { 6 } else { 8 }) {
        0 | 1 => Who::All,
        2 => Who::username(rng.pick(&["alice", "bob", "+", "a/b", "${username}", "#"])),
        3 => Who::client_id(rng.pick(&["c1", "alice", "x/y", "+"])),
        4 => {
            Who::ip_addr(rng.pick(&["10.0.0.0/8", "fd00::/8", "192.168.1.1", "0.0.0.0/0"])).unwrap()
        }
        5 if rng.chance(50) => Who::Anonymous,
        5 => Who::AnyUsername,
        6 => Who::And(vec![random_who(rng, depth + 1), random_who(rng, depth + 1)]),
        _ => Who::Or(vec![random_who(rng, depth + 1), random_who(rng, depth + 1)]),
    }
}

fn random_rules(rng: &mut Rng, count: usize, literals: bool) -> Vec<Rule> {
    (0..count)
        .map(|_| {
            let permit = if rng.chance(40) {
                Permit::Deny
            } else {
                Permit::Allow
            };
            let action = [A::Publish, A::Subscribe, A::PubSub][rng.below(3)];
            let topics = if rng.chance(8) {
                vec![]
            } else {
                (0..1 + rng.below(2))
                    .map(|_| {
                        let f = random_levels(rng, true, Some(("${username}", "${clientid}")));
                        if literals && rng.chance(15) {
                            TopicSpec::literal(&f).unwrap()
                        } else {
                            TopicSpec::filter(&f).unwrap()
                        }
                    })
                    .collect()
            };
            Rule::new(permit, action, random_who(rng, 0), topics)
        })
        .collect()
}

fn random_acl_file(rng: &mut Rng, lines: usize) -> MosquittoAcl {
    let mut text = String::new();
    for _ in 0..lines {
        match rng.below(6) {
            0 => text.push_str(&format!("user {}\n", rng.pick(&["alice", "bob", "a"]))),
            n => {
                let kind = if n < 3 { "pattern" } else { "topic" };
                let access = rng.pick(&["read ", "write ", "readwrite ", "deny ", ""]);
                let topic = random_levels(rng, true, Some(("%u", "%c")));
                text.push_str(&format!("{kind} {access}{topic}\n"));
            }
        }
    }
    MosquittoAcl::parse(&text).unwrap()
}

fn random_principal<'a>(rng: &mut Rng) -> Principal<'a> {
    Principal {
        username: (!rng.chance(25)).then(|| USERNAMES[rng.below(USERNAMES.len())]),
        client_id: CLIENT_IDS[rng.below(CLIENT_IDS.len())],
        addr: (!rng.chance(30)).then(|| ADDRS[rng.below(ADDRS.len())].parse().unwrap()),
    }
}

fn random_target(rng: &mut Rng, action: Action) -> String {
    let s = random_levels(rng, action == Subscribe, None);
    if action == Subscribe && rng.chance(10) {
        format!("$share/g/{s}")
    } else {
        s
    }
}

#[test]
fn the_tries_agree_with_the_linear_scan_on_random_rules() {
    let mut rng = Rng(0x5EED_AC10_0000_0001);
    let mut decided = [0_usize; 3];
    for round in 0..400 {
        let count = 1 + rng.below(25);
        let rules = random_rules(&mut rng, count, true);
        let lines = rng.below(12);
        let file = rng.chance(50).then(|| random_acl_file(&mut rng, lines));
        let no_match = if rng.chance(50) {
            Permit::Allow
        } else {
            Permit::Deny
        };
        let acl = Acl::new(&rules, file.as_ref(), no_match);
        for _ in 0..8 {
            let who = random_principal(&mut rng);
            let client = acl.for_client(&who);
            for _ in 0..25 {
                let action = [Publish, Subscribe, Receive][rng.below(3)];
                let target = random_target(&mut rng, action);
                let fast = client.check(action, &target);
                let slow = acl.check_linear(&who, action, &target);
                assert_eq!(
                    fast, slow,
                    "round {round}: {who:?} {action:?} {target:?}\nrules {rules:?}\nfile {file:?}"
                );
                decided[usize::from(fast.is_no_match()) + usize::from(fast.is_allowed())] += 1;
            }
        }
    }
    // The cases exercised every outcome, plenty of each.
    assert!(decided.iter().all(|&n| n > 5_000), "{decided:?}");
}

/// What the filter-against-filter rule promises: a subscription granted by a filter rule
/// never delivers a message that the same rules refuse to that client.
#[test]
fn a_granted_subscription_delivers_only_readable_messages() {
    let mut rng = Rng(0x5EED_AC10_0000_0002);
    let mut granted = 0;
    for _ in 0..300 {
        let count = 1 + rng.below(15);
        let rules = random_rules(&mut rng, count, false);
        let lines = rng.below(10);
        let file = rng.chance(50).then(|| random_acl_file(&mut rng, lines));
        let no_match = if rng.chance(50) {
            Permit::Allow
        } else {
            Permit::Deny
        };
        let acl = Acl::new(&rules, file.as_ref(), no_match);
        for _ in 0..10 {
            let who = random_principal(&mut rng);
            let client = acl.for_client(&who);
            let filter = random_levels(&mut rng, true, None);
            if !client.check(Subscribe, &filter).is_allowed() {
                continue;
            }
            granted += 1;
            let f = mqtt_codec::TopicFilter::new(filter.clone()).unwrap();
            for _ in 0..40 {
                let topic = random_levels(&mut rng, false, None);
                let name = mqtt_codec::TopicName::new(topic.clone()).unwrap();
                if f.matches(&name) {
                    assert!(
                        client.check(Receive, &topic).is_allowed(),
                        "{who:?} granted {filter} but not {topic}\nrules {rules:?}\nfile {file:?}"
                    );
                }
            }
        }
    }
    assert!(granted > 300, "{granted}");
}
