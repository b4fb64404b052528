//! The NATS JetStream bridge between hosts: it owns `bridge/` under the
//! root (the outgoing queue, refused messages), `state/bridge.json`, and the
//! NATS connection. It writes into peers' spools and inboxes only through
//! the writer protocol (`inbound::land_batch`) and never routes, delivers
//! or reads outboxes: the router hands it messages by `OutQueue::enqueue`.

pub mod address;
pub mod bounce;
pub mod config;
pub mod envelope;
pub mod inbound;
pub mod outbound;
pub mod status;
pub mod stream_setup;
pub mod subject;

use crate::root::Root;
use async_nats::jetstream;
use config::{Auth, Config};
use status::{Link, Status};
use std::sync::Arc;
use std::time::Duration;

/// This daemon's host name, set once when its bridge starts: the router
/// sends `name@host` addresses through the bridge only while one runs
/// (without it, such a message is refused as before: nothing changes).
static ACTIVE_HOST: std::sync::OnceLock<String> = std::sync::OnceLock::new();

pub fn active_host() -> Option<&'static str> {
    ACTIVE_HOST.get().map(String::as_str)
}

/// The running bridge's wake-up, for the router in the same process: it
/// lives beside `ACTIVE_HOST` because the router runs in the peer loops,
/// which hold no handle on the bridge.
static ACTIVE_KICK: std::sync::OnceLock<Arc<tokio::sync::Notify>> = std::sync::OnceLock::new();

/// Wakes this process's publisher, if a bridge runs: the router calls it
/// right after queueing a message for another host, so publishing starts
/// at once rather than at the next safety re-list.
pub fn kick_active() {
    if let Some(k) = ACTIVE_KICK.get() {
        k.notify_one();
    }
}

/// Watches `bridge/out/new/` so a message queued by another process (the
/// CLI's `send name@host` outside a session) wakes the publisher at once.
/// A file counts when renamed in or closed after writing, as elsewhere in
/// the daemon; any other event, an overflow or an error also wakes it (a
/// spurious pass costs one directory listing).
fn watch_queue(dir: &std::path::Path, kick: Arc<tokio::sync::Notify>) -> notify::Result<notify::RecommendedWatcher> {
    use notify::Watcher as _;
    let mut w = notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
        let wake = match &res {
            Ok(ev) => ev.need_rescan() || crate::daemon::watch::classify(&ev.kind).is_some_and(|c| c != crate::daemon::watch::Change::Gone),
            Err(_) => true,
        };
        if wake {
            kick.notify_one();
        }
    })?;
    w.watch(dir, notify::RecursiveMode::NonRecursive)?;
    Ok(w)
}

#[derive(Debug, thiserror::Error)]
pub enum BridgeError {
    #[error("invalid {what} {name:?}: must be NAME or NAME@HOST, each matching ^[a-z0-9][a-z0-9_-]{{0,62}}$")]
    BadAddress { what: &'static str, name: String },
    #[error("invalid host name {0:?}: must match ^[a-z0-9][a-z0-9_-]{{0,62}}$")]
    BadHost(String),
    #[error("{path}: {reason}")]
    Config { path: std::path::PathBuf, reason: String },
    #[error("NATS: {0}")]
    Nats(String),
    /// A message that can never be sent as it is.
    #[error("{0}")]
    Refused(String),
    #[error("local write failed: {0}")]
    Local(String),
    #[error(transparent)]
    Fs(#[from] crate::Error),
}

impl From<BridgeError> for crate::Error {
    fn from(e: BridgeError) -> Self {
        match e {
            BridgeError::Fs(e) => e,
            e @ (BridgeError::BadAddress { .. } | BridgeError::BadHost(_)) => crate::Error::Usage(e.to_string()),
            e @ BridgeError::Config { .. } => crate::Error::Refused(e.to_string()),
            e => crate::Error::io("bridge", std::io::Error::other(e.to_string())),
        }
    }
}

/// Connection options from the configuration: authentication, TLS, and a
/// reconnect policy that never gives up (messages wait on disk meanwhile).
pub async fn connect_options(cfg: &Config, retry: bool) -> Result<async_nats::ConnectOptions, BridgeError> {
    let cfg_err = |path: &std::path::Path, e: std::io::Error| BridgeError::Config { path: path.to_path_buf(), reason: e.to_string() };
    let mut o = match &cfg.auth {
        Auth::None => async_nats::ConnectOptions::new(),
        Auth::Token(t) => async_nats::ConnectOptions::with_token(t.clone()),
        Auth::UserPassword { user, password } => async_nats::ConnectOptions::with_user_and_password(user.clone(), password.clone()),
        Auth::NKey(p) => {
            let seed = crate::fsx::read_string_bounded(p, 4096).map_err(|e| cfg_err(p, e))?;
            async_nats::ConnectOptions::with_nkey(seed.trim().to_string())
        }
        Auth::Creds(p) => async_nats::ConnectOptions::with_credentials_file(p).await.map_err(|e| cfg_err(p, e))?,
    };
    if cfg.tls.required {
        o = o.require_tls(true);
    }
    if cfg.tls.first {
        o = o.tls_first();
    }
    if let Some(ca) = &cfg.tls.ca {
        o = o.add_root_certificates(ca.clone());
    }
    if let (Some(c), Some(k)) = (&cfg.tls.cert, &cfg.tls.key) {
        o = o.add_client_certificate(c.clone(), k.clone());
    }
    if retry {
        o = o.retry_on_initial_connect();
    }
    Ok(o
        .name(format!("peerspool-{}", cfg.host))
        // Replies to this host's requests land under its own prefix, which
        // the deployment's permissions let only this host subscribe to.
        .custom_inbox_prefix(format!("_INBOX_{}", cfg.host))
        .max_reconnects(None)
        .connection_timeout(Duration::from_secs(5))
        .reconnect_delay_callback(|n| Duration::from_millis((50u64 << n.min(6)).min(2000))))
}

/// A running bridge: three tasks (publisher, consumer, status) on the
/// caller's tokio runtime.
pub struct Bridge {
    stop: tokio::sync::watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    kick: Arc<tokio::sync::Notify>,
    status: Arc<Status>,
    client: async_nats::Client,
    /// Kept alive while the bridge runs; None when the watch could not be
    /// set up (the publisher then re-lists the queue often instead).
    _watch: Option<notify::RecommendedWatcher>,
}

impl Bridge {
    /// Starts the bridge. Returns at once, also while NATS is unreachable:
    /// status then says why, and queued messages wait.
    pub async fn start(root: Root, cfg: Config, log: Arc<crate::logfmt::Log>) -> Result<Bridge, BridgeError> {
        outbound::OutQueue::of(&root).ensure(&root)?;
        let _ = ACTIVE_HOST.set(cfg.host.clone());
        let status = Arc::new(Status::new(&root, &cfg.host, &cfg.url_redacted(), &cfg.stream.name));
        status.publish();
        let st = status.clone();
        let opts = connect_options(&cfg, true).await?.event_callback(move |ev| {
            let st = st.clone();
            async move {
                match ev {
                    async_nats::Event::Connected => st.set_connection(Link::Connected),
                    async_nats::Event::Disconnected => st.set_connection(Link::Waiting { reason: "disconnected".into() }),
                    async_nats::Event::ServerError(e) => st.set_connection(Link::Waiting { reason: format!("server error: {e}") }),
                    async_nats::Event::ClientError(e) => st.set_connection(Link::Waiting { reason: format!("{e}") }),
                    _ => {}
                }
            }
        });
        let client = opts.connect(cfg.url.as_str()).await.map_err(|e| BridgeError::Nats(e.to_string()))?;
        let js = jetstream::ContextBuilder::new().timeout(Duration::from_secs(5)).build(client.clone());
        let (stop, rx) = tokio::sync::watch::channel(false);
        let kick = Arc::new(tokio::sync::Notify::new());
        let _ = ACTIVE_KICK.set(kick.clone());
        let queue = outbound::OutQueue::of(&root).new;
        let watch = match watch_queue(&queue, kick.clone()) {
            Ok(w) => Some(w),
            Err(e) => {
                tracing::warn!(dir = %queue.display(), error = %e, "cannot watch the bridge queue: re-listing it every 250 ms instead");
                None
            }
        };
        let relist = if watch.is_some() { outbound::SAFETY_RELIST } else { Duration::from_millis(250) };
        let mut tasks = vec![];
        // The stream must exist before anything is published into it.
        let (js2, settings, st2, rx2) = (js.clone(), cfg.stream.clone(), status.clone(), rx.clone());
        let (root2, host2, log2, kick2) = (root.clone(), cfg.host.clone(), log.clone(), kick.clone());
        tasks.push(tokio::spawn(async move {
            if !ensure_stream(&js2, &settings, &st2, rx2.clone()).await {
                return;
            }
            outbound::run(js2, root2, host2, settings.prefix.clone(), st2, kick2, relist, log2, rx2).await
        }));
        let icfg = inbound::InboundCfg { me: cfg.host.clone(), prefix: cfg.stream.prefix.clone(), stream: cfg.stream.name.clone(), allow: cfg.allow_hosts.clone() };
        tasks.push(tokio::spawn(inbound::run(js.clone(), root.clone(), icfg, status.clone(), log.clone(), rx.clone())));
        tasks.push(tokio::spawn(report(js, root, cfg, status.clone(), rx)));
        Ok(Bridge { stop, tasks, kick, status, client, _watch: watch })
    }

    /// Wakes the publisher now (a message was just queued in-process).
    pub fn kick(&self) {
        self.kick.notify_one();
    }

    pub fn status(&self) -> status::View {
        self.status.view()
    }

    /// Stops the tasks (an in-flight batch finishes or is redelivered
    /// later), flushes acknowledgements, and removes the status file.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        for t in self.tasks {
            let _ = tokio::time::timeout(Duration::from_secs(10), t).await;
        }
        let _ = tokio::time::timeout(Duration::from_secs(2), self.client.flush()).await;
        self.status.remove();
    }
}

/// Creates or finds the stream, retrying until it works or `stop`.
async fn ensure_stream(js: &jetstream::Context, s: &config::StreamSettings, st: &Status, mut stop: tokio::sync::watch::Receiver<bool>) -> bool {
    let mut backoff = Duration::from_millis(100);
    loop {
        match stream_setup::stream(js, s).await {
            Ok(_) => return true,
            Err(e) => st.set_out_waiting(&e.to_string()),
        }
        tokio::select! {
            _ = tokio::time::sleep(backoff) => {}
            _ = stop.changed() => return false,
        }
        backoff = (backoff * 2).min(Duration::from_secs(2));
    }
}

/// Queue depth, consumer lag, and the status file: every second while they
/// change, backing off to `status::REPORT_MAX` while they do not; any
/// change the bridge's tasks make is written at once.
async fn report(js: jetstream::Context, root: Root, cfg: Config, st: Arc<Status>, mut stop: tokio::sync::watch::Receiver<bool>) {
    let q = outbound::OutQueue::of(&root);
    let name = subject::consumer_name(&cfg.host);
    let mut wait = status::REPORT_MIN;
    loop {
        st.set_pending_out(q.pending());
        if js.client().connection_state() == async_nats::connection::State::Connected {
            st.set_connection(Link::Connected);
            let lag = async {
                let mut c: jetstream::consumer::Consumer<jetstream::consumer::pull::Config> = js.get_consumer_from_stream(&name, &cfg.stream.name).await.ok()?;
                let i = c.info().await.ok()?;
                Some(i.num_pending + i.num_ack_pending as u64)
            };
            if let Ok(l) = tokio::time::timeout(Duration::from_secs(2), lag).await {
                if l.is_some() {
                    st.set_lag_in(l);
                }
            }
        }
        wait = status::next_report_wait(wait, st.publish());
        let deadline = tokio::time::Instant::now() + wait;
        // Changes from the other tasks are written as they come; the poll
        // itself waits out `wait`.
        loop {
            tokio::select! {
                _ = tokio::time::sleep_until(deadline) => break,
                _ = st.changed.notified() => { st.publish(); }
                _ = stop.changed() => return,
            }
        }
    }
}

/// One line of `peerspool doctor`: None is a warning.
pub struct Check {
    pub ok: Option<bool>,
    pub what: &'static str,
    pub detail: String,
}

/// `doctor`'s bridge checks: configuration, connection, stream, consumer.
/// Empty when no NATS URL is configured.
pub fn doctor(root: &Root) -> Vec<Check> {
    let c = |ok, what, detail: String| Check { ok, what, detail };
    let host = match address::this_host() {
        Ok(h) => h,
        Err(e) => {
            return match Config::from_env(&root.path, "-") {
                Ok(None) => vec![],
                _ => vec![c(Some(false), "bridge host", e.to_string())],
            }
        }
    };
    let cfg = match Config::from_env(&root.path, &host) {
        Ok(Some(cfg)) => cfg,
        Ok(None) => return vec![],
        Err(e) => return vec![c(Some(false), "bridge config", e.to_string())],
    };
    let mut out = vec![c(Some(true), "bridge", format!("host {host}, {} ({:?})", cfg.url_redacted(), cfg.auth))];
    let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            out.push(c(Some(false), "nats", e.to_string()));
            return out;
        }
    };
    let probe = async {
        let client = connect_options(&cfg, false).await?.connect(cfg.url.as_str()).await.map_err(|e| BridgeError::Nats(e.to_string()))?;
        let js = jetstream::ContextBuilder::new().timeout(Duration::from_secs(5)).build(client.clone());
        let mut lines = vec![c(Some(true), "nats", format!("connected to {}", cfg.url_redacted()))];
        match js.get_stream(&cfg.stream.name).await {
            Ok(mut st) => match st.info().await {
                Ok(i) => lines.push(c(Some(true), "nats stream", format!("{}: {} messages, {} bytes, storage {:?}", cfg.stream.name, i.state.messages, i.state.bytes, i.config.storage))),
                Err(e) => lines.push(c(Some(false), "nats stream", format!("{}: {e}", cfg.stream.name))),
            },
            Err(e) => lines.push(c(None, "nats stream", format!("{}: {e} (created by the first daemon that connects, if its permissions allow)", cfg.stream.name))),
        }
        let name = subject::consumer_name(&host);
        let got: Result<jetstream::consumer::Consumer<jetstream::consumer::pull::Config>, _> = js.get_consumer_from_stream(&name, &cfg.stream.name).await;
        match got {
            Ok(mut con) => match con.info().await {
                Ok(i) => lines.push(c(Some(true), "nats consumer", format!("{name}: {} waiting, {} unacknowledged", i.num_pending, i.num_ack_pending))),
                Err(e) => lines.push(c(None, "nats consumer", format!("{name}: {e}"))),
            },
            Err(e) => lines.push(c(None, "nats consumer", format!("{name}: {e} (created when the daemon starts)"))),
        }
        Ok::<_, BridgeError>(lines)
    };
    match rt.block_on(async { tokio::time::timeout(Duration::from_secs(10), probe).await }) {
        Ok(Ok(lines)) => out.extend(lines),
        Ok(Err(e)) => out.push(c(Some(false), "nats", format!("{}: {e}", cfg.url_redacted()))),
        Err(_) => out.push(c(Some(false), "nats", format!("{}: no answer within 10 s", cfg.url_redacted()))),
    }
    if let Some(v) = status::read(root) {
        out.push(c(None, "bridge status", v.line()));
    }
    out
}
