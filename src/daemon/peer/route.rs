//! Outbox routing for one peer: what the agent wrote in `outbox/new/`
//! goes to the recipients' spools or inboxes (through `outbox`, with the
//! loop guard), then to `sent/` or `failed/`. Touches no session.

use super::*;

impl Peer {
    /// Moves aside entries of `dir` that have no UTF-8 name.
    pub(super) fn quarantine(&self, l: &Listing, dir: &std::path::Path, failed: &std::path::Path) {
        if l.strays > 0 {
            let n = spool::quarantine_unnamed(dir, failed);
            self.delivery(&[("event", "quarantine"), ("dir", &dir.display().to_string()), ("files", &n.to_string()), ("error", "bad-file-name")]);
        }
    }

    pub(super) fn route_outbox(&mut self, cfg: &Config) {
        let names = match self.outbox_head.names(&self.outbox.new) {
            Ok((n, l)) => {
                self.quarantine(&l, &self.outbox.new, &self.outbox.failed);
                n
            }
            Err(e) => {
                tracing::warn!(peer = %self.name, error = %e, "cannot list outbox");
                return;
            }
        };
        let lim = Limits { max_bytes: cfg.max_bytes, ..Limits::default() };
        let guard = crate::daemon::hops::Guard {
            max_hops: self.profile.as_ref().and_then(|p| p.max_hops).unwrap_or(cfg.max_hops),
            pair_rate: cfg.pair_rate,
            pair_window_ms: cfg.pair_window.as_millis() as u64,
        };
        let mut held = None;
        let mut pending = names.into_iter().peekable();
        while pending.peek().is_some() {
            // Consecutive settled files, in order, make one batch.
            let mut batch = vec![];
            let mut blocked = false;
            while batch.len() < ROUTE_BATCH {
                let Some(name) = pending.peek() else { break };
                let key = format!("outbox/{name}");
                if let Err(at) = self.settled(&key, &self.outbox.new, name, cfg) {
                    self.schedule(at);
                    blocked = true;
                    break;
                }
                self.forget(&key);
                batch.extend(pending.next());
            }
            // Arm before routing: an arm recorded only after the reply left
            // would be lost to a crash in between, leaving the worker to
            // the long unarmed bound.
            if !batch.is_empty() {
                self.arm();
            }
            let start = Instant::now();
            let results = outbox::route_guarded(&self.sh.root, &self.name, &batch, &lim, &guard);
            let us = start.elapsed().as_micros().to_string();
            let n = batch.len().to_string();
            let mut failed: Option<String> = None;
            // One log write for the batch.
            let mut lines: Vec<Vec<(&str, String)>> = Vec::with_capacity(results.len());
            for (name, res) in results {
                if res.as_ref().is_ok_and(|o| !matches!(o, Outcome::Held { .. })) {
                    self.outbox_head.remove(&name);
                }
                match res {
                    Ok(Outcome::Held { until_ms, why }) => {
                        self.schedule(until_ms);
                        if held.is_none() {
                            lines.push(vec![("event", "route".into()), ("file", name), ("outcome", "held".into()), ("reason", why.clone())]);
                        }
                        held = Some(why);
                    }
                    Ok(Outcome::LoopLimit { id, in_reply_to, chain, notice }) => {
                        lines.push(vec![
                            ("event", "route".into()), ("id", id), ("in_reply_to", in_reply_to.unwrap_or_default()), ("outcome", crate::daemon::hops::LOOP_LIMIT.into()), ("hops", chain.hops.to_string()),
                            ("origin", chain.origin), ("chain", chain.root), ("notice", notice),
                        ]);
                    }
                    Ok(Outcome::Routed { msg, to, id, chain }) => {
                        let (kind, dest) = match to {
                            Routed::Peer(p) => ("peer", p),
                            Routed::Inbox(a) => ("inbox", a),
                            Routed::Remote(a) => ("remote", a),
                        };
                        lines.push(vec![
                            ("event", "route".into()), ("id", id), ("to", dest), ("kind", kind.into()),
                            ("in_reply_to", msg.in_reply_to.unwrap_or_default()), ("hops", chain.hops.to_string()), ("origin", chain.origin),
                            ("bytes", msg.text.len().to_string()), ("outcome", "routed".into()), ("batch", n.clone()), ("batch_us", us.clone()),
                        ]);
                    }
                    Ok(Outcome::Rejected(why)) => {
                        lines.push(vec![("event", "route".into()), ("file", name), ("outcome", "rejected".into()), ("error", why)]);
                    }
                    Ok(Outcome::Gone) => {}
                    Err(e) => {
                        let e = e.to_string();
                        // The same failure again is not news: logged once.
                        if self.route_error.as_ref().is_none_or(|(last, _)| *last != e) {
                            lines.push(vec![("event", "route".into()), ("file", name), ("outcome", "error".into()), ("error", e.clone())]);
                        }
                        failed.get_or_insert(e);
                    }
                }
            }
            self.deliveries(&lines);
            if let Some(e) = failed {
                // Retried with backoff (1 s doubling to a minute), and said
                // in `status` until it goes through.
                let n = self.route_error.as_ref().map_or(0, |(_, n)| n + 1);
                self.st.set_held(Some(&format!("routing failed, retrying: {e}")));
                self.route_error = Some((e, n));
                self.schedule(now_ms() + (1000u64 << n.min(6)).min(60_000));
                return;
            }
            if !batch.is_empty() {
                self.route_error = None;
                self.st.set_held(held.as_deref());
            }
            if blocked {
                return;
            }
        }
        // The window ran dry with more on disk: come back at once.
        if self.outbox_head.needs_listing() {
            self.schedule(now_ms());
        }
    }
}
