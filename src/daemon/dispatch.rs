//! `peerspool daemon`: the dispatcher. It owns the watcher, maps each
//! event to the peer it concerns, keeps one loop per registered peer, and
//! handles signals. Events are hints: at start, on overflow, on watcher
//! errors and periodically, every peer re-lists its directories.

use crate::config;
use crate::daemon::lock::InstanceLock;
use crate::daemon::peer::{self, Handle, Shared};
use crate::daemon::watch::{Change, Hint, Watch, Written};
use crate::error::{Error, Result};
use crate::logfmt::Log;
use crate::root::Root;
use std::collections::HashMap;
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, RwLock};
use std::time::Duration;
use tokio::signal::unix::{signal, SignalKind};

/// File under `state/` naming the peers polled for lack of inotify watches.
pub const WATCH_FALLBACK: &str = "watch-fallback";

/// Called once the initial reconcile is done (systemd READY=1 hook).
pub type ReadyHook = Box<dyn FnOnce() + Send>;

struct Dispatcher {
    sh: Arc<Shared>,
    watch: Watch,
    peers: HashMap<String, Handle>,
    watched: HashMap<String, Vec<PathBuf>>,
    /// Peers whose directories could not all be watched (polled instead).
    polled: std::collections::BTreeSet<String>,
    /// Peers refused for unsafe directories, with the reason last logged.
    refused: HashMap<String, String>,
}

impl Dispatcher {
    fn peer_dirs(&self, name: &str) -> Vec<PathBuf> {
        let r = &self.sh.root;
        let Ok(p) = r.peer(name) else { return vec![] };
        vec![p.dir.clone(), p.spool_sub("new"), p.outbox_sub("new"), r.peer_state(name)]
    }

    /// Registers new peers and retires removed ones.
    fn sync_peers(&mut self) {
        let names = match self.sh.root.peer_names() {
            Ok(n) => n,
            Err(e) => {
                tracing::error!(error = %e, "cannot list peers");
                return;
            }
        };
        for n in &names {
            if self.peers.contains_key(n) {
                continue;
            }
            let p = match self.sh.root.peer(n) {
                Ok(p) => p,
                Err(_) => continue,
            };
            let st = crate::daemon::state::PeerState::new(&self.sh.root, n);
            if let Err(e) = self.sh.root.ensure_peer_dirs(&p) {
                // Once per reason (this runs on every rescan), and shown by
                // `status` as the peer's block.
                let why = e.to_string();
                if self.refused.get(n) != Some(&why) {
                    tracing::error!(peer = %n, error = %e, "peer directory refused");
                    self.sh.lifecycle_log.write(&[("peer", n), ("event", "peer-refused"), ("error", &why)]);
                    if st.ensure().is_ok() {
                        st.set_blocked(Some(&format!("peer refused: {why}")));
                    }
                    self.refused.insert(n.clone(), why);
                }
                continue;
            }
            if self.refused.remove(n).is_some() {
                st.set_blocked(None);
            }
            match peer::spawn(self.sh.clone(), n.clone()) {
                Ok(h) => {
                    self.sh.lifecycle_log.write(&[("peer", n), ("event", "registered")]);
                    self.peers.insert(n.clone(), h);
                    self.watch_peer(n);
                }
                Err(e) => tracing::error!(peer = %n, error = %e, "cannot start peer loop"),
            }
        }
        let gone: Vec<String> = self.peers.keys().filter(|k| !names.contains(k)).cloned().collect();
        if gone.iter().any(|n| self.polled.remove(n)) {
            self.publish_polled();
        }
        for n in gone {
            if let Some(h) = self.peers.remove(&n) {
                h.poke.notify_one();
            }
            for d in self.watched.remove(&n).unwrap_or_default() {
                self.watch.remove(&d);
            }
        }
    }

    fn watch_peer(&mut self, name: &str) {
        let mut ok = vec![];
        let mut failed = false;
        for d in self.peer_dirs(name) {
            match self.watch.add(&d) {
                Ok(()) => ok.push(d),
                Err(e) => {
                    failed = true;
                    tracing::error!(peer = %name, dir = %d.display(), error = %e, "cannot watch; polling this peer every second (raise fs.inotify.max_user_watches)");
                    self.sh.lifecycle_log.write(&[("peer", name), ("event", "watch-failed"), ("dir", &d.display().to_string()), ("error", &e.to_string()), ("fallback", "poll")]);
                }
            }
        }
        if let Some(h) = self.peers.get(name) {
            h.polling.store(failed, Ordering::Relaxed);
            h.poke.notify_one();
        }
        self.watched.insert(name.to_string(), ok);
        let changed = if failed { self.polled.insert(name.to_string()) } else { self.polled.remove(name) };
        if changed {
            self.publish_polled();
        }
    }

    /// Waits until every peer loop has finished its first pass (outbox
    /// routed, session checked), bounded so a hung peer cannot hold
    /// readiness past a service manager's start timeout.
    async fn await_reconciled(&mut self) {
        let pending: Vec<_> = self.peers.values_mut().filter_map(|h| h.reconciled.take()).collect();
        let all = async {
            for rx in pending {
                let _ = rx.await;
            }
        };
        if tokio::time::timeout(Duration::from_secs(60), all).await.is_err() {
            tracing::warn!("initial reconcile still running after 60 s; reporting ready anyway");
        }
    }

    /// `state/watch-fallback` lists polled peers, for `doctor` and `status`.
    fn publish_polled(&self) {
        let p = self.sh.root.state_dir().join(WATCH_FALLBACK);
        if self.polled.is_empty() {
            let _ = std::fs::remove_file(&p);
        } else {
            let body: String = self.polled.iter().map(|n| format!("{n}\n")).collect();
            let _ = crate::daemon::state::replace_file(&p, body.as_bytes());
        }
    }

    /// A watched queue directory was deleted: its watch died with it.
    /// Re-create it (a missing `new/` would stop the queue) and watch again.
    fn recover_dir(&mut self, name: &str, queue: &str) {
        let Some(h) = self.peers.get(name) else { return };
        h.relist.store(peer::RELIST_ALWAYS, Ordering::Relaxed);
        let Ok(p) = self.sh.root.peer(name) else { return };
        if !self.sh.root.is_peer(name) {
            return;
        }
        let res = self.sh.root.ensure_peer_dirs(&p);
        let error = res.err().map(|e| e.to_string()).unwrap_or_default();
        self.sh.lifecycle_log.write(&[("peer", name), ("event", "watch-lost"), ("dir", &format!("{queue}/new")), ("error", &error)]);
        self.watch_peer(name);
    }

    /// Makes every peer re-list its queues (`how`: `peer::RELIST_*`).
    fn relist_all(&self, how: u8) {
        for h in self.peers.values() {
            h.relist.fetch_max(how, Ordering::Relaxed);
            h.poke.notify_one();
        }
    }

    /// Events may have been lost (`thorough`: overflow, watcher error,
    /// SIGHUP): re-add every watch and re-list every queue. The periodic
    /// safety net is cheap instead: it retries only the watches that
    /// failed and re-lists only directories that changed.
    fn rescan(&mut self, why: &str, thorough: bool) {
        tracing::debug!(reason = why, "rescan");
        if thorough {
            self.sh.lifecycle_log.write(&[("event", "rescan"), ("reason", why)]);
        }
        // Re-adding a watch is idempotent and recovers one lost to a
        // deleted and re-created directory.
        let names: Vec<String> = if thorough { self.peers.keys().cloned().collect() } else { self.polled.iter().cloned().collect() };
        for n in names {
            self.watch_peer(&n);
        }
        self.sync_peers();
        self.relist_all(if thorough { peer::RELIST_ALWAYS } else { peer::RELIST_IF_CHANGED });
    }

    fn on_path(&mut self, path: &Path, change: Change) {
        let root = &self.sh.root;
        if let Ok(rel) = path.strip_prefix(root.peers_dir()) {
            let parts: Vec<&str> = rel.components().filter_map(|c| match c {
                Component::Normal(s) => s.to_str(),
                _ => None,
            }).collect();
            match parts.as_slice() {
                [] | [_] | [_, "peer.json"] => {
                    if let [n] = parts.as_slice() {
                        // A new peer directory: watch it before peer.json lands.
                        if root.peer(n).is_ok() && path.is_dir() && !self.watched.contains_key(*n) {
                            let _ = self.watch.add(path);
                        }
                    }
                    self.sync_peers();
                    if let Some(h) = parts.first().and_then(|n| self.peers.get(*n)) {
                        h.poke.notify_one();
                    }
                }
                [n, q @ ("spool" | "outbox"), "new"] if change == Change::Gone => {
                    let (n, q) = (n.to_string(), *q);
                    self.recover_dir(&n, q);
                }
                [n, q @ ("spool" | "outbox"), "new", file] => {
                    if let Some(h) = self.peers.get(*n) {
                        let key = format!("{q}/{file}");
                        let mut written = h.complete.lock().unwrap_or_else(|p| p.into_inner());
                        match change {
                            Change::Complete => {
                                written.insert(key.clone(), Written::Closed);
                            }
                            // Only Linux reports the close that ends it.
                            Change::Writing if cfg!(target_os = "linux") => {
                                written.insert(key.clone(), Written::Open);
                            }
                            Change::Gone => {
                                written.remove(&key);
                            }
                            _ => {}
                        }
                        drop(written);
                        if change != Change::Gone {
                            h.hints.lock().unwrap_or_else(|p| p.into_inner()).push(key);
                            h.poke.notify_one();
                        }
                    }
                }
                [n, ..] => {
                    if let Some(h) = self.peers.get(*n) {
                        h.poke.notify_one();
                    }
                }
            }
        } else if let Ok(rel) = path.strip_prefix(root.state_dir().join("peers")) {
            if let Some(h) = rel.components().next().and_then(|c| c.as_os_str().to_str()).and_then(|n| self.peers.get(n)) {
                h.poke.notify_one();
            }
        }
    }
}

/// Runs the daemon until SIGTERM/SIGINT. `ready` fires (and systemd gets
/// READY=1) once every peer's first pass has routed its outbox and checked
/// its session.
pub async fn run(root: Root, ready: Option<ReadyHook>) -> Result<()> {
    root.ensure()?;
    let _lock = InstanceLock::acquire(&root)?;
    let (cfg, warnings) = config::from_env();
    for w in warnings {
        tracing::warn!("{w}");
    }
    let (tx_stop, rx_stop) = tokio::sync::watch::channel(false);
    let sh = Arc::new(Shared {
        delivery_log: Log::new(root.log_dir().join("delivery.log"), cfg.log_max_bytes, cfg.log_keep),
        lifecycle_log: Log::new(root.log_dir().join("lifecycle.log"), cfg.log_max_bytes, cfg.log_keep),
        root: root.clone(),
        cfg: RwLock::new(cfg.clone()),
        shutdown: rx_stop,
        wakes: tokio::sync::Semaphore::new(peer::MAX_WAKES),
    });
    let (mut watch, mut hints) = Watch::new().map_err(|e| Error::io(root.peers_dir(), std::io::Error::other(e.to_string())))?;
    for d in [root.peers_dir(), root.state_dir().join("peers")] {
        crate::root::mkdir_private(&d)?;
        watch.add(&d).map_err(|e| Error::io(&d, std::io::Error::other(e.to_string())))?;
    }
    let _ = std::fs::remove_file(root.state_dir().join(WATCH_FALLBACK));
    let mut d = Dispatcher { sh: sh.clone(), watch, peers: HashMap::new(), watched: HashMap::new(), polled: Default::default(), refused: HashMap::new() };
    // Installed before the first pass so a stop request during it is kept.
    let mut term = signal(SignalKind::terminate()).map_err(|e| Error::io("SIGTERM", e))?;
    let mut int = signal(SignalKind::interrupt()).map_err(|e| Error::io("SIGINT", e))?;
    let mut hup = signal(SignalKind::hangup()).map_err(|e| Error::io("SIGHUP", e))?;
    sh.lifecycle_log.write(&[("event", "daemon-start"), ("pid", &std::process::id().to_string()), ("root", &root.path.display().to_string())]);
    let bridge = start_bridge(&root, &sh).await?;
    d.sync_peers();
    d.await_reconciled().await;
    tracing::info!(peers = d.peers.len(), root = %root.path.display(), "daemon ready");
    let notifier = crate::daemon::sdnotify::global();
    notifier.notify(&format!("READY=1\nSTATUS=serving {} peers", d.peers.len()));
    if let Some(f) = ready {
        f();
    }
    let mut watchdog = tokio::time::interval(notifier.watchdog.unwrap_or(Duration::from_secs(3600)));
    let mut periodic = tokio::time::interval(cfg.rescan);
    periodic.tick().await;
    loop {
        tokio::select! {
            h = hints.recv() => match h {
                Some(Hint::Path { path, change }) => d.on_path(&path, change),
                Some(Hint::Rescan(why)) => d.rescan(&why, true),
                None => break,
            },
            _ = term.recv() => break,
            _ = int.recv() => break,
            _ = hup.recv() => {
                let (c, w) = config::from_env();
                for w in w { tracing::warn!("{w}"); }
                *sh.cfg.write().unwrap_or_else(|p| p.into_inner()) = c;
                d.rescan("SIGHUP", true);
                sh.lifecycle_log.write(&[("event", "reload"), ("signal", "SIGHUP"), ("peers", &d.peers.len().to_string())]);
            }
            _ = periodic.tick() => {
                d.rescan("periodic", false);
                prune_inboxes(&sh);
            }
            // Pinged from the dispatcher loop itself, so a wedged loop stops pinging.
            _ = watchdog.tick(), if notifier.watchdog.is_some() => notifier.notify("WATCHDOG=1"),
        }
    }
    notifier.notify("STOPPING=1");
    sh.lifecycle_log.write(&[("event", "daemon-stopping")]);
    let _ = tx_stop.send(true);
    for (n, h) in d.peers.drain() {
        if tokio::time::timeout(Duration::from_secs(10), h.join).await.is_err() {
            tracing::warn!(peer = %n, "peer loop did not finish in 10 s");
        }
    }
    if let Some(b) = bridge {
        b.shutdown().await;
    }
    sh.lifecycle_log.write(&[("event", "daemon-stop")]);
    Ok(())
}

/// The NATS bridge, when a URL is configured (else None: nothing changes).
/// Started before the first routing pass, so `name@host` messages queued
/// while the daemon was down go out. A bad host name or configuration
/// file stops the daemon with its reason; an unreachable server does not.
async fn start_bridge(root: &Root, sh: &Shared) -> Result<Option<crate::bridge::Bridge>> {
    // The host name matters only with a bridge: without one nothing changes.
    let host = match crate::bridge::address::this_host() {
        Ok(h) => h,
        Err(_) if crate::bridge::config::Config::from_env(&root.path, "-")?.is_none() => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let Some(cfg) = crate::bridge::config::Config::from_env(&root.path, &host)? else {
        return Ok(None);
    };
    let c = sh.cfg();
    let log = Arc::new(Log::new(root.log_dir().join("bridge.log"), c.log_max_bytes, c.log_keep));
    sh.lifecycle_log.write(&[("event", "bridge-start"), ("host", &host), ("url", &cfg.url_redacted()), ("stream", &cfg.stream.name)]);
    Ok(Some(crate::bridge::Bridge::start(root.clone(), cfg, log).await?))
}

/// Replies nobody collected are pruned like `done/` (age, then count).
fn prune_inboxes(sh: &Shared) {
    let (age, keep) = sh.cfg.read().map(|c| (c.done_max_age, c.done_keep)).unwrap_or_else(|p| (p.get_ref().done_max_age, p.get_ref().done_keep));
    let n = crate::queue::inbox::prune_all(&sh.root, age, keep, std::time::SystemTime::now());
    let _ = crate::queue::spool::prune(&crate::bridge::outbound::OutQueue::of(&sh.root).sent, age, keep, std::time::SystemTime::now());
    if n > 0 {
        sh.lifecycle_log.write(&[("event", "housekeeping"), ("inbox_pruned", &n.to_string())]);
    }
}

/// Builds the runtime and runs the daemon (the CLI entry point).
pub fn run_blocking(root: Root, ready: Option<ReadyHook>) -> Result<()> {
    // Before any thread exists: it edits the process environment.
    crate::daemon::sdnotify::take_from_env();
    match crate::fsx::raise_nofile_limit() {
        Ok((old, new)) if new > old => tracing::info!(old, new, "raised the soft open-files limit"),
        Ok(_) => {}
        Err(e) => tracing::warn!(error = %e, "cannot raise the open-files limit"),
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| Error::io("tokio runtime", e))?;
    rt.block_on(run(root, ready))
}
