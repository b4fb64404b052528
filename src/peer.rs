//! One peer's loop: route its outbox, supervise its session, deliver its
//! spool. Each peer runs as its own task, so a slow wake of one never
//! delays another. Decisions come from `lifecycle`; this module performs
//! them against tmux and the filesystem.

use crate::bookkeep::{Settle, Unsettled};
use crate::config::Config;
use crate::deliver::{deliver, envelope_as};
use crate::format::{parse_task, Task};
use crate::head::{Head, Listing};
use crate::lifecycle::{self, Timers, Verdict, View, WakeError, WakeInputs};
use crate::logfmt::Log;
use crate::outbox::{self, Outcome, Routed};
use crate::profile::{Profile, WakePolicy};
use crate::root::{PeerPaths, Root};
use crate::runtime::{Runtime, Screen, WakeMode};
use crate::spool::{self, Limits, Queue};
use crate::state::{now_ms, Current, Park, PeerState, Session, TOPICS_KEPT};
use crate::tmux::{Launch, Pane, Tmux};
use crate::turn::TurnState;
use crate::watch::Written;
use std::collections::{BTreeMap, HashMap};

mod turns;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant, SystemTime};
use tokio::sync::{watch, Notify};

mod halt;

/// What all peer loops share.
pub struct Shared {
    pub root: Root,
    pub cfg: RwLock<Config>,
    pub delivery_log: Log,
    pub lifecycle_log: Log,
    pub shutdown: watch::Receiver<bool>,
    /// Bounds concurrent boots (`MAX_WAKES`): a wake storm must not spend
    /// every descriptor and CPU at once.
    pub wakes: tokio::sync::Semaphore,
}

/// Boots at a time, daemon-wide.
pub const MAX_WAKES: usize = 16;

impl Shared {
    pub fn cfg(&self) -> Config {
        self.cfg.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn stopping(&self) -> bool {
        *self.shutdown.borrow()
    }
}

/// The dispatcher's handle on a running peer loop.
pub struct Handle {
    pub poke: Arc<Notify>,
    /// Names (`spool/NAME`, `outbox/NAME`) a writer has finished with.
    pub complete: Arc<Mutex<HashMap<String, Written>>>,
    /// Set when a watch could not be added: the loop polls instead.
    pub polling: Arc<std::sync::atomic::AtomicBool>,
    /// Names seen in events (`spool/NAME`, `outbox/NAME`), for the heads.
    pub hints: Arc<Mutex<Vec<String>>>,
    /// Events may have been lost: re-list the queues (`RELIST_*`).
    pub relist: Arc<std::sync::atomic::AtomicU8>,
    pub join: tokio::task::JoinHandle<()>,
    /// Resolves (or errs, if the loop ended first) once the first pass has
    /// routed the outbox and checked the session: the daemon's readiness.
    pub reconciled: Option<tokio::sync::oneshot::Receiver<()>>,
}

/// A delivery that must show activity before the task counts as done.
#[derive(Debug, Clone)]
struct Gate {
    task: String,
    deadline_ms: u64,
    act0: Option<u64>,
}

struct Peer {
    name: String,
    sh: Arc<Shared>,
    paths: PeerPaths,
    spool: Queue,
    outbox: Queue,
    st: PeerState,
    tmux: Tmux,
    profile: Option<Profile>,
    profile_stamp: Option<(SystemTime, u64)>,
    profile_error_logged: bool,
    runtime: Option<Arc<dyn Runtime>>,
    complete: Arc<Mutex<HashMap<String, Written>>>,
    polling: Arc<std::sync::atomic::AtomicBool>,
    hints: Arc<Mutex<Vec<String>>>,
    relist: Arc<std::sync::atomic::AtomicU8>,
    spool_head: Head,
    outbox_head: Head,
    attempts: HashMap<String, u32>,
    /// Claimed tasks whose move out of `cur/` failed: the queue is stopped.
    unsettled: Unsettled,
    session: Option<Session>,
    gate: Option<Gate>,
    /// The last pane seen alive and when tmux was last asked (see `pane`).
    live_pane: Option<(Pane, Instant)>,
    blocked_logged: Option<String>,
    /// No wake before this time (backoff after a failed wake or delivery).
    hold_until_ms: u64,
    next_ms: u64,
    /// When `done/` pruning and `tmp/` sweeping are next due.
    housekeep_ms: u64,
    reconciled: Option<tokio::sync::oneshot::Sender<()>>,
    /// The live session's turn as last seen (see `peer::turns`).
    turns: turns::TurnWatch,
}

/// How often (at most; the rescan interval if shorter) a peer prunes
/// `done/` and sweeps stale staging files.
const HOUSEKEEP_EVERY_MS: u64 = 600_000;
/// An idle peer loop's own timer (the periodic rescan pokes it far sooner).
const IDLE_WAKE_MS: u64 = 3_600_000;
/// `Handle::relist` values: nothing to do; list again if the directory
/// changed (periodic safety net, polling); list again (events were lost).
pub const RELIST_NONE: u8 = 0;
pub const RELIST_IF_CHANGED: u8 = 1;
pub const RELIST_ALWAYS: u8 = 2;

/// Outbox files routed per sync.
const ROUTE_BATCH: usize = 512;
/// A file in `tmp/` this old was left by a crashed writer.
const STALE_TMP: Duration = Duration::from_secs(3600);
/// How long a file seen written but not closed may stay unchanged before
/// it is judged anyway (its close event may never come).
const OPEN_WAIT_MS: u64 = 60_000;
/// How often a stopped queue tries its failed move out of `cur/` again.
const SETTLE_RETRY_MS: u64 = 2_000;

pub fn spawn(sh: Arc<Shared>, name: String) -> crate::Result<Handle> {
    let paths = sh.root.peer(&name)?;
    let poke = Arc::new(Notify::new());
    let complete = Arc::new(Mutex::new(HashMap::new()));
    let polling = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let hints = Arc::new(Mutex::new(Vec::new()));
    let relist = Arc::new(std::sync::atomic::AtomicU8::new(RELIST_NONE));
    let st = PeerState::new(&sh.root, &name);
    st.ensure()?;
    let unsettled = Unsettled::load(st.dir.join("unsettled.json"), &Queue::spool(&paths));
    let (tx_reconciled, reconciled) = tokio::sync::oneshot::channel();
    let mut p = Peer {
        tmux: Tmux::new(sh.root.tmux_socket(&name)),
        spool: Queue::spool(&paths),
        outbox: Queue::outbox(&paths),
        session: st.session(),
        st,
        name,
        paths,
        sh,
        profile: None,
        profile_stamp: None,
        profile_error_logged: false,
        runtime: None,
        complete: complete.clone(),
        polling: polling.clone(),
        hints: hints.clone(),
        relist: relist.clone(),
        spool_head: Head::new(crate::head::DEFAULT_CAP),
        outbox_head: Head::new(crate::head::DEFAULT_CAP),
        attempts: HashMap::new(),
        unsettled,
        gate: None,
        live_pane: None,
        blocked_logged: None,
        hold_until_ms: 0,
        next_ms: 0,
        housekeep_ms: 0,
        reconciled: Some(tx_reconciled),
        turns: turns::TurnWatch::default(),
    };
    let poke2 = poke.clone();
    let join = tokio::spawn(async move { p.run(poke2).await });
    Ok(Handle { poke, complete, polling, hints, relist, join, reconciled: Some(reconciled) })
}

enum Flow {
    Continue,
    Exit,
}

impl Peer {
    async fn run(&mut self, poke: Arc<Notify>) {
        let mut shutdown = self.sh.shutdown.clone();
        loop {
            if self.sh.stopping() {
                break;
            }
            if let Flow::Exit = self.step().await {
                break;
            }
            let wait = Duration::from_millis(self.next_ms.saturating_sub(now_ms()));
            tokio::select! {
                _ = poke.notified() => {}
                _ = tokio::time::sleep(wait) => {}
                _ = shutdown.changed() => {}
            }
        }
        tracing::debug!(peer = %self.name, "peer loop ended");
    }

    fn lifecycle(&self, fields: &[(&str, &str)]) {
        let mut f: Vec<(&str, &str)> = vec![("peer", &self.name)];
        f.extend_from_slice(fields);
        self.sh.lifecycle_log.write(&f);
        tracing::info!(peer = %self.name, "{}", fields.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(" "));
    }

    fn delivery(&self, fields: &[(&str, &str)]) {
        let mut f: Vec<(&str, &str)> = vec![("peer", &self.name)];
        f.extend_from_slice(fields);
        self.sh.delivery_log.write(&f);
    }

    /// Several delivery lines in one write.
    fn deliveries(&self, lines: &[Vec<(&str, String)>]) {
        let lines: Vec<Vec<(&str, &str)>> = lines
            .iter()
            .map(|l| std::iter::once(("peer", self.name.as_str())).chain(l.iter().map(|(k, v)| (*k, v.as_str()))).collect())
            .collect();
        self.sh.delivery_log.write_lines(&lines);
    }

    fn schedule(&mut self, at_ms: u64) {
        self.next_ms = self.next_ms.min(at_ms);
    }

    async fn step(&mut self) -> Flow {
        let cfg = self.sh.cfg();
        let now = now_ms();
        // No timer of its own when idle: events and the dispatcher's
        // periodic safety net wake it; whatever needs a time schedules one.
        self.next_ms = now + IDLE_WAKE_MS;
        let polling = self.polling.load(std::sync::atomic::Ordering::Relaxed);
        if polling {
            self.schedule(now + 1000);
        }
        let periodic = self.take_hints(polling);
        if periodic && self.reconciled.is_none() {
            // The safety net's re-list is a readdir or two; a peer that is
            // still idle stops there, before housekeeping and supervision.
            self.relist_heads();
            if self.idle_and_unchanged() {
                return Flow::Continue;
            }
        }
        if !self.sh.root.is_peer(&self.name) {
            if self.session.is_some() {
                self.end_session("peer-removed", false, false).await;
            }
            self.lifecycle(&[("event", "unregistered")]);
            return Flow::Exit;
        }
        if let Err(e) = self.sh.root.check_peer_dirs(&self.paths) {
            self.refuse_dirs(e.to_string());
            return Flow::Continue;
        }
        self.dirs_ok();
        if now >= self.housekeep_ms {
            self.housekeep_ms = now + HOUSEKEEP_EVERY_MS.min(cfg.rescan.as_millis() as u64);
            self.housekeep(&cfg);
        }
        self.reload_profile();
        self.route_outbox(&cfg);
        self.supervise(&cfg).await;
        if let Some(tx) = self.reconciled.take() {
            let _ = tx.send(());
        }
        if !self.sh.stopping() {
            self.deliver_tasks(&cfg).await;
        }
        Flow::Continue
    }

    /// Keeps `done/` and `outbox/sent/` bounded by age and count, and
    /// removes what crashed writers left in `tmp/`.
    fn housekeep(&self, cfg: &Config) {
        let now = SystemTime::now();
        let mut pruned = 0;
        for dir in [&self.spool.done, &self.outbox.done] {
            match spool::prune(dir, cfg.done_max_age, cfg.done_keep, now) {
                Ok(n) => pruned += n,
                Err(e) => tracing::warn!(peer = %self.name, error = %e, "prune failed"),
            }
        }
        pruned += crate::hops::prune(&self.sh.root, &self.name, cfg.done_max_age, cfg.done_keep, now);
        let swept: usize = [&self.spool.tmp, &self.outbox.tmp].iter().map(|d| spool::sweep_tmp(d, STALE_TMP, now)).sum();
        if pruned + swept > 0 {
            self.lifecycle(&[("event", "housekeeping"), ("pruned", &pruned.to_string()), ("swept_tmp", &swept.to_string())]);
        }
    }

    /// What tells a changed profile: mtime and size.
    fn profile_on_disk(&self) -> Option<(SystemTime, u64)> {
        std::fs::symlink_metadata(self.paths.profile()).ok().map(|m| (m.modified().unwrap_or(SystemTime::UNIX_EPOCH), m.len()))
    }

    fn reload_profile(&mut self) {
        let path = self.paths.profile();
        let stamp = self.profile_on_disk();
        if stamp.is_some() && stamp == self.profile_stamp {
            return;
        }
        let first = self.profile_stamp.is_none();
        self.profile_stamp = stamp;
        match Profile::load(&path) {
            Ok(p) => {
                if let Ok(w) = p.validate() {
                    for w in w {
                        self.lifecycle(&[("event", "profile-warning"), ("warning", &w)]);
                    }
                }
                self.runtime = crate::runtime::for_peer(&p, &self.sh.root.peer_state(&self.name)).ok().map(Arc::from);
                self.profile = Some(p);
                self.profile_error_logged = false;
                if !first {
                    self.lifecycle(&[("event", "profile-reloaded")]);
                    // A changed profile may be the fix: let it be tried.
                    self.st.set_setup_block(None);
                }
            }
            Err(e) => {
                self.profile = None;
                self.runtime = None;
                if !self.profile_error_logged {
                    self.profile_error_logged = true;
                    self.lifecycle(&[("event", "profile-invalid"), ("error", &e.to_string())]);
                }
            }
        }
    }

    fn ephemeral(&self) -> bool {
        self.profile.as_ref().is_some_and(|p| p.wake_policy == WakePolicy::Ephemeral)
    }

    fn timers(&self, cfg: &Config) -> Timers {
        let p = self.profile.as_ref();
        let secs = |o: Option<f64>, d: Duration| o.map(Duration::from_secs_f64).unwrap_or(d).as_millis() as u64;
        Timers {
            idle_ms: secs(p.and_then(|p| p.idle_secs), cfg.idle),
            quiet_ms: secs(p.and_then(|p| p.quiet_secs), cfg.quiet),
            unarmed_ms: cfg.unarmed_idle.as_millis() as u64,
        }
    }

    /// Whether a file in `dir` may be judged: its writer is done (event)
    /// or it has not changed for the settle window. A file seen being
    /// written (Linux) waits for its close instead (the close event pokes
    /// the loop), bounded by `OPEN_WAIT_MS` unchanged in case that event
    /// never comes (a hard link's create has none). Otherwise returns when
    /// to look again.
    fn settled(&self, key: &str, dir: &std::path::Path, name: &str, cfg: &Config) -> Result<(), u64> {
        let mut wait_ms = cfg.settle.as_millis() as u64;
        match self.complete.lock().unwrap_or_else(|p| p.into_inner()).get(key) {
            Some(Written::Closed) => return Ok(()),
            Some(Written::Open) => wait_ms = wait_ms.max(OPEN_WAIT_MS),
            None => {}
        }
        let Ok(md) = std::fs::symlink_metadata(dir.join(name)) else { return Ok(()) };
        if !md.is_file() {
            return Ok(());
        }
        let mtime = md.modified().map(crate::state::ms).unwrap_or(0);
        let ready_at = mtime + wait_ms;
        if now_ms() >= ready_at { Ok(()) } else { Err(ready_at) }
    }

    fn forget(&self, key: &str) {
        self.complete.lock().unwrap_or_else(|p| p.into_inner()).remove(key);
    }

    /// Feeds event names to the queue heads; a rescan (or polling, when a
    /// watch is missing) makes them list their directories again.
    /// Returns true when this wake is only the periodic safety net.
    fn take_hints(&mut self, polling: bool) -> bool {
        let how = self.relist.swap(RELIST_NONE, std::sync::atomic::Ordering::Relaxed);
        if how == RELIST_ALWAYS {
            // Events were lost, a close among them perhaps: the settle
            // window decides for files still marked open.
            self.complete.lock().unwrap_or_else(|p| p.into_inner()).retain(|_, w| *w == Written::Closed);
            self.spool_head.invalidate();
            self.outbox_head.invalidate();
        } else if how == RELIST_IF_CHANGED || polling {
            self.spool_head.invalidate_if_changed(&self.spool.new);
            self.outbox_head.invalidate_if_changed(&self.outbox.new);
        }
        let hints = std::mem::take(&mut *self.hints.lock().unwrap_or_else(|p| p.into_inner()));
        let periodic = how == RELIST_IF_CHANGED && hints.is_empty() && !polling;
        for h in hints {
            match h.split_once('/') {
                Some(("spool", n)) => self.spool_head.hint(n),
                Some(("outbox", n)) => self.outbox_head.hint(n),
                _ => {}
            }
        }
        periodic
    }

    /// Nothing to do: no session, no delivery in flight, both queues known
    /// empty and the profile unchanged. The periodic safety net then costs
    /// an idle peer a few `stat`s.
    fn idle_and_unchanged(&self) -> bool {
        self.session.is_none()
            && self.gate.is_none()
            && self.spool_head.known_empty()
            && self.outbox_head.known_empty()
            && self.profile_on_disk() == self.profile_stamp
    }

    /// Lists a queue's `new/` if its head needs it, moving unnamed entries aside.
    fn relist_if_needed(&mut self, outbox: bool) -> crate::error::Result<()> {
        let (head, q) = if outbox { (&mut self.outbox_head, &self.outbox) } else { (&mut self.spool_head, &self.spool) };
        if head.needs_listing() {
            let l = head.relist(&q.new)?;
            self.quarantine(&l, &q.new, &q.failed);
        }
        Ok(())
    }

    fn relist_heads(&mut self) {
        // A failed listing leaves the head stale: the full step retries it.
        let _ = self.relist_if_needed(false);
        let _ = self.relist_if_needed(true);
    }

    /// Moves aside entries of `dir` that have no UTF-8 name.
    fn quarantine(&self, l: &Listing, dir: &std::path::Path, failed: &std::path::Path) {
        if l.strays > 0 {
            let n = spool::quarantine_unnamed(dir, failed);
            self.delivery(&[("event", "quarantine"), ("dir", &dir.display().to_string()), ("files", &n.to_string()), ("error", "bad-file-name")]);
        }
    }

    fn route_outbox(&mut self, cfg: &Config) {
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
        let guard = crate::hops::Guard {
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
            let mut failed = false;
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
                            ("event", "route".into()), ("id", id), ("in_reply_to", in_reply_to.unwrap_or_default()), ("outcome", crate::hops::LOOP_LIMIT.into()), ("hops", chain.hops.to_string()),
                            ("origin", chain.origin), ("chain", chain.root), ("notice", notice),
                        ]);
                    }
                    Ok(Outcome::Routed { msg, to, id, chain }) => {
                        let (kind, dest) = match to {
                            Routed::Peer(p) => ("peer", p),
                            Routed::Inbox(a) => ("inbox", a),
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
                        failed = true;
                        lines.push(vec![("event", "route".into()), ("file", name), ("outcome", "error".into()), ("error", e.to_string())]);
                    }
                }
            }
            self.deliveries(&lines);
            if !batch.is_empty() {
                self.st.set_held(held.as_deref());
            }
            if failed {
                self.schedule(now_ms() + 1000);
                return;
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

    /// An ephemeral worker's first outbox file arms its session's reap.
    fn arm(&mut self) {
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

    fn activity_ms(&self) -> Option<u64> {
        let rt = self.runtime.as_ref()?.activity().map(crate::state::ms);
        let te = crate::hook::turn_end_ms(&self.sh.root, &self.name);
        rt.max(te)
    }

    /// When the agent last did something, for idle decisions: the
    /// runtime's newest record entry (not a file mtime, which some runtimes
    /// bump while idle) or the turn-end hook.
    fn idle_ref_ms(&self) -> Option<u64> {
        let rt = self.runtime.as_ref()?.last_entry().map(crate::state::ms);
        rt.max(crate::hook::turn_end_ms(&self.sh.root, &self.name))
    }

    async fn supervise(&mut self, cfg: &Config) {
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
            turn_end_ms: crate::hook::turn_end_ms(&self.sh.root, &self.name),
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
            Verdict::Reap { cause, .. } if cause != "turn-end" => {
                // A turn in progress (a silent tool run too) is never idle.
                let state = self.turn().await;
                if state == TurnState::Ready {
                    // A turn seen to end just now restarts the idle count.
                    view.last_activity_ms = view.last_activity_ms.max(self.turns.ended_ms);
                    match lifecycle::supervise(&view, &self.timers(cfg), now) {
                        Verdict::Reap { cause, park } => return self.end_session(cause, false, park).await,
                        Verdict::Keep { next_ms } => return self.schedule(next_ms),
                        _ => return,
                    }
                }
                if self.stuck(now).await {
                    return;
                }
                if !self.turns.reap_deferred {
                    self.turns.reap_deferred = true;
                    self.lifecycle(&[("event", "reap-deferred"), ("cause", cause), ("state", state.as_str())]);
                }
                self.schedule(now + turns::REAP_RECHECK_MS);
            }
            Verdict::Reap { cause, park } => self.end_session(cause, false, park).await,
        }
    }

    /// The pane's state for supervision. While the pane's process is alive
    /// a signal-0 probe answers without spawning a tmux client, which every
    /// tick and every delivery would otherwise do; tmux is still asked every
    /// `PANE_RECHECK` and as soon as the process is gone.
    async fn pane(&mut self) -> Option<Pane> {
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
    async fn discard_session(&mut self) {
        self.reset_turn();
        self.tmux.kill().await;
        self.session = None;
        self.live_pane = None;
        let _ = self.st.set_session(None);
        let _ = self.st.set_current(None);
    }

    async fn end_session(&mut self, cause: &str, death: bool, park: bool) {
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

    /// Puts a claimed task back at the head of the queue. A writer may
    /// have put a new file of the same name into `new/` meanwhile: that one
    /// is never replaced; this one then stays claimed in `cur/`, which is
    /// delivered first anyway.
    fn requeue(&mut self, name: &str) {
        match spool::move_to(&self.spool.cur, &self.spool.new, name) {
            Ok(_) => self.spool_head.hint(name),
            Err(e) if spool::is_taken(&e) => self.lifecycle(&[("event", "requeue-kept"), ("task", name), ("reason", "name taken in new/")]),
            Err(e) => tracing::warn!(peer = %self.name, error = %e, "requeue failed"),
        }
    }

    fn finish_task(&mut self, name: &str, how: &'static str) {
        self.attempts.remove(name);
        if self.settle(name, Settle::Done { how: how.into() }) {
            self.delivery(&[("event", "done"), ("task", name.trim_end_matches(".json")), ("outcome", how)]);
        }
    }

    /// The next task to work on: anything already claimed (a restart left
    /// it in `cur/`) first, then the head of `new/` once settled.
    fn next_task(&mut self, cfg: &Config) -> Option<(String, bool)> {
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
    fn peek_task(&mut self) -> Option<String> {
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

    fn judge(&mut self, name: &str, cfg: &Config) -> Option<Task> {
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

    fn may_wake(&mut self, cfg: &Config) -> bool {
        let now = now_ms();
        if now < self.hold_until_ms {
            self.schedule(self.hold_until_ms);
            return false;
        }
        let reason = if self.runtime.is_none() {
            Some(match &self.profile {
                Some(p) => format!("runtime {} has no adapter in this build", p.runtime.as_str()),
                None => "peer.json is invalid".to_string(),
            })
        } else if let Some(why) = self.st.setup_block() {
            Some(self.setup_blocked(&why))
        } else if let Some(until) = lifecycle::crashloop_until(&self.st.deaths(), now, cfg.crashloop_max, cfg.crashloop_window.as_millis() as u64) {
            self.schedule(until);
            Some(format!("crash-loop: {} deaths within {}s; waking again after {}", cfg.crashloop_max, cfg.crashloop_window.as_secs(), crate::logfmt::iso8601(crate::state::from_ms(until))))
        } else {
            None
        };
        match reason {
            Some(r) => {
                if self.blocked_logged.as_deref() != Some(&r) {
                    self.lifecycle(&[("event", "wake-refused"), ("reason", &r)]);
                    self.st.set_blocked(Some(&r));
                    self.blocked_logged = Some(r);
                }
                false
            }
            None => {
                if self.blocked_logged.take().is_some() {
                    self.st.set_blocked(None);
                }
                true
            }
        }
    }

    /// What status shows for a setup block, with the way out.
    fn setup_blocked(&self, why: &str) -> String {
        format!("wake failed: {why}; fix it, then run `peerspool start {}`", self.name)
    }

    async fn deliver_tasks(&mut self, cfg: &Config) {
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
            let mut woke = "no";
            if self.session.is_none() {
                match self.wake(cfg, &task).await {
                    Ok(mode) => woke = mode.as_str(),
                    Err(why) => {
                        self.requeue(&name);
                        self.delivery(&[("event", "deliver"), ("task", &task.id), ("outcome", "wake-failed"), ("error", &why)]);
                        return;
                    }
                }
            }
            // A retried paste may have landed late: check the input first too.
            let check_input = (recovered || self.attempts.contains_key(&name)) && woke == "no";
            if !self.deliver_one(cfg, &name, &task, woke, check_input).await {
                return;
            }
        }
    }

    /// Pastes one claimed task. Returns false when the loop should pause.
    async fn deliver_one(&mut self, cfg: &Config, name: &str, task: &Task, woke: &str, recovered: bool) -> bool {
        let Some(rt) = self.runtime.clone() else { return false };
        let first = self.session.as_ref().is_some_and(|s| s.delivered == 0);
        let fresh = self.session.as_ref().is_some_and(|s| s.mode == "fresh");
        let prompt = if first && fresh { self.profile.as_ref().and_then(|p| p.initial_prompt.clone()) } else { None };
        let text = envelope_as(self.profile.as_ref().map(|p| p.envelope).unwrap_or_default(), task, prompt.as_deref());
        let waited = self.end_wait();
        // A retry or a recovered task pastes again only when the runtime's
        // record proves the task did not arrive.
        if recovered && rt.recorded(&text) == Some(true) {
            self.delivery(&[("event", "deliver"), ("task", &task.id), ("outcome", "delivered"), ("woke", woke), ("confirm", "already-recorded")]);
            self.finish_task(name, "delivered");
            return true;
        }
        let cur = Current { id: task.id.clone(), from: task.from.clone(), reply_to: task.reply_to.clone(), topic: task.topic.clone() };
        let _ = self.st.set_current(Some(&cur));
        let queued_ms = std::fs::symlink_metadata(self.spool.cur.join(name)).and_then(|m| m.modified()).map(crate::state::ms).unwrap_or(0);
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
                    ("woke", woke), ("attempt", &attempt_s), ("bytes", &bytes_s),
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
                    ("event", "deliver"), ("task", &task.id), ("outcome", "unconfirmed"), ("woke", woke),
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

    /// Starts a session and waits for its input surface.
    async fn wake(&mut self, cfg: &Config, task: &Task) -> Result<WakeMode, String> {
        let (Some(p), Some(rt)) = (self.profile.clone(), self.runtime.clone()) else {
            return Err("no valid profile".into());
        };
        let park = self.st.park();
        let (mode, cause) = lifecycle::wake_mode(&WakeInputs {
            fresh_next: self.st.fresh_next(),
            ephemeral: p.wake_policy == WakePolicy::Ephemeral,
            park: park.as_ref(),
            can_resume: rt.can_resume(),
        });
        // A missing cwd, tmux or program is a configuration error, not a
        // crash: no session, no death, said once, retried after a while.
        if let Err(why) = crate::preflight::check(&p.cwd, &rt.argv(mode), &p.env) {
            let r = format!("{}: {why}", crate::preflight::CONFIG);
            if self.st.blocked().as_deref() != Some(r.as_str()) {
                self.lifecycle(&[("event", "wake-refused"), ("task", &task.id), ("reason", &r)]);
                self.st.set_blocked(Some(&r));
            }
            self.hold_until_ms = now_ms() + crate::preflight::RETRY_MS;
            self.schedule(self.hold_until_ms);
            return Err(r);
        }
        self.st.clear_fresh_next();
        let _ = self.st.set_park(None::<&Park>);
        let sh = self.sh.clone();
        let permit = sh.wakes.acquire().await.ok();
        let started = Instant::now();
        let booted = self.boot(cfg, &p, rt.as_ref(), mode).await;
        self.st.set_booting(None);
        drop(permit);
        match booted {
            Ok(()) => {
                let ms = started.elapsed().as_millis().to_string();
                self.lifecycle(&[("event", "wake"), ("mode", mode.as_str()), ("cause", cause), ("task", &task.id), ("boot_ms", &ms)]);
                if self.blocked_logged.is_none() {
                    self.st.set_blocked(None);
                }
                Ok(mode)
            }
            // Cut short by stop, a changed profile or a reload: not the
            // program's failure, so no death and no block.
            Err(e) if self.boot_interrupt().is_some() => {
                let why = e.reason().to_string();
                self.lifecycle(&[("event", "wake-interrupted"), ("mode", mode.as_str()), ("task", &task.id), ("reason", &why), ("boot_ms", &started.elapsed().as_millis().to_string())]);
                self.end_session(&why, false, false).await;
                Err(why)
            }
            Err(WakeError::Setup(why)) => {
                let boot_ms = started.elapsed().as_millis().to_string();
                self.lifecycle(&[("event", "wake-failed"), ("mode", mode.as_str()), ("task", &task.id), ("reason", &why), ("boot_ms", &boot_ms), ("blocked", "yes")]);
                // Retrying cannot change this verdict: no death, no retry.
                self.st.set_setup_block(Some(&why));
                let shown = self.setup_blocked(&why);
                self.st.set_blocked(Some(&shown));
                self.blocked_logged = Some(shown);
                self.discard_session().await;
                Err(why)
            }
            Err(WakeError::Failed(why)) if crate::fsx::out_of_fds(&why) => {
                // The daemon's fault, not the peer's: no death, no block.
                self.lifecycle(&[("event", "wake-deferred"), ("task", &task.id), ("reason", &format!("daemon out of file descriptors: {why}"))]);
                self.end_session("daemon-fault", false, false).await;
                self.hold_until_ms = now_ms() + 1000;
                self.schedule(self.hold_until_ms);
                Err(why)
            }
            Err(WakeError::Failed(why)) => {
                self.lifecycle(&[("event", "wake-failed"), ("mode", mode.as_str()), ("task", &task.id), ("reason", &why), ("boot_ms", &started.elapsed().as_millis().to_string())]);
                // Shown by `peerspool status` until a wake succeeds.
                self.st.set_blocked(Some(&format!("wake failed: {why}")));
                // A boot that leaves no live session counts as a death, or a
                // crashing program would be woken forever.
                self.end_session(&format!("boot-failed: {why}"), true, false).await;
                let backoff = lifecycle::retry_backoff_ms(self.st.deaths().len() as u32);
                self.hold_until_ms = now_ms() + backoff;
                self.schedule(self.hold_until_ms);
                Err(why)
            }
        }
    }

    async fn boot(&mut self, cfg: &Config, p: &Profile, rt: &dyn Runtime, mode: WakeMode) -> Result<(), WakeError> {
        let argv = rt.argv(mode);
        let mut env: BTreeMap<String, String> = p.env.clone();
        let home = std::fs::canonicalize(&self.sh.root.path).unwrap_or_else(|_| self.sh.root.path.clone());
        env.insert("PEERSPOOL_HOME".into(), home.display().to_string());
        env.insert("PEERSPOOL_PEER".into(), self.name.clone());
        env.extend(rt.session_env()?);
        // An absolute path for `"$PEERSPOOL_BIN" reply`: agents run tools in
        // login shells, and /etc/profile may reset PATH (codex does).
        if let Ok(exe) = std::env::current_exe() {
            env.insert("PEERSPOOL_BIN".into(), exe.display().to_string());
        }
        self.tmux.kill().await;
        let launch = Launch { cwd: &p.cwd, argv: &argv, env, env_remove: rt.env_remove() };
        let now = now_ms();
        let sess = Session { woke_at_ms: now, mode: mode.as_str().into(), ..Default::default() };
        self.session = Some(sess.clone());
        self.live_pane = None;
        let _ = self.st.set_session(Some(&sess));
        self.tmux.start(&launch).await.map_err(|e| WakeError::Failed(format!("tmux: {e}")))?;
        let deadline = Instant::now() + cfg.boot_deadline;
        let mut gap = Duration::from_millis(10);
        let mut last_dialog = None;
        let mut answered: Option<(String, Instant)> = None;
        let mut shown = None;
        loop {
            if self.sh.stopping() {
                return Err(WakeError::Failed("daemon stopping".into()));
            }
            if let Some(why) = self.boot_interrupt() {
                return Err(WakeError::Failed(why.to_string()));
            }
            let pane = self.tmux.pane().await;
            let screen = self.tmux.capture(false).await.unwrap_or_default();
            // No answer while the server may still run (a client that could
            // not be spawned, out of descriptors): not an exit; the boot
            // deadline still bounds it.
            let unanswered = pane.is_none() && (crate::fsx::out_of_fds("") || self.tmux.server_may_run());
            if unanswered && Instant::now() < deadline {
                tokio::time::sleep(gap).await;
                continue;
            }
            if pane.as_ref().is_none_or(|p| p.dead) {
                match rt.screen(&screen) {
                    Screen::Fatal(r) => return Err(WakeError::Failed(r)),
                    Screen::Setup(r) => return Err(WakeError::Setup(r)),
                    _ => {}
                }
                let exit = Pane::exit(pane.as_ref());
                return Err(format!("program exited during boot ({exit}): {}", last_lines(&screen, 2)).into());
            }
            match rt.screen(&screen) {
                Screen::Ready => return Ok(()),
                Screen::Fatal(r) => return Err(WakeError::Failed(r)),
                Screen::Setup(r) => return Err(WakeError::Setup(r)),
                // Keys go to a dialog only once its screen has changed since
                // the last answer: a slow program still showing the dialog
                // would take a second Enter on the next one (claude's
                // bypass dialog defaults to "No, exit"). An answer that
                // changed nothing in 3 s was lost and is sent again.
                Screen::Dialog { .. } if answered.as_ref().is_some_and(|(s, at)| *s == screen && at.elapsed() < DIALOG_RESEND) => {}
                Screen::Dialog { name, keys } => {
                    if last_dialog != Some(name) {
                        self.lifecycle(&[("event", "dialog"), ("dialog", name), ("keys", &keys.join("+"))]);
                    }
                    last_dialog = Some(name);
                    for k in keys {
                        let _ = self.tmux.keys(&[k]).await;
                    }
                    answered = Some((screen.clone(), Instant::now()));
                    gap = Duration::from_millis(300);
                }
                Screen::Booting => {}
            }
            if Instant::now() >= deadline {
                return Err(format!("boot deadline {}s passed: {}", cfg.boot_deadline.as_secs(), last_lines(&screen, 2)).into());
            }
            // Elapsed time is computed by the reader: rewritten only when
            // the screen's last line changes.
            let b = crate::state::Booting {
                since_ms: now,
                deadline_secs: cfg.boot_deadline.as_secs(),
                waiting_for: match &p.ready_pattern {
                    Some(re) => format!("ready pattern `{re}`"),
                    None => format!("the {} input prompt", p.runtime.as_str()),
                },
                last_line: last_lines(&screen, 1),
            };
            if shown.as_ref() != Some(&b) {
                self.st.set_booting(Some(&b));
                shown = Some(b);
            }
            tokio::time::sleep(gap).await;
            gap = (gap * 2).min(Duration::from_millis(500));
        }
    }
}

const PANE_RECHECK: Duration = Duration::from_secs(10);
/// How long a dialog answer may show no effect before it is sent again.
const DIALOG_RESEND: Duration = Duration::from_secs(3);

impl Peer {
    /// Why a boot in progress must stop at once: an operator stop, a
    /// changed profile (it boots again with the new one), a reload.
    fn boot_interrupt(&self) -> Option<&'static str> {
        if self.st.stopped() {
            Some("operator-stop")
        } else if self.profile_on_disk() != self.profile_stamp {
            Some("profile-changed")
        } else if self.relist.load(std::sync::atomic::Ordering::Relaxed) == RELIST_ALWAYS {
            Some("reload")
        } else {
            None
        }
    }
}

fn pid_alive(pid: u32) -> bool {
    // SAFETY: signal 0 only checks that the process exists.
    pid > 0 && unsafe { libc::kill(pid as i32, 0) } == 0
}

fn last_lines(screen: &str, n: usize) -> String {
    let lines: Vec<&str> = screen.lines().map(str::trim_end).filter(|l| !l.trim().is_empty()).collect();
    lines[lines.len().saturating_sub(n)..].join(" | ")
}
