//! The peer loop's view of the turn: gathers the facts `turn::state`
//! decides on (screen, the runtime's record, the turn-end hook, our last
//! paste), holds a task in the queue while the agent is not ready, and
//! keeps `status` and the delivery log told why. It decides nothing itself.

use super::{now_ms, Peer};
use crate::daemon::state::{TurnView, Waiting};
use crate::session::runtime::turns::{plain, solid};
use crate::session::turn::{self, Facts, ScreenTurn, TurnState};

/// How often a task waiting for a busy peer looks again.
pub const WAIT_POLL_MS: u64 = 250;
/// The next look of a task that has waited `waited_ms`: 5 ms at first,
/// doubling up to `WAIT_POLL_MS`.
pub fn wait_gap(waited_ms: u64) -> u64 {
    let mut gap = 5;
    while gap < WAIT_POLL_MS && gap * 2 <= waited_ms {
        gap *= 2;
    }
    gap.min(WAIT_POLL_MS)
}

/// How often a deferred reap looks again.
pub const REAP_RECHECK_MS: u64 = 2_000;

/// What the loop remembers between looks.
#[derive(Debug, Default)]
pub struct TurnWatch {
    /// The screen's fingerprint and since when it has not changed.
    quiet: Option<(u64, u64)>,
    /// The last state seen and since when.
    pub last: Option<(TurnState, u64)>,
    /// When a turn was last seen to end (working, then ready).
    pub ended_ms: Option<u64>,
    /// The task held for the turn, with why and since when.
    waiting: Option<(String, TurnState, u64)>,
    /// A stuck turn was reported (once per turn).
    pub stuck_logged: bool,
    /// A reap was deferred for this turn (logged once).
    pub reap_deferred: bool,
    /// The screen as last read (plain text).
    screen: String,
}

impl Peer {
    /// What the live session is doing now. A screen that cannot be read
    /// counts as working: never paste blind.
    pub(super) async fn turn(&mut self) -> TurnState {
        let (Some(rt), Some(sess)) = (self.runtime.clone(), self.session.as_ref()) else { return TurnState::Ready };
        let delivered_ms = sess.last_delivery_ms;
        let Ok(escaped) = self.tmux.capture(true).await else { return TurnState::Working };
        let text = plain(&escaped);
        let screen = rt.turn_screen(&text, &solid(&escaped));
        self.turns.screen.clone_from(&text);
        let now = now_ms();
        let print = crate::root::fnv1a(text.as_bytes());
        let quiet_ms = match self.turns.quiet {
            Some((p, since)) if p == print && screen != ScreenTurn::Busy => now.saturating_sub(since),
            _ => {
                self.turns.quiet = Some((print, now));
                0
            }
        };
        // The record is read only when the screen leaves the question open.
        let record = if matches!(screen, ScreenTurn::Busy | ScreenTurn::Dialog) { None } else { rt.turn_record() };
        let hook_end_ms = crate::session::hook::turn_end_ms(&self.sh.root, &self.name);
        let state = turn::state(&Facts { screen, record, hook_end_ms, delivered_ms, quiet_ms });
        let changed = self.turns.last.is_none_or(|(s, _)| s != state);
        if changed {
            if let Some((TurnState::Working, since)) = self.turns.last.filter(|_| state == TurnState::Ready) {
                self.turns.ended_ms = Some(now);
                // For receipts: the turn of the task last pasted is over.
                if let Some(cur) = self.st.current() {
                    let ms = now.saturating_sub(since).to_string();
                    self.delivery(&[("event", "turn-end"), ("task", &cur.id), ("turn_ms", &ms)]);
                }
            }
            if state == TurnState::Working {
                self.turns.stuck_logged = false;
                self.turns.reap_deferred = false;
            }
            self.turns.last = Some((state, now));
            self.show_turn();
        }
        state
    }

    /// Whether the "draft" in the input is our own paste of the recovered
    /// task `name` (in `cur/`: a daemon died between paste and Enter),
    /// which delivery finishes with Enter alone.
    pub(super) fn draft_is_ours(&self, name: &str, cfg: &crate::config::Config) -> bool {
        let Some(rt) = self.runtime.as_ref() else { return false };
        let lim = crate::queue::spool::Limits { max_bytes: cfg.max_bytes, ..Default::default() };
        let stem = name.strip_suffix(".json").unwrap_or(name);
        let Ok(task) = crate::queue::spool::read_checked(&self.spool.cur.join(name), &lim).and_then(|b| crate::queue::format::parse_task(&b, stem)) else { return false };
        let prompt = self.profile.as_ref().and_then(|p| p.initial_prompt.clone());
        let holds = [None, prompt.as_deref()].into_iter().any(|p| rt.composer_holds(&self.turns.screen, &crate::session::deliver::envelope(&task, p)));
        holds
    }

    /// Holds `task` (the head of the queue, not claimed) for the turn.
    pub(super) fn wait_for_turn(&mut self, task: &str, state: TurnState) {
        let now = now_ms();
        let same = self.turns.waiting.as_ref().is_some_and(|(t, s, _)| t == task && *s == state);
        if !same {
            let since = match &self.turns.waiting {
                Some((t, _, since)) if t == task => *since,
                _ => now,
            };
            self.turns.waiting = Some((task.to_string(), state, since));
            let id = task.trim_end_matches(".json");
            self.delivery(&[("event", "wait"), ("task", id), ("state", state.as_str()), ("reason", state.why_waiting())]);
            self.show_turn();
        }
        // A state seen right after a paste is often the agent still
        // redrawing: look again soon, then every WAIT_POLL_MS.
        let waited = self.turns.waiting.as_ref().map_or(0, |(_, _, since)| now.saturating_sub(*since));
        self.schedule(now + wait_gap(waited));
    }

    /// The wait is over: how long it lasted, if there was one.
    pub(super) fn end_wait(&mut self) -> Option<u64> {
        let (_, _, since) = self.turns.waiting.take()?;
        self.show_turn();
        Some(now_ms().saturating_sub(since))
    }

    /// Forgets the session's turn (it ended or was replaced).
    pub(super) fn reset_turn(&mut self) {
        let waiting = self.turns.waiting.take();
        self.turns = TurnWatch { waiting, ..TurnWatch::default() };
        self.st.set_turn(None);
    }

    /// A turn past the profile's `max_turn_secs` is reported once, and
    /// reaped only where the profile asks (`reap_stuck`). True if reaped.
    pub(super) async fn stuck(&mut self, now: u64) -> bool {
        let Some((TurnState::Working, since)) = self.turns.last else { return false };
        let (max_s, reap) = self.profile.as_ref().map(|p| (p.max_turn_secs, p.reap_stuck)).unwrap_or((crate::registry::profile::DEFAULT_MAX_TURN_SECS, false));
        let over = now.saturating_sub(since);
        if (over as f64) < max_s * 1000.0 {
            return false;
        }
        if !self.turns.stuck_logged {
            self.turns.stuck_logged = true;
            self.lifecycle(&[("event", "stuck"), ("turn_secs", &(over / 1000).to_string()), ("reap", if reap { "yes" } else { "no" })]);
            self.st.set_blocked(Some(&format!("stuck: one turn has run {} s (max_turn_secs {max_s})", over / 1000)));
        }
        if reap {
            self.end_session("stuck", false, false).await;
        }
        reap
    }

    fn show_turn(&self) {
        let Some((state, since_ms)) = self.turns.last else { return };
        let waiting = self.turns.waiting.as_ref().map(|(t, s, since)| Waiting { task: t.trim_end_matches(".json").into(), since_ms: *since, why: s.why_waiting().into() });
        self.st.set_turn(Some(&TurnView { state, since_ms, waiting }));
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_fresh_wait_is_looked_at_soon_a_long_one_every_250_ms() {
        use super::wait_gap;
        assert_eq!(wait_gap(0), 5);
        assert_eq!(wait_gap(12), 10);
        assert_eq!(wait_gap(100), 80);
        assert_eq!(wait_gap(10_000), super::WAIT_POLL_MS);
    }
}
