//! When the next probe round runs, sans IO: a cron expression or a fixed interval, plus
//! a random jitter so that verifiers sharing a schedule do not probe a provider at the
//! same instant (and a provider cannot predict the probe to the second).
//!
//! Cron expressions take the usual five fields (`*/5 * * * *`, minute precision, UTC);
//! six or seven fields (with seconds, and year) are passed to the `cron` crate as is.

use chrono::{DateTime, Utc};
use std::str::FromStr;
use std::time::Duration;

use crate::error::ConfigError;

/// The base schedule, without jitter.
#[derive(Debug, Clone)]
pub enum Schedule {
    /// A cron expression, evaluated in UTC.
    Cron(Box<cron::Schedule>),
    /// Every `n` seconds from the previous run.
    Interval(Duration),
}

impl Schedule {
    /// Parse a cron expression; errors name the config field.
    pub fn cron(expr: &str) -> Result<Self, ConfigError> {
        let fields = expr.split_whitespace().count();
        // The cron crate wants a seconds field; classic crontab has none.
        let full = if fields == 5 {
            format!("0 {expr}")
        } else {
            expr.to_string()
        };
        cron::Schedule::from_str(&full)
            .map(|s| Schedule::Cron(Box::new(s)))
            .map_err(|e| ConfigError::field("schedule.cron", format!("'{expr}': {e}")))
    }

    /// A fixed interval; zero is refused (it would probe in a tight loop).
    pub fn interval(secs: u64) -> Result<Self, ConfigError> {
        if secs == 0 {
            return Err(ConfigError::field(
                "schedule.interval_secs",
                "must be at least 1",
            ));
        }
        Ok(Schedule::Interval(Duration::from_secs(secs)))
    }

    /// The next base instant strictly after `now` (`None` if a cron expression has no
    /// future occurrence, e.g. a past year).
    pub fn next_after(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        match self {
            Schedule::Cron(s) => s.after(&now).next(),
            Schedule::Interval(d) => chrono::Duration::from_std(*d).ok().map(|d| now + d),
        }
    }
}

/// A schedule with jitter: each run happens at the base instant plus a uniformly
/// random delay in `[0, jitter]`.
#[derive(Debug, Clone)]
pub struct Jittered {
    /// The base schedule.
    pub schedule: Schedule,
    /// Largest extra delay.
    pub jitter: Duration,
}

impl Jittered {
    /// The next run after `now`, with `unit` in `[0, 1)` choosing the jitter (callers pass
    /// a random number; tests pass fixed ones).
    pub fn next_run(&self, now: DateTime<Utc>, unit: f64) -> Option<DateTime<Utc>> {
        let base = self.schedule.next_after(now)?;
        let extra = self.jitter.mul_f64(unit.clamp(0.0, 1.0));
        chrono::Duration::from_std(extra).ok().map(|d| base + d)
    }

    /// How long to sleep from `now` until [`Self::next_run`].
    pub fn delay_from(&self, now: DateTime<Utc>, unit: f64) -> Option<Duration> {
        let at = self.next_run(now, unit)?;
        Some((at - now).to_std().unwrap_or(Duration::ZERO))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(h: u32, m: u32, s: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2030, 1, 2, h, m, s)
            .single()
            .expect("valid")
    }

    #[test]
    fn five_field_cron_runs_on_the_minute() {
        let s = Schedule::cron("*/5 * * * *").expect("valid");
        assert_eq!(s.next_after(at(10, 2, 30)), Some(at(10, 5, 0)));
        assert_eq!(s.next_after(at(10, 5, 0)), Some(at(10, 10, 0)));
        assert_eq!(s.next_after(at(10, 59, 1)), Some(at(11, 0, 0)));
    }

    #[test]
    fn six_field_cron_keeps_seconds() {
        let s = Schedule::cron("30 0 * * * *").expect("valid");
        assert_eq!(s.next_after(at(10, 2, 0)), Some(at(11, 0, 30)));
    }

    #[test]
    fn bad_cron_names_the_field() {
        let e = Schedule::cron("every five minutes").expect_err("invalid");
        assert!(e.to_string().contains("schedule.cron"), "{e}");
        let e = Schedule::interval(0).expect_err("invalid");
        assert!(e.to_string().contains("schedule.interval_secs"), "{e}");
    }

    #[test]
    fn interval_counts_from_now() {
        let s = Schedule::interval(300).expect("valid");
        assert_eq!(s.next_after(at(10, 0, 0)), Some(at(10, 5, 0)));
    }

    #[test]
    fn jitter_is_bounded_and_added() {
        let j = Jittered {
            schedule: Schedule::interval(60).expect("valid"),
            jitter: Duration::from_secs(20),
        };
        let now = at(10, 0, 0);
        assert_eq!(j.next_run(now, 0.0), Some(at(10, 1, 0)));
        assert_eq!(j.next_run(now, 0.5), Some(at(10, 1, 10)));
        // Out-of-range units are clamped, never beyond the jitter.
        assert_eq!(j.next_run(now, 7.0), Some(at(10, 1, 20)));
        assert_eq!(j.delay_from(now, 0.25), Some(Duration::from_secs(65)));
    }
}
