//! Session supervision: is the pane alive, is the peer idle, armed, stuck
//! or stopped; the verdicts are `lifecycle::supervise`'s and `turn::state`'s,
//! this file only gathers the facts and carries them out (reap, death, halt).

use super::*;
use crate::daemon::lifecycle::ReapCause;

impl Peer {
    /// An ephemeral worker's first outbox file arms its session's reap.
    pub(super) fn arm(&mut self) {
        if !self.ephemeral() {
            return;
        }
        if let Some(s) = self.session.as_mut() {
            if s.armed_at_ms.is_none() {
                s.armed_at_ms = Some(now_ms());
                let _ = self.st.set_session(Some(s));
                self.lifecycle(&[("event", "armed")]);
            }
        }
    }

    pub(super) fn activity_ms(&self) -> Option<u64> {
        let rt = self.runtime.as_ref()?.activity().map(crate::daemon::state::ms);
        let te = crate::session::hook::turn_end_ms(&self.sh.root, &self.name);
        rt.max(te)
    }

    /// When the agent last did something, for idle decisions: the
    /// runtime's newest record entry (not a file mtime, which some runtimes
    /// bump while idle) or the turn-end hook.
    pub(super) fn idle_ref_ms(&self) -> Option<u64> {
        let rt = self.runtime.as_ref()?.last_entry().map(crate::daemon::state::ms);
        rt.max(crate::session::hook::turn_end_ms(&self.sh.root, &self.name))
    }

    pub(super) async fn supervise(&mut self, cfg: &Config) {
        let Some(sess) = self.session.clone() else {
            return;
        };
        let now = now_ms();
        let pane = self.pane().await;
        // No answer because the daemon is out of descriptors says nothing
        // about the session: not a death, ask again shortly.
        if pane.is_none() && crate::fsx::out_of_fds("") {
            self.schedule(now + 1000);
            return;
        }
        let act = self.activity_ms();
        let last = self.idle_ref_ms();
        if let Some(a) = last {
            if self.st.activity_ms() != Some(a) {
                self.st.set_activity_ms(a);
            }
        }
        if let Some(g) = self.gate.clone() {
            if act.is_some_and(|a| g.act0.is_none_or(|a0| a > a0)) {
                self.finish_task(&g.task, "gate-passed");
                self.gate = None;
            } else if now >= g.deadline_ms && pane.as_ref().is_some_and(|p| !p.dead) {
                self.lifecycle(&[("event", "ready-gate-failed"), ("task", &g.task), ("reason", "model-did-not-process-task")]);
                self.requeue(&g.task);
                self.gate = None;
                self.end_session("model-did-not-process-task", true, false).await;
                return;
            } else {
                self.schedule(g.deadline_ms.min(now + 250));
            }
        }
        let mut view = View {
            pane_dead: pane.as_ref().is_none_or(|p| p.dead),
            stopped: self.st.stopped(),
            ephemeral: self.ephemeral(),
            woke_at_ms: sess.woke_at_ms,
            // Idle counts from the end of the last turn too.
            last_activity_ms: last.max(self.turns.ended_ms),
            last_delivery_ms: sess.last_delivery_ms,
            armed_at_ms: sess.armed_at_ms,
            turn_end_ms: crate::session::hook::turn_end_ms(&self.sh.root, &self.name),
            busy: self.gate.is_some(),
        };
        match lifecycle::supervise(&view, &self.timers(cfg), now) {
            Verdict::Keep { next_ms } => {
                self.schedule(next_ms);
                self.schedule(now + cfg.tick.as_millis() as u64);
            }
            Verdict::Death => {
                let exit = Pane::exit(pane.as_ref());
                if let Some(g) = self.gate.take() {
                    self.requeue(&g.task);
                }
                self.end_session(&format!("exited {exit}"), true, false).await;
            }
            Verdict::Halt => self.end_session("operator-stop", false, false).await,
            Verdict::Reap { cause, .. } if cause != ReapCause::TurnEnd => {
                // A turn in progress (a silent tool run too) is never idle.
                let state = self.turn().await;
                if state == TurnState::Ready {
                    // A turn seen to end just now restarts the idle count.
                    view.last_activity_ms = view.last_activity_ms.max(self.turns.ended_ms);
                    match lifecycle::supervise(&view, &self.timers(cfg), now) {
                        Verdict::Reap { cause, park } => return self.end_session(cause.as_str(), false, park).await,
                        Verdict::Keep { next_ms } => return self.schedule(next_ms),
                        _ => return,
                    }
                }
                if self.stuck(now).await {
                    return;
                }
                if !self.turns.reap_deferred {
                    self.turns.reap_deferred = true;
                    self.lifecycle(&[("event", "reap-deferred"), ("cause", cause.as_str()), ("state", state.as_str())]);
                }
                self.schedule(now + turns::REAP_RECHECK_MS);
            }
            Verdict::Reap { cause, park } => self.end_session(cause.as_str(), false, park).await,
        }
    }

    /// The pane's state for supervision. While the pane's process is alive
    /// a signal-0 probe answers without spawning a tmux client, which every
    /// tick and every delivery would otherwise do; tmux is still asked every
    /// `PANE_RECHECK` and as soon as the process is gone.
    pub(super) async fn pane(&mut self) -> Option<Pane> {
        if let Some((p, at)) = &self.live_pane {
            if at.elapsed() < PANE_RECHECK && p.pid.is_some_and(pid_alive) {
                return Some(p.clone());
            }
        }
        let p = self.tmux.pane().await;
        self.live_pane = p.clone().filter(|p| !p.dead && p.pid.is_some()).map(|p| (p, Instant::now()));
        p
    }

    /// Closes the session and records why. A death feeds the crash-loop
    /// guard; a reap does not; a parking reap leaves the resume mark.
    /// Kills the session and forgets it, with no verdict of its own.
    pub(super) async fn discard_session(&mut self) {
        self.reset_turn();
        self.tmux.kill().await;
        self.session = None;
        self.live_pane = None;
        let _ = self.st.set_session(None);
        let _ = self.st.set_current(None);
    }

    pub(super) async fn end_session(&mut self, cause: &str, death: bool, park: bool) {
        let last = self.tmux.capture(false).await.ok().map(|s| last_lines(&s, 2)).unwrap_or_default();
        self.reset_turn();
        self.tmux.kill().await;
        // Marks first, then the log line: a reader of the log may act on it.
        if park {
            let mut pk = self.st.park().unwrap_or_default();
            pk.at_ms = now_ms();
            if let Some(t) = self.st.current().and_then(|c| c.topic) {
                pk.topics.retain(|x| x != &t);
                pk.topics.push(t);
                let n = pk.topics.len().saturating_sub(TOPICS_KEPT);
                pk.topics.drain(..n);
            }
            let _ = self.st.set_park(Some(&pk));
        }
        self.session = None;
        self.live_pane = None;
        let _ = self.st.set_session(None);
        let _ = self.st.set_current(None);
        let now = now_ms();
        if death {
            let _ = self.st.record_death(now);
            self.lifecycle(&[("event", "death"), ("cause", cause), ("last_lines", &last)]);
        } else {
            self.lifecycle(&[("event", "reap"), ("cause", cause), ("park", if park { "yes" } else { "no" })]);
        }
        // Re-check the spool at once: the next queued task may start now.
        self.schedule(now);
    }
}

/// How often tmux itself is asked about a pane whose process is alive.
const PANE_RECHECK: Duration = Duration::from_secs(10);

fn pid_alive(pid: u32) -> bool {
    // SAFETY: signal 0 only checks that the process exists.
    pid > 0 && unsafe { libc::kill(pid as i32, 0) } == 0
}
