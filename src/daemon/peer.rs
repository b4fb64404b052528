//! One peer's loop: route its outbox, supervise its session, deliver its
//! spool. Each peer runs as its own task, so a slow wake of one never
//! delays another. Decisions come from `lifecycle` and `turn`; this module
//! and its children perform them against tmux and the filesystem, one job
//! a file: `route` (outbox), `supervise` (the live session), `wake` (boot),
//! `queue` (claim, hold, paste, finish), `turns` (the agent's turn state),
//! `halt` (a queue stopped for its own safety). Here: the loop itself, its
//! shared state, profile reloads and the queue heads.

use crate::config::Config;
use crate::daemon::bookkeep::{Settle, Unsettled};
use crate::daemon::lifecycle::{self, Timers, Verdict, View, WakeError, WakeInputs};
use crate::daemon::outbox::{self, Outcome, Routed};
use crate::daemon::state::{now_ms, Current, Park, PeerState, Session, TOPICS_KEPT};
use crate::daemon::watch::Written;
use crate::logfmt::Log;
use crate::queue::format::{parse_task, Task};
use crate::queue::head::{Head, Listing};
use crate::queue::spool::{self, Limits, Queue};
use crate::registry::profile::{Profile, WakePolicy};
use crate::root::{PeerPaths, Root};
use crate::session::deliver::{deliver, envelope_as};
use crate::session::runtime::{Runtime, Screen, WakeMode};
use crate::session::tmux::{Launch, Pane, Tmux};
use crate::session::turn::TurnState;
use std::collections::{BTreeMap, HashMap};

mod queue;
mod route;
mod supervise;
mod turns;
mod wake;
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
    /// Routing that keeps failing (an unwritable `sent/` or recipient):
    /// the last error, logged once, and the failures in a row (backoff).
    route_error: Option<(String, u32)>,
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
        spool_head: Head::new(crate::queue::head::DEFAULT_CAP),
        outbox_head: Head::new(crate::queue::head::DEFAULT_CAP),
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
        route_error: None,
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
        pruned += crate::daemon::hops::prune(&self.sh.root, &self.name, cfg.done_max_age, cfg.done_keep, now);
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
                self.runtime = crate::session::runtime::for_peer(&p, &self.sh.root.peer_state(&self.name)).ok().map(Arc::from);
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
        let mtime = md.modified().map(crate::daemon::state::ms).unwrap_or(0);
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
}

fn last_lines(screen: &str, n: usize) -> String {
    let lines: Vec<&str> = screen.lines().map(str::trim_end).filter(|l| !l.trim().is_empty()).collect();
    lines[lines.len().saturating_sub(n)..].join(" | ")
}
