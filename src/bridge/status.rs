//! What the bridge reports: the link to NATS, each direction's state, the
//! messages waiting to go out and those waiting to come in. The running
//! bridge keeps it in memory and writes it to `state/bridge.json` when it
//! changes, which `peerspool status` and `doctor` read (another process).
//! The queue depth and consumer lag are polled every second while they
//! move, less often (up to every 30 s) while nothing does: an idle daemon
//! with a bridge wrote that file and asked NATS twice every second,
//! 0.2 % CPU against 0.000 % without a bridge.

use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

/// How often the reporter polls while the view keeps changing.
pub const REPORT_MIN: Duration = Duration::from_secs(1);
/// ... and at most this long apart while nothing changes.
pub const REPORT_MAX: Duration = Duration::from_secs(30);

/// The reporter's next wait: back to `REPORT_MIN` after a change, else
/// twice the last, up to `REPORT_MAX`.
pub fn next_report_wait(last: Duration, changed: bool) -> Duration {
    if changed { REPORT_MIN } else { (last * 2).min(REPORT_MAX) }
}

/// One direction (or the connection as a whole).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "kebab-case")]
pub enum Link {
    Connecting,
    Connected,
    /// NATS (or the stream) did not take part: why.
    Waiting { reason: String },
}

impl Link {
    pub fn describe(&self) -> String {
        match self {
            Link::Connecting => "connecting".into(),
            Link::Connected => "connected".into(),
            Link::Waiting { reason } => format!("waiting for NATS: {reason}"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct View {
    pub host: String,
    pub url: String,
    pub stream: String,
    pub connection: Link,
    pub outbound: Link,
    pub inbound: Link,
    /// Files in `bridge/out/new/`.
    pub pending_out: usize,
    /// Messages for this host in the stream not yet landed here
    /// (consumer pending plus unacknowledged); None until first asked.
    pub lag_in: Option<u64>,
    pub pid: u32,
    pub updated_ms: u64,
}

impl View {
    /// The one line `peerspool status` prints.
    pub fn line(&self) -> String {
        let state = match (&self.connection, &self.outbound, &self.inbound) {
            (Link::Connected, Link::Waiting { .. }, _) => self.outbound.describe(),
            (Link::Connected, _, Link::Waiting { .. }) => self.inbound.describe(),
            (c, ..) => c.describe(),
        };
        let lag = self.lag_in.map(|l| l.to_string()).unwrap_or_else(|| "?".into());
        format!("bridge: host {} via {}: {state}; stream {}; pending out {}; lag in {lag}", self.host, self.url, self.stream, self.pending_out)
    }
}

/// The live view, shared by the bridge's tasks.
#[derive(Debug)]
pub struct Status {
    view: Mutex<View>,
    path: PathBuf,
    /// The view last written (without its time), to write only changes.
    written: Mutex<Option<View>>,
    /// Woken by every change, so the file follows at once.
    pub changed: tokio::sync::Notify,
}

impl Status {
    pub fn new(root: &crate::root::Root, host: &str, url: &str, stream: &str) -> Status {
        let view = View {
            host: host.into(),
            url: url.into(),
            stream: stream.into(),
            connection: Link::Connecting,
            outbound: Link::Connecting,
            inbound: Link::Connecting,
            pending_out: 0,
            lag_in: None,
            pid: std::process::id(),
            updated_ms: crate::daemon::state::now_ms(),
        };
        Status { view: Mutex::new(view), path: file(root), written: Mutex::new(None), changed: tokio::sync::Notify::new() }
    }

    fn edit(&self, f: impl FnOnce(&mut View)) {
        let mut g = self.view.lock().unwrap_or_else(|p| p.into_inner());
        let before = g.clone();
        f(&mut g);
        if *g != before {
            self.changed.notify_one();
        }
    }

    pub fn view(&self) -> View {
        self.view.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub fn set_connection(&self, l: Link) {
        self.edit(|v| v.connection = l);
    }
    pub fn set_out_ok(&self) {
        self.edit(|v| v.outbound = Link::Connected);
    }
    pub fn set_out_waiting(&self, reason: &str) {
        self.edit(|v| v.outbound = Link::Waiting { reason: one_line(reason) });
    }
    pub fn set_in_ok(&self) {
        self.edit(|v| v.inbound = Link::Connected);
    }
    pub fn set_in_waiting(&self, reason: &str) {
        self.edit(|v| v.inbound = Link::Waiting { reason: one_line(reason) });
    }
    pub fn set_pending_out(&self, n: usize) {
        self.edit(|v| v.pending_out = n);
    }
    pub fn set_lag_in(&self, n: Option<u64>) {
        self.edit(|v| v.lag_in = n);
    }

    /// Writes the view for other processes (atomic replace) when it
    /// differs from the one last written; returns whether it did.
    pub fn publish(&self) -> bool {
        let mut v = self.view();
        let mut w = self.written.lock().unwrap_or_else(|p| p.into_inner());
        if w.as_ref() == Some(&v) {
            return false;
        }
        *w = Some(v.clone());
        v.updated_ms = crate::daemon::state::now_ms();
        if let Ok(b) = serde_json::to_vec_pretty(&v) {
            let _ = crate::daemon::state::replace_file(&self.path, &b);
        }
        true
    }

    /// Marks the bridge stopped (the daemon is exiting).
    pub fn remove(&self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

fn one_line(s: &str) -> String {
    s.chars().map(|c| if c.is_control() { ' ' } else { c }).take(300).collect()
}

pub fn file(root: &crate::root::Root) -> PathBuf {
    root.state_dir().join("bridge.json")
}

/// The last view a running bridge wrote, if any.
pub fn read(root: &crate::root::Root) -> Option<View> {
    read_at(&file(root))
}

fn read_at(p: &Path) -> Option<View> {
    crate::fsx::read_bounded(p, 64 * 1024).ok().and_then(|b| serde_json::from_slice(&b).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_status_line_says_why_it_waits() {
        let d = tempfile::tempdir().unwrap();
        let r = crate::root::Root::new(d.path().join("r"));
        r.ensure().unwrap();
        let s = Status::new(&r, "h1", "nats://127.0.0.1:1", "PEERSPOOL");
        s.set_connection(Link::Connected);
        s.set_out_waiting("no responders\nline");
        s.set_pending_out(3);
        s.publish();
        let v = read(&r).unwrap();
        assert_eq!(v.pending_out, 3);
        let l = v.line();
        assert!(l.contains("waiting for NATS: no responders line") && l.contains("pending out 3") && l.contains("lag in ?"), "{l}");
        s.set_out_ok();
        s.set_lag_in(Some(0));
        assert!(s.view().line().contains(": connected; stream PEERSPOOL; pending out 3; lag in 0"), "{}", s.view().line());
        assert!(s.publish(), "changed: written");
        assert!(!s.publish(), "unchanged: not written again");
        assert_eq!(read(&r).unwrap().lag_in, Some(0));
    }

    #[test]
    fn the_reporter_slows_down_while_nothing_changes() {
        let mut w = REPORT_MIN;
        let waits: Vec<u64> = (0..7).map(|_| { w = next_report_wait(w, false); w.as_secs() }).collect();
        assert_eq!(waits, [2, 4, 8, 16, 30, 30, 30]);
        assert_eq!(next_report_wait(REPORT_MAX, true), REPORT_MIN);
    }
}
