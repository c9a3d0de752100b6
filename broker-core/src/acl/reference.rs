//! The rules' meaning written as plainly as possible: every rule in order, its "who"
//! evaluated, its placeholders replaced, each topic compared level by level. Slow, and
//! independent of the trie: the tests check the trie against it on random rules, and the
//! benchmark measures what the trie saves.

use super::Principal;
use super::compile::FlatRule;
use super::matcher::{PUBLISH, READ, SUBSCRIBE};
use super::placeholder::Bound;
use super::rule::{Level, TopicSpec};

/// A rule level with the client's placeholders replaced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum R<'a> {
    Lit(&'a str),
    Plus,
    Hash,
}

/// The levels of `s`, wildcards recognised.
fn parse(s: &str) -> Vec<R<'_>> {
    s.split('/')
        .map(|l| match l {
            "+" => R::Plus,
            "#" => R::Hash,
            other => R::Lit(other),
        })
        .collect()
}

/// `spec`'s levels for this client; `None` if a placeholder has no safe value.
fn resolve<'a>(spec: &'a TopicSpec, bound: &Bound<'a>) -> Option<Vec<R<'a>>> {
    spec.levels()
        .iter()
        .enumerate()
        .map(|(depth, level)| match level {
            Level::Literal(l) => Some(R::Lit(l)),
            Level::Plus => Some(R::Plus),
            Level::Hash => Some(R::Hash),
            Level::Placeholder(p) => bound.value(*p, depth == 0).map(R::Lit),
        })
        .collect()
}

fn is_wild(level: Option<&R<'_>>) -> bool {
    matches!(level, Some(R::Plus | R::Hash))
}

fn is_dollar(level: Option<&R<'_>>) -> bool {
    matches!(level, Some(R::Lit(l)) if l.starts_with('$'))
}

/// Whether filter `rule` matches topic name `topic`.
fn matches(rule: &[R<'_>], topic: &[R<'_>]) -> bool {
    if is_dollar(topic.first()) && is_wild(rule.first()) {
        return false;
    }
    for (i, level) in rule.iter().enumerate() {
        match (level, topic.get(i)) {
            (R::Hash, _) => return true,
            (R::Plus, Some(_)) => {}
            (R::Lit(a), Some(R::Lit(b))) if a == b => {}
            _ => return false,
        }
    }
    rule.len() == topic.len()
}

/// Whether every topic `filter` matches is matched by `rule`.
fn covers(rule: &[R<'_>], filter: &[R<'_>]) -> bool {
    if is_dollar(filter.first()) && is_wild(rule.first()) {
        return false;
    }
    let mut i = 0;
    loop {
        match (rule.get(i), filter.get(i)) {
            (Some(R::Hash), _) => return true,
            (None, None) => return true,
            (Some(R::Plus), Some(R::Lit(_) | R::Plus)) => {}
            (Some(R::Lit(a)), Some(R::Lit(b))) if a == b => {}
            _ => return false,
        }
        i += 1;
    }
}

/// Whether some topic is matched by both `rule` and `filter`.
fn overlaps(rule: &[R<'_>], filter: &[R<'_>]) -> bool {
    let (r0, f0) = (rule.first(), filter.first());
    if (is_dollar(f0) && is_wild(r0)) || (is_dollar(r0) && is_wild(f0)) {
        return false;
    }
    let mut i = 0;
    loop {
        match (rule.get(i), filter.get(i)) {
            (Some(R::Hash), _) | (_, Some(R::Hash)) | (None, None) => return true,
            (Some(R::Lit(a)), Some(R::Lit(b))) => {
                if a != b {
                    return false;
                }
            }
            (Some(_), Some(_)) => {}
            _ => return false,
        }
        i += 1;
    }
}

/// Whether `rule`'s topic `spec` decides `action` (one of the action bits) on `s`.
fn topic_applies(spec: &TopicSpec, allow: bool, action: u8, bound: &Bound<'_>, s: &str) -> bool {
    let Some(levels) = resolve(spec, bound) else {
        return false;
    };
    if spec.is_literal() {
        let text: Vec<&str> = levels
            .iter()
            .map(|l| match l {
                R::Lit(l) => *l,
                R::Plus => "+",
                R::Hash => "#",
            })
            .collect();
        return text.join("/") == s;
    }
    let target = parse(s);
    match action {
        SUBSCRIBE if allow => covers(&levels, &target),
        SUBSCRIBE => overlaps(&levels, &target),
        _ => matches(&levels, &target),
    }
}

/// The index of the first rule that decides `action` on `s` for `principal`.
pub(crate) fn first_match(
    rules: &[FlatRule],
    principal: &Principal<'_>,
    action: u8,
    s: &str,
) -> Option<usize> {
    debug_assert!(matches!(action, PUBLISH | SUBSCRIBE | READ));
    let bound = Bound::new(principal.username, principal.client_id);
    let hash = TopicSpec::filter("#").ok()?;
    rules.iter().position(|rule| {
        if rule.actions & action == 0 || !rule.who.applies(principal) {
            return false;
        }
        match &rule.topics {
            Some(topics) => topics
                .iter()
                .any(|t| topic_applies(t, rule.allow, action, &bound, s)),
            None if rule.allow => topic_applies(&hash, true, action, &bound, s),
            None => true,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filter_against_filter() {
        let c = |r: &str, f: &str| covers(&parse(r), &parse(f));
        let o = |r: &str, f: &str| overlaps(&parse(r), &parse(f));
        assert!(c("#", "a/#"));
        assert!(c("a/#", "a"));
        assert!(c("a/+", "a/b"));
        assert!(c("a/+/#", "a/+"));
        assert!(!c("a/+/#", "a/#"));
        assert!(!c("a/+", "a/#"));
        assert!(!c("a/b", "a/+"));
        assert!(!c("#", "$SYS/#"));
        assert!(c("$SYS/#", "$SYS/broker/+"));
        assert!(!c("+/#", "$SYS/x"));
        assert!(o("a/b", "a/+"));
        assert!(o("a", "a/#"));
        assert!(o("a/+/c", "a/#"));
        assert!(!o("a/+", "a"));
        assert!(!o("a/b", "a/c"));
        assert!(!o("#", "$SYS/#"));
        assert!(!o("$SYS/#", "#"));
        assert!(o("#", "+"));
        assert!(matches(&parse("a/#"), &parse("a")));
        assert!(!matches(&parse("+/b"), &parse("$x/b")));
        assert!(matches(&parse("a/+"), &parse("a/")));
    }
}
