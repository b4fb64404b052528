//! `peer rm`: removing a peer while a daemon may be serving it. One
//! `rename(2)` of `peers/<name>/` to a hidden name unregisters the peer at
//! once and whole, so the daemon never sees half a peer: its peer loop
//! notices the peer is gone, ends the session as a reap (not a death) and
//! stops, and only then is the renamed directory deleted. Deleting in place
//! raced the daemon, which re-created what was being deleted.

use crate::error::{Error, Result};
use crate::queue::spool;
use crate::root::Root;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// How long the CLI waits for a running daemon to let go of the peer
/// before it ends the session itself.
pub const DAEMON_GRACE: Duration = Duration::from_secs(10);

#[derive(Debug, Default)]
pub struct Removed {
    /// Tasks deleted with `--force` (queued and in flight).
    pub tasks: usize,
    /// The daemon let go of the peer in time (when one was running).
    pub daemon_released: Option<bool>,
}

fn queued(spool_new: &Path, spool_cur: &Path) -> usize {
    spool::depth(spool_new) + spool::depth(spool_cur)
}

fn refuse(name: &str, n: usize) -> Error {
    Error::Refused(format!(
        "peer {name:?} has {n} queued or in-flight task(s): nothing was removed; deliver them first, or `peerspool peer rm --force {name}` deletes them"
    ))
}

/// Bytes of the lifecycle log so far, so only later lines are searched.
fn log_len(root: &Root) -> u64 {
    std::fs::metadata(root.log_dir().join("lifecycle.log")).map(|m| m.len()).unwrap_or(0)
}

/// Whether the daemon logged that it let go of `name` after `from` (only
/// the lines since are read; a rotated log restarts at 0).
fn released(root: &Root, name: &str, from: u64) -> bool {
    use std::io::{Read, Seek, SeekFrom};
    let Ok(mut f) = std::fs::File::open(root.log_dir().join("lifecycle.log")) else { return false };
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    let mut text = Vec::new();
    if f.seek(SeekFrom::Start(if len < from { 0 } else { from })).is_err() || f.read_to_end(&mut text).is_err() {
        return false;
    }
    let needle = format!("peer={name} event=unregistered");
    String::from_utf8_lossy(&text).lines().any(|l| l.contains(&needle))
}

pub fn remove(root: &Root, name: &str, force: bool) -> Result<Removed> {
    let p = root.peer(name)?;
    if !root.is_peer(name) {
        return Err(Error::UnknownPeer(name.into()));
    }
    let n = queued(&p.spool_sub("new"), &p.spool_sub("cur"));
    if n > 0 && !force {
        return Err(refuse(name, n));
    }
    let daemon = crate::daemon::lock::running(root).is_some();
    let from = log_len(root);
    let hidden: PathBuf = root.peers_dir().join(format!(".removing-{name}-{}", std::process::id()));
    std::fs::rename(&p.dir, &hidden).map_err(|e| Error::io(&p.dir, e))?;
    // A task may have arrived between the count and the rename.
    let n = queued(&hidden.join("spool/new"), &hidden.join("spool/cur"));
    if n > 0 && !force {
        return match std::fs::rename(&hidden, &p.dir) {
            Ok(()) => Err(refuse(name, n)),
            Err(e) => Err(Error::io(&hidden, e)),
        };
    }
    let mut out = Removed { tasks: n, daemon_released: None };
    if daemon {
        let deadline = Instant::now() + DAEMON_GRACE;
        while !released(root, name, from) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(25));
        }
        out.daemon_released = Some(released(root, name, from));
    }
    // No daemon (or one that did not let go in time, stuck in a boot):
    // the session is ended here.
    crate::session::tmux::Tmux::new(root.tmux_socket(name)).kill_server_blocking();
    std::fs::remove_dir_all(&hidden).map_err(|e| Error::io(&hidden, e))?;
    match std::fs::remove_dir_all(root.peer_state(name)) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(Error::io(root.peer_state(name), e)),
        _ => {}
    }
    Ok(out)
}
