//! The value types of the configuration file that TOML has no type for: sizes ("64KB" or a
//! number of bytes), durations ("10s" or a number of seconds) and a session expiry that may be
//! "never". Each parses the way the example `etc/nanomq.toml` documents.

use std::fmt;
use std::time::Duration;

use serde::de::{self, Deserialize, Deserializer, Unexpected, Visitor};

/// A number of bytes: an integer, or a string with a binary unit (`"512KB"`, `"1MB"`,
/// `"1 MiB"`; 1KB = 1024 bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ByteSize(pub(crate) u64);

/// A length of time: a string humantime understands (`"10s"`, `"1h 30m"`, `"500ms"`), or an
/// integer number of seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct HumanDuration(pub(crate) Duration);

/// A duration, or `"never"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Expiry {
    /// Never expires.
    Never,
    /// Expires after this long.
    After(Duration),
}

/// Parses a size string such as `"64KB"`, `"1 MiB"` or `"300"` (bytes).
pub(crate) fn parse_size(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let digits_end = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(digits_end);
    if number.is_empty() {
        return Err(format!(
            "invalid size \"{text}\": expected a number of bytes followed by an optional unit \
             (B, KB, MB, GB), such as \"512KB\""
        ));
    }
    let number: u64 = number
        .parse()
        .map_err(|_| format!("invalid size \"{text}\": the number is too large"))?;
    let multiplier: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        _ => {
            return Err(format!(
                "invalid size \"{text}\": unknown unit \"{}\" (expected B, KB, MB or GB)",
                unit.trim()
            ));
        }
    };
    number
        .checked_mul(multiplier)
        .ok_or_else(|| format!("invalid size \"{text}\": too large"))
}

/// Parses a duration string such as `"10s"`, `"2h"` or `"1h 30m"`.
pub(crate) fn parse_duration(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text.trim()).map_err(|e| {
        format!(
            "invalid duration \"{text}\": {e} (expected a value such as \"10s\", \"5m\" or \"2h\")"
        )
    })
}

/// Converts a TOML integer to a number of seconds.
fn seconds<E: de::Error>(value: i64, expected: &dyn de::Expected) -> Result<Duration, E> {
    u64::try_from(value)
        .map(Duration::from_secs)
        .map_err(|_| E::invalid_value(Unexpected::Signed(value), expected))
}

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        /// Accepts an integer or a size string.
        struct SizeVisitor;

        impl Visitor<'_> for SizeVisitor {
            type Value = ByteSize;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a size: a number of bytes, or a string such as \"512KB\" or \"1MB\"")
            }

            fn visit_i64<E: de::Error>(self, value: i64) -> Result<ByteSize, E> {
                u64::try_from(value)
                    .map(ByteSize)
                    .map_err(|_| E::invalid_value(Unexpected::Signed(value), &self))
            }

            fn visit_u64<E: de::Error>(self, value: u64) -> Result<ByteSize, E> {
                Ok(ByteSize(value))
            }

            fn visit_str<E: de::Error>(self, value: &str) -> Result<ByteSize, E> {
                parse_size(value).map(ByteSize).map_err(E::custom)
            }
        }

        deserializer.deserialize_any(SizeVisitor)
    }
}

impl<'de> Deserialize<'de> for HumanDuration {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        /// Accepts a duration string or an integer number of seconds.
        struct DurationVisitor;

        impl Visitor<'_> for DurationVisitor {
            type Value = HumanDuration;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(
                    "a duration: a string such as \"10s\" or \"2h\", or a number of seconds",
                )
            }

            fn visit_i64<E: de::Error>(self, value: i64) -> Result<HumanDuration, E> {
                seconds(value, &self).map(HumanDuration)
            }

            fn visit_u64<E: de::Error>(self, value: u64) -> Result<HumanDuration, E> {
                Ok(HumanDuration(Duration::from_secs(value)))
            }

            fn visit_str<E: de::Error>(self, value: &str) -> Result<HumanDuration, E> {
                parse_duration(value).map(HumanDuration).map_err(E::custom)
            }
        }

        deserializer.deserialize_any(DurationVisitor)
    }
}

impl<'de> Deserialize<'de> for Expiry {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        /// Accepts "never", a duration string or an integer number of seconds.
        struct ExpiryVisitor;

        impl Visitor<'_> for ExpiryVisitor {
            type Value = Expiry;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("\"never\", or a duration such as \"2h\" or a number of seconds")
            }

            fn visit_i64<E: de::Error>(self, value: i64) -> Result<Expiry, E> {
                seconds(value, &self).map(Expiry::After)
            }

            fn visit_u64<E: de::Error>(self, value: u64) -> Result<Expiry, E> {
                Ok(Expiry::After(Duration::from_secs(value)))
            }

            fn visit_str<E: de::Error>(self, value: &str) -> Result<Expiry, E> {
                if value.trim().eq_ignore_ascii_case("never") {
                    Ok(Expiry::Never)
                } else {
                    parse_duration(value).map(Expiry::After).map_err(E::custom)
                }
            }
        }

        deserializer.deserialize_any(ExpiryVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("0"), Ok(0));
        assert_eq!(parse_size("300"), Ok(300));
        assert_eq!(parse_size("300B"), Ok(300));
        assert_eq!(parse_size("512KB"), Ok(512 * 1024));
        assert_eq!(parse_size("512kb"), Ok(512 * 1024));
        assert_eq!(parse_size("1MB"), Ok(1024 * 1024));
        assert_eq!(parse_size("1 MiB"), Ok(1024 * 1024));
        assert_eq!(parse_size(" 64M "), Ok(64 * 1024 * 1024));
        assert_eq!(parse_size("2GB"), Ok(2 * 1024 * 1024 * 1024));
    }

    #[test]
    fn bad_sizes() {
        for bad in [
            "",
            "MB",
            "1.5MB",
            "-1",
            "1TB",
            "12 apples",
            "99999999999999999999",
        ] {
            let error = parse_size(bad).unwrap_err();
            assert!(error.contains("invalid size"), "{bad:?}: {error}");
        }
        assert!(
            parse_size("99999999999GB")
                .unwrap_err()
                .contains("too large")
        );
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2h"), Ok(Duration::from_secs(7200)));
        assert_eq!(parse_duration("1h 30m"), Ok(Duration::from_secs(5400)));
        assert!(
            parse_duration("soon")
                .unwrap_err()
                .contains("invalid duration \"soon\"")
        );
        assert!(
            parse_duration("10").is_err(),
            "a bare number in a string has no unit"
        );
    }
}
