//! One daemon per root: an exclusive lock on `state/daemon.lock`, held for
//! the daemon's life; its pid is written beside it for status.

use crate::error::{Error, IoContext, Result};
use crate::root::Root;
use std::fs::{File, OpenOptions, TryLockError};
use std::os::unix::fs::OpenOptionsExt;

#[derive(Debug)]
pub struct InstanceLock {
    _file: File,
}

fn open(root: &Root) -> Result<File> {
    let p = root.state_dir().join("daemon.lock");
    OpenOptions::new().read(true).write(true).create(true).truncate(false).mode(0o600).open(&p).at(&p)
}

fn pid(root: &Root) -> Option<u32> {
    crate::fsx::read_string_bounded(&root.state_dir().join("daemon.pid"), 64).ok()?.trim().parse().ok()
}

impl InstanceLock {
    pub fn acquire(root: &Root) -> Result<Self> {
        let f = open(root)?;
        match f.try_lock() {
            Ok(()) => {
                let p = root.state_dir().join("daemon.pid");
                crate::root::write_private(&p, format!("{}\n", std::process::id())).at(&p)?;
                Ok(InstanceLock { _file: f })
            }
            Err(TryLockError::WouldBlock) => Err(Error::AlreadyRunning {
                pid: pid(root).map(|p| p.to_string()).unwrap_or_else(|| "?".into()),
                root: root.path.clone(),
            }),
            Err(TryLockError::Error(e)) => Err(Error::io(root.state_dir().join("daemon.lock"), e)),
        }
    }
}

/// The running daemon's pid, or None when no daemon holds the lock.
pub fn running(root: &Root) -> Option<u32> {
    if !root.state_dir().join("daemon.lock").exists() {
        return None;
    }
    let f = open(root).ok()?;
    match f.try_lock() {
        Ok(()) => None,
        Err(_) => Some(pid(root).unwrap_or(0)),
    }
}
