//! Filesystem events as hints. The notify callback forwards into an
//! unbounded channel (a bounded one is a second place to drop events); a
//! kernel overflow or watcher error becomes `Rescan`, which makes every
//! consumer re-list its directories, the listing being the truth.

use notify::event::{AccessKind, AccessMode, EventKind, ModifyKind, RenameMode};
use notify::{RecommendedWatcher, RecursiveMode, Watcher as _};
use std::path::{Path, PathBuf};
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver, UnboundedSender};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Hint {
    /// Something changed at this path.
    Path { path: PathBuf, change: Change },
    /// Events may have been lost: re-list everything.
    Rescan(String),
}

/// What the events said about a file's writer, until the file is judged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Written {
    /// Written to and not closed since: wait for the close.
    Open,
    /// Closed after writing, or renamed in: the writer is done.
    Closed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// The writer is done with it (renamed in, or closed after writing).
    Complete,
    /// Created or its data written: on Linux a close-write follows, and
    /// the file must not be judged before it.
    Writing,
    /// Something else changed (metadata, an unknown kind of event).
    Touched,
    /// Removed or renamed away.
    Gone,
}

pub struct Watch {
    inner: RecommendedWatcher,
}

/// None for events that never mean a file arrived or left (opens and
/// reads, the reader's own listing among them).
pub fn classify(kind: &EventKind) -> Option<Change> {
    match kind {
        EventKind::Access(AccessKind::Close(AccessMode::Write)) => Some(Change::Complete),
        EventKind::Modify(ModifyKind::Name(RenameMode::To | RenameMode::Both | RenameMode::Any)) => Some(Change::Complete),
        EventKind::Modify(ModifyKind::Name(RenameMode::From)) | EventKind::Remove(_) => Some(Change::Gone),
        EventKind::Access(_) => None,
        EventKind::Create(_) | EventKind::Modify(ModifyKind::Data(_)) => Some(Change::Writing),
        _ => Some(Change::Touched),
    }
}

impl Watch {
    pub fn new() -> notify::Result<(Watch, UnboundedReceiver<Hint>)> {
        let (tx, rx) = unbounded_channel();
        let inner = notify::recommended_watcher(move |res: notify::Result<notify::Event>| forward(&tx, res))?;
        Ok((Watch { inner }, rx))
    }

    /// Watches one directory (not recursive). Errors are returned so the
    /// caller can fall back to polling that directory.
    pub fn add(&mut self, dir: &Path) -> notify::Result<()> {
        self.inner.watch(dir, RecursiveMode::NonRecursive)
    }

    pub fn remove(&mut self, dir: &Path) {
        let _ = self.inner.unwatch(dir);
    }
}

fn forward(tx: &UnboundedSender<Hint>, res: notify::Result<notify::Event>) {
    match res {
        Ok(ev) => {
            // Overflow arrives with the Rescan flag and no paths: check it
            // outside any per-path loop.
            if ev.need_rescan() {
                let _ = tx.send(Hint::Rescan("watcher overflow".into()));
                return;
            }
            let Some(change) = classify(&ev.kind) else { return };
            for path in ev.paths {
                let _ = tx.send(Hint::Path { path, change });
            }
        }
        Err(e) => {
            let _ = tx.send(Hint::Rescan(format!("watcher error: {e}")));
        }
    }
}
