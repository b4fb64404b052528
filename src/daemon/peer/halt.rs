//! Stopping one peer's queue, with the reason in `status` and the log,
//! when its directories cannot be trusted (a symlink swapped in) or a claimed
//! task cannot leave `cur/` (see `bookkeep`), and resuming once they can.
//! A child of `peer`, so it works on the peer loop's own state.

use super::{Peer, SETTLE_RETRY_MS};
use crate::daemon::bookkeep::Settle;
use crate::daemon::state::now_ms;

const REFUSED: &str = "peer refused: ";

impl Peer {
    /// The directories pass again (a deleted `new/` re-created, a symlink
    /// replaced): the refusal is lifted.
    pub(super) fn dirs_ok(&mut self) {
        if self.blocked_logged.as_deref().is_some_and(|b| b.starts_with(REFUSED)) {
            self.blocked_logged = None;
            self.st.set_blocked(None);
            self.lifecycle(&[("event", "peer-accepted")]);
        }
    }

    /// A queue directory was swapped for a symlink (or made writable by
    /// others) while the peer ran: nothing is listed, claimed or routed
    /// through it until it is fixed. Checked on every pass; logged once.
    pub(super) fn refuse_dirs(&mut self, why: String) {
        let why = format!("{REFUSED}{why}");
        if self.blocked_logged.as_deref() != Some(&why) {
            self.st.set_blocked(Some(&why));
            self.lifecycle(&[("event", "peer-refused"), ("error", &why)]);
            self.blocked_logged = Some(why);
        }
        self.schedule(now_ms() + SETTLE_RETRY_MS);
    }

    /// Moves a claimed task out of `cur/`; when that fails the queue stops
    /// (see `bookkeep`) with the reason in status and the log.
    pub(super) fn settle(&mut self, name: &str, s: Settle) -> bool {
        let Err(why) = self.unsettled.settle(&self.spool, name, s.clone()) else {
            self.tell_sender(name, &s);
            return true;
        };
        self.st.set_blocked(Some(&format!("queue stopped: {why}")));
        self.lifecycle(&[("event", "queue-stopped"), ("reason", &why)]);
        self.schedule(now_ms() + SETTLE_RETRY_MS);
        false
    }

    /// A task that came from another host was failed: its sender is told
    /// there, also when the move to `failed/` succeeded only on a retry.
    fn tell_sender(&mut self, name: &str, s: &Settle) {
        let Settle::Failed { reason } = s else { return };
        if let Some(told) = crate::daemon::verdict::task_failed(&self.sh.root, &self.name, name, reason) {
            self.delivery(&[("event", "verdict-sent"), ("file", name), ("to", &told), ("notice", crate::bridge::envelope::TASK_FAILED)]);
        }
    }

    /// Whether the queue may go on: nothing unsettled, or all of it could be
    /// settled now.
    pub(super) fn queue_usable(&mut self) -> bool {
        if self.unsettled.is_empty() {
            return true;
        }
        let (settled, res) = self.unsettled.retry(&self.spool);
        for (name, s) in &settled {
            let task = name.trim_end_matches(".json");
            match s {
                Settle::Done { how } => self.delivery(&[("event", "done"), ("task", task), ("outcome", how)]),
                Settle::Failed { reason } => self.delivery(&[("event", "failed"), ("task", task), ("reason", reason)]),
            }
            self.tell_sender(name, s);
        }
        if res.is_err() {
            self.schedule(now_ms() + SETTLE_RETRY_MS);
            return false;
        }
        self.lifecycle(&[("event", "queue-resumed")]);
        self.st.set_blocked(None);
        true
    }
}
