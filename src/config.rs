//! Daemon defaults from the environment. Durations accept fractional
//! seconds (`0.2`), which is how tests drive timers in milliseconds.

use std::time::Duration;

#[derive(Debug, Clone)]
pub struct Config {
    pub idle: Duration,
    pub quiet: Duration,
    pub unarmed_idle: Duration,
    pub boot_deadline: Duration,
    pub ready_gate: Duration,
    pub crashloop_max: usize,
    pub crashloop_window: Duration,
    pub log_max_bytes: u64,
    pub log_keep: usize,
    /// How often live sessions are supervised (death, idle) as a safety net.
    pub tick: Duration,
    /// A file written straight into `new/` is judged once unchanged this long.
    pub settle: Duration,
    /// Periodic re-list of every watched directory, in case an event was lost.
    pub rescan: Duration,
    pub max_bytes: u64,
    pub done_keep: usize,
    pub done_max_age: Duration,
    /// Loop guard (`hops`): the hop limit and the per-pair rate.
    pub max_hops: u32,
    pub pair_rate: u32,
    pub pair_window: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            idle: secs(3600.0),
            quiet: secs(20.0),
            unarmed_idle: secs(600.0),
            boot_deadline: secs(240.0),
            ready_gate: secs(120.0),
            crashloop_max: 3,
            crashloop_window: secs(300.0),
            log_max_bytes: 5 * 1024 * 1024,
            log_keep: 5,
            tick: secs(1.0),
            settle: secs(1.0),
            rescan: secs(30.0),
            max_bytes: crate::queue::format::DEFAULT_MAX_BYTES,
            done_keep: 10_000,
            done_max_age: secs(7.0 * 86400.0),
            max_hops: crate::daemon::hops::DEFAULT_MAX_HOPS,
            pair_rate: crate::daemon::hops::DEFAULT_PAIR_RATE,
            pair_window: secs(crate::daemon::hops::DEFAULT_PAIR_WINDOW_SECS),
        }
    }
}

fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s)
}

/// Reads the environment through `get`; returns the config and one warning
/// per invalid value (which falls back to its default).
pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> (Config, Vec<String>) {
    let mut c = Config::default();
    let mut warn = vec![];
    let mut dur = |k: &str, slot: &mut Duration| {
        if let Some(v) = get(k) {
            match v.trim().parse::<f64>() {
                Ok(x) if x.is_finite() && x > 0.0 && x < 1e9 => *slot = secs(x),
                _ => warn.push(format!("{k}={v:?} is not a positive number of seconds; using {}", slot.as_secs_f64())),
            }
        }
    };
    dur("PEERSPOOL_IDLE_SECS", &mut c.idle);
    dur("PEERSPOOL_QUIET_SECS", &mut c.quiet);
    dur("PEERSPOOL_UNARMED_IDLE_SECS", &mut c.unarmed_idle);
    dur("PEERSPOOL_BOOT_DEADLINE_SECS", &mut c.boot_deadline);
    dur("PEERSPOOL_READY_GATE_SECS", &mut c.ready_gate);
    dur("PEERSPOOL_CRASHLOOP_WINDOW_SECS", &mut c.crashloop_window);
    dur("PEERSPOOL_TICK_SECS", &mut c.tick);
    dur("PEERSPOOL_SETTLE_SECS", &mut c.settle);
    dur("PEERSPOOL_RESCAN_SECS", &mut c.rescan);
    dur("PEERSPOOL_DONE_MAX_AGE_SECS", &mut c.done_max_age);
    dur("PEERSPOOL_PAIR_WINDOW_SECS", &mut c.pair_window);
    let mut int = |k: &str, slot: &mut u64| {
        if let Some(v) = get(k) {
            match v.trim().parse::<u64>() {
                Ok(x) if x > 0 => *slot = x,
                _ => warn.push(format!("{k}={v:?} is not a positive integer; using {slot}")),
            }
        }
    };
    let mut max = c.crashloop_max as u64;
    int("PEERSPOOL_CRASHLOOP_MAX", &mut max);
    c.crashloop_max = max as usize;
    int("PEERSPOOL_LOG_MAX_BYTES", &mut c.log_max_bytes);
    let mut keep = c.log_keep as u64;
    int("PEERSPOOL_LOG_KEEP", &mut keep);
    c.log_keep = keep as usize;
    int("PEERSPOOL_MAX_BYTES", &mut c.max_bytes);
    let mut keep = c.done_keep as u64;
    int("PEERSPOOL_DONE_KEEP", &mut keep);
    c.done_keep = keep as usize;
    let mut rate = u64::from(c.pair_rate);
    int("PEERSPOOL_PAIR_RATE", &mut rate);
    c.pair_rate = rate.min(u64::from(u32::MAX)) as u32;
    // 0 is a valid hop limit: no replies at all.
    if let Some(v) = get("PEERSPOOL_MAX_HOPS") {
        match v.trim().parse::<u32>() {
            Ok(x) => c.max_hops = x,
            Err(_) => warn.push(format!("PEERSPOOL_MAX_HOPS={v:?} is not a whole number; using {}", c.max_hops)),
        }
    }
    (c, warn)
}

pub fn from_env() -> (Config, Vec<String>) {
    from_lookup(|k| std::env::var(k).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_values_fall_back_with_warning() {
        let (c, w) = from_lookup(|k| match k {
            "PEERSPOOL_IDLE_SECS" => Some("abc".into()),
            "PEERSPOOL_QUIET_SECS" => Some("0.25".into()),
            "PEERSPOOL_CRASHLOOP_MAX" => Some("-1".into()),
            _ => None,
        });
        assert_eq!(c.idle, Duration::from_secs(3600));
        assert_eq!(c.quiet, Duration::from_millis(250));
        assert_eq!(c.crashloop_max, 3);
        assert_eq!(w.len(), 2, "{w:?}");
    }
}
