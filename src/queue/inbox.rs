//! Inboxes of non-peer addresses (`inbox/<address>/new/`, consumed into
//! `cur/`): the `peerspool inbox` verb reads them, and the daemon prunes
//! them like `done/`, so a reply nobody waited for (a `send --wait` that
//! timed out or was interrupted) neither stays forever nor slows every
//! later wait.

use crate::error::{Error, Result};
use crate::queue::format::{parse_inbox, InboxMsg};
use crate::queue::spool::{self, Limits};
use crate::root::Root;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// One readable message in an inbox's `new/`.
#[derive(Debug, Clone)]
pub struct Entry {
    /// The file name in `new/`.
    pub file: String,
    pub received: SystemTime,
    pub msg: InboxMsg,
}

impl Entry {
    /// A selector names a message by its file stem, its id, or the task it
    /// answers (what `send` printed).
    pub fn matches(&self, sel: &str) -> bool {
        self.file.trim_end_matches(".json") == sel || self.msg.id == sel || self.msg.in_reply_to.as_deref() == Some(sel)
    }
}

/// The readable messages waiting in `inbox/<address>/new/`, oldest first.
/// Files that do not parse are skipped (the daemon wrote them; a reader
/// never judges them).
pub fn list(root: &Root, address: &str) -> Result<Vec<Entry>> {
    let new = root.inbox(address)?.join("new");
    let lim = Limits::default();
    let mut v = vec![];
    for file in spool::list(&new)? {
        let path = new.join(&file);
        let Ok(bytes) = spool::read_checked(&path, &lim) else { continue };
        let Ok(msg) = parse_inbox(&bytes) else { continue };
        let received = std::fs::symlink_metadata(&path).and_then(|m| m.modified()).unwrap_or(SystemTime::UNIX_EPOCH);
        v.push(Entry { file, received, msg });
    }
    Ok(v)
}

/// Moves a read message to `cur/` (consumed), as `send --wait` does.
pub fn consume(root: &Root, address: &str, e: &Entry) -> Result<()> {
    let dir = root.inbox(address)?;
    let cur = dir.join("cur");
    crate::root::mkdir_private(&cur)?;
    spool::move_to(&dir.join("new"), &cur, &e.file).map(|_| ())
}

pub fn remove(root: &Root, address: &str, e: &Entry) -> Result<()> {
    let p = root.inbox(address)?.join("new").join(&e.file);
    match std::fs::remove_file(&p) {
        Err(err) if err.kind() != std::io::ErrorKind::NotFound => Err(Error::io(p, err)),
        _ => Ok(()),
    }
}

/// Addresses that have an inbox directory, sorted.
pub fn addresses(root: &Root) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(root.inbox_dir())
        .map(|rd| rd.filter_map(|e| e.ok()).filter_map(|e| e.file_name().into_string().ok()).filter(|n| crate::queue::names::is_valid(n)).collect())
        .unwrap_or_default();
    v.sort();
    v
}

fn inbox_dirs(root: &Root) -> Vec<PathBuf> {
    addresses(root).iter().flat_map(|a| ["new", "cur"].map(|s| root.inbox_dir().join(a).join(s))).collect()
}

/// Prunes every inbox's `new/` and `cur/` by age and count, with the limits
/// of `done/`. Returns how many files were removed.
pub fn prune_all(root: &Root, max_age: Duration, max_count: usize, now: SystemTime) -> usize {
    inbox_dirs(root).iter().map(|d| prune_one(d, max_age, max_count, now)).sum()
}

fn prune_one(dir: &Path, max_age: Duration, max_count: usize, now: SystemTime) -> usize {
    spool::prune(dir, max_age, max_count, now).unwrap_or_else(|e| {
        tracing::warn!(dir = %dir.display(), error = %e, "inbox prune failed");
        0
    })
}
