//! Agent hooks: `peerspool hook turn-end` touches `outbox/new/.turn-end`
//! (a dot-name, so never a message) to tell the daemon a turn finished.

use crate::error::{IoContext, Result};
use crate::root::Root;

pub const TURN_END: &str = ".turn-end";

pub fn turn_end(root: &Root, peer: &str) -> Result<()> {
    let p = root.peer(peer)?.outbox_sub("new").join(TURN_END);
    crate::root::write_private(&p, format!("{}\n", crate::daemon::state::now_ms())).at(&p)
}

/// When the last turn ended, per the marker's mtime.
pub fn turn_end_ms(root: &Root, peer: &str) -> Option<u64> {
    let p = root.peer(peer).ok()?.outbox_sub("new").join(TURN_END);
    std::fs::symlink_metadata(p).and_then(|m| m.modified()).ok().map(crate::daemon::state::ms)
}
