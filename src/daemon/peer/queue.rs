//! Task delivery: the spool's head claimed one task at a time, judged,
//! held while the agent is not ready (`peer::turns`), pasted and confirmed
//! (`deliver`), then finished into `done/` or `failed/` (`peer::halt` when
//! the bookkeeping itself fails).

use super::*;
use super::wake::Woke;

impl Peer {
    /// Puts a claimed task back at the head of the queue. A writer may
    /// have put a new file of the same name into `new/` meanwhile: that one
    /// is never replaced; this one then stays claimed in `cur/`, which is
    /// delivered first anyway.
    pub(super) fn requeue(&mut self, name: &str) {
        match spool::move_to(&self.spool.cur, &self.spool.new, name) {
            Ok(_) => self.spool_head.hint(name),
            Err(e) if spool::is_taken(&e) => self.lifecycle(&[("event", "requeue-kept"), ("task", name), ("reason", "name taken in new/")]),
            Err(e) => tracing::warn!(peer = %self.name, error = %e, "requeue failed"),
        }
    }

    pub(super) fn finish_task(&mut self, name: &str, how: &'static str) {
        self.attempts.remove(name);
        if self.settle(name, Settle::Done { how: how.into() }) {
            self.delivery(&[("event", "done"), ("task", name.trim_end_matches(".json")), ("outcome", how)]);
        }
    }

    /// The next task to work on: anything already claimed (a restart left
    /// it in `cur/`) first, then the head of `new/` once settled.
    pub(super) fn next_task(&mut self, cfg: &Config) -> Option<(String, bool)> {
        if let Some(n) = spool::list(&self.spool.cur).ok()?.into_iter().find(|n| self.gate.as_ref().is_none_or(|g| &g.task != n)) {
            return Some((n, true));
        }
        loop {
            if let Err(e) = self.relist_if_needed(false) {
                tracing::warn!(peer = %self.name, error = %e, "cannot list spool");
                self.schedule(now_ms() + 1000);
                return None;
            }
            let name = self.spool_head.first()?.clone();
            let key = format!("spool/{name}");
            if let Err(at) = self.settled(&key, &self.spool.new, &name, cfg) {
                self.schedule(at);
                return None;
            }
            self.forget(&key);
            let claimed = spool::move_to(&self.spool.new, &self.spool.cur, &name);
            if claimed.is_ok() {
                self.spool_head.remove(&name);
            }
            match claimed {
                Ok(true) => {
                    self.delivery(&[("event", "claim"), ("task", name.trim_end_matches(".json"))]);
                    return Some((name, false));
                }
                Ok(false) => continue,
                Err(e) => {
                    tracing::warn!(peer = %self.name, error = %e, "claim failed");
                    self.schedule(now_ms() + 1000);
                    return None;
                }
            }
        }
    }

    /// The task `next_task` would take, without claiming it.
    pub(super) fn peek_task(&mut self) -> Option<String> {
        if let Some(n) = spool::list(&self.spool.cur).ok()?.into_iter().find(|n| self.gate.as_ref().is_none_or(|g| &g.task != n)) {
            return Some(n);
        }
        self.relist_if_needed(false).ok()?;
        // A late event can name a task already claimed: never wait for it.
        while let Some(n) = self.spool_head.first().cloned() {
            if self.spool.new.join(&n).exists() {
                return Some(n);
            }
            self.spool_head.remove(&n);
        }
        None
    }

    pub(super) fn judge(&mut self, name: &str, cfg: &Config) -> Option<Task> {
        let lim = Limits { max_bytes: cfg.max_bytes, ..Limits::default() };
        let stem = name.strip_suffix(".json").unwrap_or(name);
        match spool::read_checked(&self.spool.cur.join(name), &lim).and_then(|b| parse_task(&b, stem)) {
            Ok(t) => Some(t),
            Err(r) => {
                let why = r.to_string();
                self.settle(name, Settle::Failed { reason: why.clone() });
                self.delivery(&[("event", "deliver"), ("file", name), ("outcome", "rejected"), ("error", &why)]);
                None
            }
        }
    }

    pub(super) async fn deliver_tasks(&mut self, cfg: &Config) {
        while !self.sh.stopping() && !self.st.stopped() && self.gate.is_none() {
            if self.profile.is_none() || !self.queue_usable() {
                return;
            }
            // An ephemeral worker gets exactly one task per session.
            if self.ephemeral() && self.session.as_ref().is_some_and(|s| s.task.is_some()) {
                return;
            }
            if self.session.is_none() && !self.may_wake(cfg) {
                return;
            }
            // One task per turn: a task waits in the queue, unclaimed, while
            // the agent works, shows a dialog or holds someone's draft.
            if self.session.is_some() {
                let Some(head) = self.peek_task() else { return };
                let state = self.turn().await;
                let ours = state == TurnState::Draft && self.spool.cur.join(&head).exists() && self.draft_is_ours(&head, cfg);
                if state != TurnState::Ready && !ours {
                    self.wait_for_turn(&head, state);
                    return;
                }
            }
            let Some((name, recovered)) = self.next_task(cfg) else { return };
            let Some(task) = self.judge(&name, cfg) else { continue };
            let mut woke = Woke::Already;
            if self.session.is_none() {
                match self.wake(cfg, &task).await {
                    Ok(mode) => woke = Woke::Now(mode),
                    Err(why) => {
                        self.requeue(&name);
                        self.delivery(&[("event", "deliver"), ("task", &task.id), ("outcome", "wake-failed"), ("error", &why)]);
                        return;
                    }
                }
            }
            // A retried paste may have landed late: check the input first too.
            let check_input = (recovered || self.attempts.contains_key(&name)) && woke == Woke::Already;
            if !self.deliver_one(cfg, &name, &task, woke, check_input).await {
                return;
            }
        }
    }

    /// Pastes one claimed task. Returns false when the loop should pause.
    pub(super) async fn deliver_one(&mut self, cfg: &Config, name: &str, task: &Task, woke: Woke, recovered: bool) -> bool {
        let Some(rt) = self.runtime.clone() else { return false };
        let first = self.session.as_ref().is_some_and(|s| s.delivered == 0);
        let fresh = self.session.as_ref().is_some_and(|s| s.mode == WakeMode::Fresh);
        let prompt = if first && fresh { self.profile.as_ref().and_then(|p| p.initial_prompt.clone()) } else { None };
        let text = envelope_as(self.profile.as_ref().map(|p| p.envelope).unwrap_or_default(), task, prompt.as_deref());
        let waited = self.end_wait();
        // A retry or a recovered task pastes again only when the runtime's
        // record proves the task did not arrive.
        if recovered && rt.recorded(&text) == Some(true) {
            self.delivery(&[("event", "deliver"), ("task", &task.id), ("outcome", "delivered"), ("woke", woke.as_str()), ("confirm", "already-recorded")]);
            self.finish_task(name, "delivered");
            return true;
        }
        let cur = Current { id: task.id.clone(), from: task.from.clone(), reply_to: task.reply_to.clone(), topic: task.topic.clone() };
        let _ = self.st.set_current(Some(&cur));
        let queued_ms = std::fs::symlink_metadata(self.spool.cur.join(name)).and_then(|m| m.modified()).map(crate::daemon::state::ms).unwrap_or(0);
        let act0 = self.activity_ms();
        // The task's turn can end before the confirmation is seen (a fast
        // model): a turn end is ours when it comes after the paste began.
        let pasted_at = now_ms();
        let result = deliver(&self.tmux, rt.as_ref(), &text, recovered).await;
        let now = now_ms();
        let attempt = self.attempts.get(name).copied().unwrap_or(0) + 1;
        let latency = now.saturating_sub(queued_ms).to_string();
        let (attempt_s, bytes_s) = (attempt.to_string(), task.text.len().to_string());
        let (paste_s, confirm_s) = match &result {
            Ok(t) => (t.paste_ms.to_string(), t.total_ms.to_string()),
            Err(_) => (String::new(), String::new()),
        };
        match result {
            Ok(_) => {
                let waited_ms = waited.map(|w| w.to_string());
                let mut line = vec![
                    ("event", "deliver"), ("task", task.id.as_str()), ("from", task.from.as_str()), ("outcome", "delivered"),
                    ("woke", woke.as_str()), ("attempt", &attempt_s), ("bytes", &bytes_s),
                    ("paste_ms", &paste_s), ("confirm_ms", &confirm_s), ("latency_ms", &latency),
                ];
                if let Some(w) = &waited_ms {
                    line.push(("waited_ms", w));
                }
                self.delivery(&line);
                if let Some(s) = self.session.as_mut() {
                    s.delivered += 1;
                    s.last_delivery_ms = Some(pasted_at);
                    if s.task.is_none() && self.profile.as_ref().is_some_and(|p| p.wake_policy == WakePolicy::Ephemeral) {
                        s.task = Some(task.id.clone());
                    }
                    let _ = self.st.set_session(Some(s));
                }
                // The first task of a new session must show activity first.
                if first && rt.has_activity() {
                    let deadline_ms = now + cfg.ready_gate.as_millis() as u64;
                    if self.activity_ms().is_some_and(|a| act0.is_none_or(|a0| a > a0)) {
                        self.finish_task(name, "delivered");
                    } else {
                        self.gate = Some(Gate { task: name.to_string(), deadline_ms, act0 });
                        self.schedule(now + 50);
                    }
                } else {
                    self.finish_task(name, "delivered");
                }
                true
            }
            Err(why) => {
                self.delivery(&[
                    ("event", "deliver"), ("task", &task.id), ("outcome", "unconfirmed"), ("woke", woke.as_str()),
                    ("attempt", &attempt.to_string()), ("error", &why), ("latency_ms", &latency),
                ]);
                if attempt >= lifecycle::MAX_DELIVERY_ATTEMPTS {
                    let reason = format!("undeliverable: {attempt} attempts, last: {why}");
                    self.attempts.remove(name);
                    self.settle(name, Settle::Failed { reason: reason.clone() });
                    self.delivery(&[("event", "deliver"), ("task", &task.id), ("outcome", "failed"), ("error", &reason)]);
                    true
                } else {
                    self.attempts.insert(name.to_string(), attempt);
                    self.hold_until_ms = now + lifecycle::retry_backoff_ms(attempt - 1);
                    self.schedule(self.hold_until_ms);
                    false
                }
            }
        }
    }
}
