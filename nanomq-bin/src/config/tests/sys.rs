//! `[sys]`: its defaults (which the example file shows), `interval = "0s"` turning the
//! statistics off, and the problems its mistakes are named by.

#![cfg(feature = "tcp")]

use std::time::Duration;

use super::*;

#[test]
fn the_example_file_shows_the_sys_defaults() {
    let config = parse(DEFAULT_CONFIG).unwrap();
    assert_eq!(config.sys, SysConfig::default());
    assert_eq!(
        config.sys,
        SysConfig {
            interval: Some(Duration::from_secs(10)),
            client_events: true,
        }
    );
    // Without the table: the same.
    assert_eq!(parse(&with_tcp("")).unwrap().sys, SysConfig::default());
}

#[test]
fn the_sys_table_is_read() {
    let config = parse(&with_tcp(
        "[sys]\ninterval = \"1m\"\nclient_events = false\n",
    ))
    .unwrap();
    assert_eq!(
        config.sys,
        SysConfig {
            interval: Some(Duration::from_secs(60)),
            client_events: false,
        }
    );
    // An integer is a number of seconds; 0 turns the statistics off.
    let config = parse(&with_tcp("[sys]\ninterval = 2\n")).unwrap();
    assert_eq!(config.sys.interval, Some(Duration::from_secs(2)));
    let config = parse(&with_tcp("[sys]\ninterval = \"0s\"\n")).unwrap();
    assert_eq!(config.sys.interval, None);
    assert!(
        config.sys.client_events,
        "events do not depend on the interval"
    );
}

#[test]
fn sys_mistakes_are_named() {
    assert_refused(
        &with_tcp("[sys]\ninterval = \"500ms\"\n"),
        "sys.interval",
        "at least 1s",
    );
    assert_refused(
        &with_tcp("[sys]\ninterval = \"soon\"\n"),
        "sys.interval",
        "invalid duration",
    );
    assert_refused(
        &with_tcp("[sys]\nclient_events = \"yes\"\n"),
        "sys.client_events",
        "bool",
    );
    assert_refused(
        &with_tcp("[sys]\nsys_interval = 10\n"),
        "sys",
        "unknown field",
    );
}
