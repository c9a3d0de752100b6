//! What is wrong with a configuration: each problem names its key, and all are reported at
//! once.

use std::fmt;
use std::time::Duration;

/// One thing wrong with a configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Problem {
    /// The dotted key it is about (`mqtt.max_inflight`); `None` for a TOML syntax error.
    pub(crate) key: Option<String>,
    /// What is wrong with it.
    pub(crate) message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.key {
            Some(key) => write!(f, "{key}: {}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

/// Why a configuration was refused: every problem found, one per line when displayed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ConfigError {
    /// The problems, at least one.
    pub(crate) problems: Vec<Problem>,
}

impl ConfigError {
    /// An error with a single problem about `key`.
    pub(super) fn one(key: Option<String>, message: String) -> Self {
        Self {
            problems: vec![Problem { key, message }],
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, problem) in self.problems.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{problem}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigError {}

/// Collects the problems found while validating.
#[derive(Debug, Default)]
pub(super) struct Problems(pub(super) Vec<Problem>);

impl Problems {
    /// Records that `key` is wrong.
    pub(super) fn add(&mut self, key: &str, message: impl Into<String>) {
        self.0.push(Problem {
            key: Some(key.to_owned()),
            message: message.into(),
        });
    }

    /// `value` as a `T` if it lies in `min..=max`; otherwise records a problem and gives `None`.
    pub(super) fn in_range<T: TryFrom<i64>>(
        &mut self,
        key: &str,
        value: i64,
        min: i64,
        max: i64,
    ) -> Option<T> {
        if (min..=max).contains(&value)
            && let Ok(value) = T::try_from(value)
        {
            return Some(value);
        }
        if max == i64::MAX {
            self.add(key, format!("must be at least {min}, got {value}"));
        } else {
            self.add(key, format!("must be between {min} and {max}, got {value}"));
        }
        None
    }

    /// `value` if it is not zero; otherwise records a problem.
    pub(super) fn positive(&mut self, key: &str, value: Duration) -> Duration {
        if value.is_zero() {
            self.add(key, "must be greater than zero");
        }
        value
    }
}
