//! Pure lifecycle decisions: functions of recorded state and a clock value
//! (milliseconds since the epoch), so every rule is table-tested without
//! tmux or sleeping. The daemon performs what they decide.

use crate::daemon::state::Park;
use crate::session::runtime::WakeMode;

#[derive(Debug, Clone, Default)]
pub struct WakeInputs<'a> {
    pub fresh_next: bool,
    pub ephemeral: bool,
    pub park: Option<&'a Park>,
    pub can_resume: bool,
}

/// Fresh or resume; first matching rule wins. Returns the mode and why.
pub fn wake_mode(i: &WakeInputs) -> (WakeMode, &'static str) {
    if i.fresh_next {
        return (WakeMode::Fresh, "fresh-next-mark");
    }
    if i.ephemeral {
        return (WakeMode::Fresh, "ephemeral");
    }
    if i.park.is_none() {
        return (WakeMode::Fresh, "not-parked");
    }
    if !i.can_resume {
        return (WakeMode::Fresh, "runtime-cannot-resume");
    }
    (WakeMode::Resume, "parked-by-idle-reap")
}

/// Timers that govern a live session.
#[derive(Debug, Clone, Copy)]
pub struct Timers {
    pub idle_ms: u64,
    pub quiet_ms: u64,
    pub unarmed_ms: u64,
}

/// What the supervisor knows about a live (or just-died) session.
#[derive(Debug, Clone, Default)]
pub struct View {
    pub pane_dead: bool,
    pub stopped: bool,
    pub ephemeral: bool,
    pub woke_at_ms: u64,
    pub last_activity_ms: Option<u64>,
    pub last_delivery_ms: Option<u64>,
    pub armed_at_ms: Option<u64>,
    /// Latest turn-end marker from the agent's hook; it reaps an armed
    /// ephemeral session when it is newer than the last delivery.
    pub turn_end_ms: Option<u64>,
    /// A delivery or ready gate is pending: never reap under it.
    pub busy: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Look again no later than this time.
    Keep { next_ms: u64 },
    /// The program exited on its own: record a death.
    Death,
    /// An operator stop: close the session; not a death.
    Halt,
    /// A policy reap; `park` leaves a resume-eligible mark.
    Reap { cause: ReapCause, park: bool },
}

/// Why a policy reap ends a session (logged as `cause=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReapCause {
    /// An armed ephemeral session's agent reported the end of its turn.
    TurnEnd,
    /// An armed session went quiet after its reply.
    QuietAfterReply,
    /// An ephemeral session was never armed by a reply.
    UnarmedIdle,
    /// No activity for the idle timeout.
    Idle,
}

impl ReapCause {
    pub fn as_str(self) -> &'static str {
        match self {
            ReapCause::TurnEnd => "turn-end",
            ReapCause::QuietAfterReply => "quiet-after-reply",
            ReapCause::UnarmedIdle => "unarmed-idle",
            ReapCause::Idle => "idle",
        }
    }
}

impl View {
    /// Idle age counts from the latest of activity, wake and delivery, so a
    /// just-woken session with an old transcript is not reaped.
    fn last_sign(&self) -> u64 {
        [Some(self.woke_at_ms), self.last_activity_ms, self.last_delivery_ms].into_iter().flatten().max().unwrap_or(0)
    }
}

pub fn supervise(v: &View, t: &Timers, now: u64) -> Verdict {
    if v.pane_dead {
        return Verdict::Death;
    }
    if v.stopped {
        return Verdict::Halt;
    }
    let last = v.last_sign();
    let mut next = u64::MAX;
    if !v.busy {
        if v.ephemeral {
            if let Some(armed) = v.armed_at_ms {
                // The turn that ended must be the one our task started.
                if v.turn_end_ms.is_some_and(|te| te >= v.last_delivery_ms.unwrap_or(v.woke_at_ms)) {
                    return Verdict::Reap { cause: ReapCause::TurnEnd, park: false };
                }
                let quiet_from = last.max(armed);
                if now >= quiet_from + t.quiet_ms {
                    return Verdict::Reap { cause: ReapCause::QuietAfterReply, park: false };
                }
                next = next.min(quiet_from + t.quiet_ms);
            } else {
                if now >= last + t.unarmed_ms {
                    return Verdict::Reap { cause: ReapCause::UnarmedIdle, park: false };
                }
                next = next.min(last + t.unarmed_ms);
            }
        }
        if now >= last + t.idle_ms {
            return Verdict::Reap { cause: ReapCause::Idle, park: !v.ephemeral };
        }
        next = next.min(last + t.idle_ms);
    }
    Verdict::Keep { next_ms: next }
}

/// Crash-loop guard: with `max` deaths inside `window_ms`, waking is
/// refused until the oldest of them ages out. Returns that time.
pub fn crashloop_until(deaths: &[u64], now: u64, max: usize, window_ms: u64) -> Option<u64> {
    if max == 0 {
        return None;
    }
    let mut recent: Vec<u64> = deaths.iter().copied().filter(|&d| now < d + window_ms).collect();
    recent.sort_unstable();
    (recent.len() >= max).then(|| recent[recent.len() - max] + window_ms)
}

/// Retry backoff for an unconfirmed delivery: 0.5 s, 1 s, 2 s, ... capped.
pub fn retry_backoff_ms(attempt: u32) -> u64 {
    (500u64 << attempt.min(6)).min(30_000)
}

pub const MAX_DELIVERY_ATTEMPTS: u32 = 3;

/// Why a wake failed, by who can fix it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WakeError {
    /// Only the operator can fix it (not logged in, refused as root): the
    /// peer is blocked at once, not retried, not counted as a death.
    Setup(String),
    /// Anything else: counted as a death, retried with backoff.
    Failed(String),
}

impl WakeError {
    pub fn reason(&self) -> &str {
        match self {
            WakeError::Setup(r) | WakeError::Failed(r) => r,
        }
    }
}

impl From<String> for WakeError {
    fn from(r: String) -> Self {
        WakeError::Failed(r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: Timers = Timers { idle_ms: 3_600_000, quiet_ms: 20_000, unarmed_ms: 600_000 };

    #[test]
    fn wake_mode_table() {
        let park = Park::default();
        let cases = [
            (WakeInputs { fresh_next: true, park: Some(&park), can_resume: true, ..Default::default() }, WakeMode::Fresh, "fresh-next-mark"),
            (WakeInputs { ephemeral: true, park: Some(&park), can_resume: true, ..Default::default() }, WakeMode::Fresh, "ephemeral"),
            (WakeInputs { can_resume: true, ..Default::default() }, WakeMode::Fresh, "not-parked"),
            (WakeInputs { park: Some(&park), ..Default::default() }, WakeMode::Fresh, "runtime-cannot-resume"),
            (WakeInputs { park: Some(&park), can_resume: true, ..Default::default() }, WakeMode::Resume, "parked-by-idle-reap"),
        ];
        for (i, mode, cause) in cases {
            assert_eq!(wake_mode(&i), (mode, cause));
        }
    }

    #[test]
    fn death_and_halt_come_first() {
        let v = View { pane_dead: true, stopped: true, ..Default::default() };
        assert_eq!(supervise(&v, &T, 0), Verdict::Death);
        let v = View { stopped: true, ..Default::default() };
        assert_eq!(supervise(&v, &T, 0), Verdict::Halt);
    }

    #[test]
    fn idle_reap_counts_from_latest_sign_and_parks_warm_peers() {
        let v = View { woke_at_ms: 1_000, last_activity_ms: Some(500), ..Default::default() };
        assert_eq!(supervise(&v, &T, 1_000 + T.idle_ms - 1), Verdict::Keep { next_ms: 1_000 + T.idle_ms });
        assert_eq!(supervise(&v, &T, 1_000 + T.idle_ms), Verdict::Reap { cause: ReapCause::Idle, park: true });
        let busy = View { busy: true, ..v.clone() };
        assert!(matches!(supervise(&busy, &T, u64::MAX / 2), Verdict::Keep { .. }));
    }

    #[test]
    fn ephemeral_armed_quiet_window_and_turn_end() {
        let v = View { ephemeral: true, woke_at_ms: 0, armed_at_ms: Some(10_000), last_activity_ms: Some(12_000), ..Default::default() };
        assert_eq!(supervise(&v, &T, 12_000 + T.quiet_ms - 1), Verdict::Keep { next_ms: 12_000 + T.quiet_ms });
        assert_eq!(supervise(&v, &T, 12_000 + T.quiet_ms), Verdict::Reap { cause: ReapCause::QuietAfterReply, park: false });
        let v = View { last_delivery_ms: Some(5_000), ..v };
        let te = View { turn_end_ms: Some(9_500), ..v.clone() };
        assert_eq!(supervise(&te, &T, 10_600), Verdict::Reap { cause: ReapCause::TurnEnd, park: false });
        // A turn-end from before the delivery (an earlier turn) does not count.
        let old = View { turn_end_ms: Some(4_000), ..v };
        assert!(matches!(supervise(&old, &T, 10_600), Verdict::Keep { .. }));
    }

    #[test]
    fn ephemeral_unarmed_bound() {
        let v = View { ephemeral: true, woke_at_ms: 0, ..Default::default() };
        assert_eq!(supervise(&v, &T, T.unarmed_ms), Verdict::Reap { cause: ReapCause::UnarmedIdle, park: false });
        assert_eq!(supervise(&v, &T, 1), Verdict::Keep { next_ms: T.unarmed_ms });
    }

    #[test]
    fn crashloop_guard() {
        let w = 300_000;
        assert_eq!(crashloop_until(&[1, 2], 10, 3, w), None);
        assert_eq!(crashloop_until(&[1, 2, 3], 10, 3, w), Some(1 + w));
        assert_eq!(crashloop_until(&[1, 2, 3], 1 + w, 3, w), None, "oldest aged out");
        assert_eq!(crashloop_until(&[1, 5, 6, 7], 10, 3, w), Some(5 + w));
    }

    #[test]
    fn backoff_grows_and_caps() {
        assert_eq!(retry_backoff_ms(0), 500);
        assert_eq!(retry_backoff_ms(2), 2_000);
        assert_eq!(retry_backoff_ms(20), 30_000);
    }
}
