//! One daemon per root. The lock is an `flock` on the root directory
//! itself, held for the daemon's life: a lock file can be unlinked (the
//! next daemon would then lock a fresh inode and two daemons would paste
//! every task twice), the root directory cannot be while it holds the
//! tree. `state/daemon.lock` is still locked too, for tools that look for
//! it; the pid is written beside it for status.

use crate::error::{Error, IoContext, Result};
use crate::root::Root;
use std::fs::{File, TryLockError};

#[derive(Debug)]
pub struct InstanceLock {
    _root: File,
    _file: File,
}

fn open(root: &Root) -> Result<File> {
    let p = root.state_dir().join("daemon.lock");
    crate::fsx::open_private(&p, false).at(&p)
}

fn pid(root: &Root) -> Option<u32> {
    crate::fsx::read_string_bounded(&root.state_dir().join("daemon.pid"), 64).ok()?.trim().parse().ok()
}

fn try_lock(f: &File, what: &std::path::Path, root: &Root) -> Result<()> {
    match f.try_lock() {
        Ok(()) => Ok(()),
        Err(TryLockError::WouldBlock) => Err(Error::AlreadyRunning {
            pid: pid(root).map(|p| p.to_string()).unwrap_or_else(|| "?".into()),
            root: root.path.clone(),
        }),
        Err(TryLockError::Error(e)) => Err(Error::io(what, e)),
    }
}

impl InstanceLock {
    pub fn acquire(root: &Root) -> Result<Self> {
        let dir = crate::fsx::open_dir(&root.path).at(&root.path)?;
        try_lock(&dir, &root.path, root)?;
        let f = open(root)?;
        try_lock(&f, &root.state_dir().join("daemon.lock"), root)?;
        let p = root.state_dir().join("daemon.pid");
        crate::root::write_private(&p, format!("{}\n", std::process::id())).at(&p)?;
        Ok(InstanceLock { _root: dir, _file: f })
    }
}

/// The running daemon's pid, or None when no daemon holds the lock.
pub fn running(root: &Root) -> Option<u32> {
    let f = crate::fsx::open_dir(&root.path).ok()?;
    match f.try_lock() {
        Ok(()) => None,
        Err(_) => Some(pid(root).unwrap_or(0)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unlinked_lock_file_does_not_let_a_second_instance_in() {
        let d = tempfile::tempdir().unwrap();
        let r = Root::new(d.path().join("r"));
        r.ensure().unwrap();
        let first = InstanceLock::acquire(&r).unwrap();
        assert_eq!(running(&r), Some(std::process::id()));
        std::fs::remove_file(r.state_dir().join("daemon.lock")).unwrap();
        assert!(matches!(InstanceLock::acquire(&r), Err(Error::AlreadyRunning { .. })));
        assert_eq!(running(&r), Some(std::process::id()));
        drop(first);
        assert_eq!(running(&r), None);
        InstanceLock::acquire(&r).unwrap();
    }
}
