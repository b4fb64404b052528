//! `send --wait`: block until the reply to a task lands in an inbox, or
//! the daemon gives its verdict on the task first. Event-driven (notify)
//! with the directory listing as the truth.
//!
//! Only events that can mean "a file arrived" wake the waiter: inotify
//! also reports the waiter's own opening of the directory it lists, and
//! reacting to that turned every listing into the next wake-up (a core
//! spinning on an empty inbox).

use crate::daemon::state::PeerState;
use crate::daemon::watch::classify;
use crate::error::{Error, Result};
use crate::queue::format::{parse_inbox, InboxMsg};
use crate::queue::spool::{self, Limits};
use notify::{RecursiveMode, Watcher};
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime};

/// How a wait ended.
#[derive(Debug)]
pub enum Outcome {
    Reply(InboxMsg),
    /// The loop guard stopped the conversation this task started before a
    /// reply came back: the daemon's notice.
    Stopped(InboxMsg),
    /// The daemon moved the task to `failed/`; the `.error` line (or, for
    /// a task on another host, the text of that daemon's `task-failed` notice).
    Failed(String),
    /// The peer cannot be woken (wake failed, crash-loop, bad profile):
    /// the daemon's reason from its state. The task stays queued.
    Blocked(String),
    TimedOut,
    /// SIGINT/SIGTERM: the task stays queued, its reply will still come.
    Interrupted,
}

/// Where the daemon records its verdict on a task, so a waiter need not
/// sit out its whole timeout for a reply that cannot come.
#[derive(Debug, Clone)]
pub struct Verdicts {
    /// `peers/<peer>/spool/failed/`
    pub failed_dir: PathBuf,
    /// The task's file name in the spool (`<id>.json`).
    pub task_file: String,
    pub state: PeerState,
}

/// A block already recorded when the wait began: the content and mtime.
type BlockSnapshot = Option<(String, Option<SystemTime>)>;

impl Verdicts {
    fn block_mtime(&self) -> Option<SystemTime> {
        std::fs::metadata(self.state.dir.join("blocked")).and_then(|m| m.modified()).ok()
    }

    fn snapshot(&self) -> BlockSnapshot {
        self.state.blocked().map(|b| (b, self.block_mtime()))
    }

    /// The verdict, if the daemon has given one since `start`.
    fn check(&self, start: &BlockSnapshot) -> Option<Outcome> {
        let err = self.failed_dir.join(format!("{}.error", self.task_file));
        // `spool::fail` creates the `.error` exclusively, then writes it:
        // an empty one is still being written (its close wakes us again).
        if let Ok(reason) = std::fs::read_to_string(&err) {
            if !reason.trim().is_empty() {
                return Some(Outcome::Failed(reason.trim().to_string()));
            }
        }
        // A verdict only the operator can change ends a wait at once,
        // however old it is.
        if self.state.setup_block().is_some() {
            return self.state.blocked().map(Outcome::Blocked);
        }
        let now = self.state.blocked()?;
        match start {
            // A block that was there before is news only when rewritten
            // (the daemon retried the wake for this task and failed again),
            // or when it is not one the daemon retries by itself.
            Some((before, mtime)) if *before == now && *mtime == self.block_mtime() => {
                (!now.starts_with("wake failed")).then_some(Outcome::Blocked(now))
            }
            _ => Some(Outcome::Blocked(now)),
        }
    }
}

/// Finds, consumes (moves to `../cur/`) and returns the reply to `id`, or
/// the loop guard's notice that the conversation `id` started was stopped.
/// `seen` holds the names already read and found to be something else: an
/// inbox holding many unread replies is read once, not on every wake-up.
fn take_reply(new: &Path, id: &str, lim: &Limits, seen: &mut HashSet<String>) -> Option<Outcome> {
    for name in spool::list(new).ok()? {
        if seen.contains(&name) {
            continue;
        }
        let path = new.join(&name);
        let Ok(bytes) = spool::read_checked(&path, lim) else { continue };
        let Ok(m) = parse_inbox(&bytes) else {
            seen.insert(name);
            continue;
        };
        let stopped = m.notice.as_deref() == Some(crate::daemon::hops::LOOP_LIMIT) && m.chain.as_deref() == Some(id);
        // Another host failed the task: its daemon's verdict, sent back.
        let failed = m.notice.as_deref() == Some(crate::bridge::envelope::TASK_FAILED) && m.in_reply_to.as_deref() == Some(id);
        if stopped || m.in_reply_to.as_deref() == Some(id) {
            let cur = new.with_file_name("cur");
            let _ = crate::root::mkdir_private(&cur);
            let _ = spool::move_to(new, &cur, &name);
            return Some(match (stopped, failed) {
                (true, _) => Outcome::Stopped(m),
                (_, true) => Outcome::Failed(m.text),
                _ => Outcome::Reply(m),
            });
        }
        seen.insert(name);
    }
    None
}

/// Waits up to `timeout` for the reply to `id` in `inbox_dir/new/`.
pub fn reply(inbox_dir: &Path, id: &str, timeout: Duration) -> Result<Option<InboxMsg>> {
    match wait(inbox_dir, id, timeout, None, None)? {
        Outcome::Reply(m) => Ok(Some(m)),
        _ => Ok(None),
    }
}

enum Wake {
    Fs,
    Signal,
}

fn watch_err(dir: &Path, e: notify::Error) -> Error {
    Error::io(dir, std::io::Error::other(e.to_string()))
}

/// SIGINT/SIGTERM caught from before the task is enqueued, so that no
/// Ctrl-C leaves without saying where the task went.
pub struct Interrupt(signal_hook::iterator::Signals);

impl Interrupt {
    pub fn install() -> Result<Interrupt> {
        signal_hook::iterator::Signals::new([libc::SIGINT, libc::SIGTERM]).map(Interrupt).map_err(|e| Error::io("<signals>", e))
    }
}

/// Waits for the reply to `id`, the daemon's verdict (when `verdicts` is
/// given), the timeout, or a signal caught by `interrupt`.
pub fn wait(inbox_dir: &Path, id: &str, timeout: Duration, verdicts: Option<&Verdicts>, interrupt: Option<Interrupt>) -> Result<Outcome> {
    let new = inbox_dir.join("new");
    crate::root::mkdir_private(&new)?;
    let (tx, rx) = mpsc::channel();
    let fs_tx = tx.clone();
    let mut w = notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
        let wanted = match &res {
            Ok(ev) => ev.need_rescan() || classify(&ev.kind).is_some(),
            Err(_) => true,
        };
        if wanted {
            let _ = fs_tx.send(Wake::Fs);
        }
    })
    .map_err(|e| watch_err(&new, e))?;
    w.watch(&new, RecursiveMode::NonRecursive).map_err(|e| watch_err(&new, e))?;
    if let Some(v) = verdicts {
        // Missing directories (no daemon has run yet) are covered by the
        // periodic re-check below.
        let _ = w.watch(&v.failed_dir, RecursiveMode::NonRecursive);
        let _ = w.watch(&v.state.dir, RecursiveMode::NonRecursive);
    }
    let _signals = interrupt.map(|mut s| {
        let handle = s.0.handle();
        // The loop keeps the signal pipe open until the guard closes it: a
        // thread that ended after the first signal would leave close()
        // writing into a pipe with no reader (SIGPIPE). The thread hands
        // the signals (the pipe's read end) back instead of dropping them:
        // close() marks them closed *before* it writes its wake-up byte,
        // and a thread that saw the mark and closed the read end in that
        // gap killed `send --wait` with SIGPIPE (about 1 run in 400).
        let thread = std::thread::spawn(move || {
            for _ in s.0.forever() {
                let _ = tx.send(Wake::Signal);
            }
            s
        });
        SignalsGuard(handle, Some(thread))
    });
    let start = verdicts.map(Verdicts::snapshot).unwrap_or(None);
    let lim = Limits::default();
    let deadline = Instant::now() + timeout;
    let mut seen = HashSet::new();
    loop {
        if let Some(o) = take_reply(&new, id, &lim, &mut seen) {
            return Ok(o);
        }
        if let Some(o) = verdicts.and_then(|v| v.check(&start)) {
            return Ok(o);
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Ok(Outcome::TimedOut);
        }
        // A periodic re-list covers filesystems that give no events.
        match rx.recv_timeout(left.min(Duration::from_secs(5))) {
            Ok(Wake::Signal) => return Ok(Outcome::Interrupted),
            Ok(Wake::Fs) | Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => std::thread::sleep(left.min(Duration::from_millis(500))),
        }
    }
}

/// Unregisters the signal handlers when the wait ends: closes, then joins
/// the thread, so the read end is dropped only after close() has written.
struct SignalsGuard(signal_hook::iterator::Handle, Option<std::thread::JoinHandle<Interrupt>>);

impl Drop for SignalsGuard {
    fn drop(&mut self) {
        self.0.close();
        if let Some(t) = self.1.take() {
            drop(t.join());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unread_replies_to_others_are_read_once_and_the_reply_is_taken() {
        let d = tempfile::tempdir().unwrap();
        let new = d.path().join("new");
        crate::root::mkdir_private(&new).unwrap();
        let put = |name: &str, in_reply_to: &str| {
            let body = serde_json::json!({"v": 1, "id": name, "from": "a", "to": "ops", "in_reply_to": in_reply_to, "text": "t"});
            spool::write_atomic(&d.path().join("tmp"), &new, &format!("{name}.json"), body.to_string().as_bytes()).unwrap();
        };
        crate::root::mkdir_private(&d.path().join("tmp")).unwrap();
        for i in 0..3 {
            put(&format!("other{i}"), "someone-else");
        }
        let (lim, mut seen) = (Limits::default(), HashSet::new());
        assert!(take_reply(&new, "mine", &lim, &mut seen).is_none());
        assert_eq!(seen.len(), 3, "each unrelated reply read once");
        put("answer", "mine");
        match take_reply(&new, "mine", &lim, &mut seen) {
            Some(Outcome::Reply(m)) => assert_eq!(m.id, "answer"),
            o => panic!("{o:?}"),
        }
        assert!(d.path().join("cur/answer.json").exists(), "consumed into cur/");
        assert_eq!(spool::list(&new).unwrap().len(), 3, "the others stay unread");
    }
}
