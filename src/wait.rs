//! `send --wait`: block until the reply to a task lands in an inbox.
//! Event-driven (notify) with the directory listing as the truth.

use crate::error::{Error, Result};
use crate::format::{parse_inbox, InboxMsg};
use crate::spool::{self, Limits};
use notify::{RecursiveMode, Watcher};
use std::path::Path;
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Finds, consumes (moves to `../cur/`) and returns the reply to `id`.
fn take_reply(new: &Path, id: &str, lim: &Limits) -> Option<InboxMsg> {
    for name in spool::list(new).ok()? {
        let path = new.join(&name);
        let Ok(bytes) = spool::read_checked(&path, lim) else { continue };
        let Ok(m) = parse_inbox(&bytes) else { continue };
        if m.in_reply_to.as_deref() == Some(id) {
            let cur = new.with_file_name("cur");
            let _ = crate::root::mkdir_private(&cur);
            let _ = spool::move_to(new, &cur, &name);
            return Some(m);
        }
    }
    None
}

/// Waits up to `timeout` for the reply to `id` in `inbox_dir/new/`.
pub fn reply(inbox_dir: &Path, id: &str, timeout: Duration) -> Result<Option<InboxMsg>> {
    let new = inbox_dir.join("new");
    crate::root::mkdir_private(&new)?;
    let (tx, rx) = mpsc::channel();
    let mut w = notify::recommended_watcher(move |ev| {
        let _ = tx.send(ev);
    })
    .map_err(|e| Error::io(&new, std::io::Error::other(e.to_string())))?;
    w.watch(&new, RecursiveMode::NonRecursive)
        .map_err(|e| Error::io(&new, std::io::Error::other(e.to_string())))?;
    let lim = Limits::default();
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(m) = take_reply(&new, id, &lim) {
            return Ok(Some(m));
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Ok(None);
        }
        // A periodic re-list covers filesystems that give no events.
        match rx.recv_timeout(left.min(Duration::from_secs(5))) {
            Ok(_) | Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => std::thread::sleep(left.min(Duration::from_millis(500))),
        }
    }
}
