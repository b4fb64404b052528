//! Where everything lives, and the permission rules that make the
//! filesystem a safe interface: only our user may write anywhere in it.

use crate::error::{Error, IoContext, Result};
use crate::queue::names;
use std::fs::{self, DirBuilder};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Resolves the root: `$PEERSPOOL_HOME`, `$XDG_STATE_HOME/peerspool`,
/// `~/.local/state/peerspool`.
pub fn default_root() -> Result<PathBuf> {
    let nonempty = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty()).map(PathBuf::from);
    if let Some(p) = nonempty("PEERSPOOL_HOME") {
        return Ok(p);
    }
    if let Some(p) = nonempty("XDG_STATE_HOME") {
        return Ok(p.join("peerspool"));
    }
    match nonempty("HOME") {
        Some(h) => Ok(h.join(".local/state/peerspool")),
        None => Err(Error::Usage("cannot find the root: set PEERSPOOL_HOME or HOME".into())),
    }
}

pub fn uid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

/// Writes a file only the owner can read (0600 when created), whatever
/// the umask: state, logs and reasons can quote message text.
/// Never through a symlink, FIFO or hard link (see `fsx::write_private`).
pub fn write_private(p: &Path, bytes: impl AsRef<[u8]>) -> std::io::Result<()> {
    crate::fsx::write_private(p, bytes.as_ref())
}

/// Creates a private directory (0700) and its missing parents.
pub fn mkdir_private(p: &Path) -> Result<()> {
    DirBuilder::new().recursive(true).mode(0o700).create(p).at(p)
}

/// Refuses a directory another user could write into or that is not ours.
pub fn check_private(p: &Path) -> Result<()> {
    let md = fs::symlink_metadata(p).at(p)?;
    if md.file_type().is_symlink() {
        let fix = format!("replace the symlink with a real directory, or point PEERSPOOL_HOME at {}", p.display());
        return Err(Error::Unsafe { path: p.into(), reason: "is a symlink".into(), fix });
    }
    if !md.is_dir() {
        return Err(Error::Unsafe { path: p.into(), reason: "is not a directory".into(), fix: "remove it".into() });
    }
    if md.uid() != uid() {
        return Err(Error::Unsafe {
            path: p.into(),
            reason: format!("owned by uid {}, not by you (uid {})", md.uid(), uid()),
            fix: format!("chown {} {}", uid(), p.display()),
        });
    }
    let mode = md.permissions().mode() & 0o7777;
    if mode & 0o022 != 0 {
        return Err(Error::Unsafe {
            path: p.into(),
            reason: format!("is group- or world-writable (mode {mode:04o})"),
            fix: format!("chmod go-w {}", p.display()),
        });
    }
    Ok(())
}

/// The root of one installation.
#[derive(Debug, Clone)]
pub struct Root {
    pub path: PathBuf,
}

/// The directories of one peer.
#[derive(Debug, Clone)]
pub struct PeerPaths {
    pub name: String,
    pub dir: PathBuf,
}

impl PeerPaths {
    pub fn profile(&self) -> PathBuf { self.dir.join("peer.json") }
    pub fn spool(&self) -> PathBuf { self.dir.join("spool") }
    pub fn spool_sub(&self, sub: &str) -> PathBuf { self.dir.join("spool").join(sub) }
    pub fn outbox(&self) -> PathBuf { self.dir.join("outbox") }
    pub fn outbox_sub(&self, sub: &str) -> PathBuf { self.dir.join("outbox").join(sub) }
}

pub const SPOOL_SUBDIRS: [&str; 5] = ["tmp", "new", "cur", "done", "failed"];
pub const OUTBOX_SUBDIRS: [&str; 4] = ["tmp", "new", "sent", "failed"];

impl Root {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Root { path: path.into() }
    }

    pub fn from_env() -> Result<Self> {
        Ok(Root::new(default_root()?))
    }

    pub fn peers_dir(&self) -> PathBuf { self.path.join("peers") }
    pub fn inbox_dir(&self) -> PathBuf { self.path.join("inbox") }
    pub fn log_dir(&self) -> PathBuf { self.path.join("log") }
    /// Daemon-private state: lock, pid, per-peer markers. Not contract.
    pub fn state_dir(&self) -> PathBuf { self.path.join("state") }
    pub fn peer_state(&self, name: &str) -> PathBuf { self.state_dir().join("peers").join(name) }

    pub fn peer(&self, name: &str) -> Result<PeerPaths> {
        names::check("peer name", name)?;
        Ok(PeerPaths { name: name.into(), dir: self.peers_dir().join(name) })
    }

    pub fn inbox(&self, address: &str) -> Result<PathBuf> {
        names::check("address", address)?;
        Ok(self.inbox_dir().join(address))
    }

    /// Creates the root skeleton (idempotent) and checks it is private.
    pub fn ensure(&self) -> Result<()> {
        mkdir_private(&self.path)?;
        check_private(&self.path)?;
        for d in [self.peers_dir(), self.inbox_dir(), self.log_dir(), self.state_dir()] {
            mkdir_private(&d)?;
            check_private(&d)?;
        }
        Ok(())
    }

    /// Checks without creating anything (status, doctor, send).
    pub fn check(&self) -> Result<()> {
        check_private(&self.path)?;
        for d in [self.peers_dir(), self.inbox_dir(), self.log_dir(), self.state_dir()] {
            if d.exists() {
                check_private(&d)?;
            }
        }
        Ok(())
    }

    pub fn is_peer(&self, name: &str) -> bool {
        names::is_valid(name)
            && fs::symlink_metadata(self.peers_dir().join(name).join("peer.json")).is_ok_and(|m| m.is_file())
    }

    /// Registered peers (those with a `peer.json`), sorted.
    pub fn peer_names(&self) -> Result<Vec<String>> {
        crate::queue::spool::names_in(&self.peers_dir(), |n| self.is_peer(n))
    }

    /// Creates a peer's directories (0700 each) and checks every one: a
    /// symlinked `spool/new` would have the daemon consume and delete files
    /// elsewhere, so each must be a real private directory. Each is checked
    /// before anything is created inside it, so creating never follows a link.
    pub fn ensure_peer_dirs(&self, p: &PeerPaths) -> Result<()> {
        let mut dirs = vec![p.dir.clone(), p.spool()];
        dirs.extend(SPOOL_SUBDIRS.iter().map(|s| p.spool_sub(s)));
        dirs.push(p.outbox());
        dirs.extend(OUTBOX_SUBDIRS.iter().map(|s| p.outbox_sub(s)));
        for d in dirs {
            if fs::symlink_metadata(&d).is_err() {
                DirBuilder::new().mode(0o700).create(&d).or_else(|e| if d.is_dir() { Ok(()) } else { Err(e) }).at(&d)?;
            }
            check_private(&d)?;
        }
        mkdir_private(&self.peer_state(&p.name))
    }

    /// Checks a peer's directories without creating any (see `ensure_peer_dirs`).
    pub fn check_peer_dirs(&self, p: &PeerPaths) -> Result<()> {
        check_private(&p.dir)?;
        check_private(&p.spool())?;
        check_private(&p.outbox())?;
        for s in SPOOL_SUBDIRS {
            check_private(&p.spool_sub(s))?;
        }
        for s in OUTBOX_SUBDIRS {
            check_private(&p.outbox_sub(s))?;
        }
        Ok(())
    }

    /// The private tmux socket of a peer. Kept short whatever the root's
    /// length (sun_path is 104 bytes on macOS): a hash of the root names it.
    pub fn tmux_socket(&self, peer: &str) -> PathBuf {
        self.tmux_socket_of(uid(), peer)
    }

    /// The socket a daemon running as `uid` uses (a test running the
    /// daemon as another user cleans up after it).
    pub fn tmux_socket_of(&self, uid: u32, peer: &str) -> PathBuf {
        let base = std::env::var_os("TMUX_TMPDIR")
            .map(PathBuf::from)
            .filter(|p| p.as_os_str().len() < 32)
            .unwrap_or_else(|| PathBuf::from("/tmp"));
        let abs = fs::canonicalize(&self.path).unwrap_or_else(|_| self.path.clone());
        base.join(format!("peerspool-{uid}"))
            .join(format!("{:08x}-{peer}", fnv1a(abs.as_os_str().as_encoded_bytes()) as u32))
    }
}

/// FNV-1a: a stable, dependency-free hash for naming sockets.
pub fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf29ce484222325u64, |h, &b| (h ^ b as u64).wrapping_mul(0x100000001b3))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn socket_path_fits_sun_path_for_long_roots() {
        let r = Root::new(format!("/tmp/{}", "r".repeat(300)));
        let s = r.tmux_socket(&"p".repeat(63));
        assert!(s.as_os_str().len() < 104, "{}", s.display());
    }

    #[test]
    fn refuses_world_writable_and_names_fix() {
        let d = tempfile::tempdir().unwrap();
        fs::set_permissions(d.path(), fs::Permissions::from_mode(0o777)).unwrap();
        let e = check_private(d.path()).unwrap_err().to_string();
        assert!(e.contains("world-writable") && e.contains("chmod go-w"), "{e}");
        fs::set_permissions(d.path(), fs::Permissions::from_mode(0o700)).unwrap();
        check_private(d.path()).unwrap();
    }

    #[test]
    fn ensure_creates_private_tree() {
        let d = tempfile::tempdir().unwrap();
        let r = Root::new(d.path().join("root"));
        r.ensure().unwrap();
        let p = r.peer("alice").unwrap();
        r.ensure_peer_dirs(&p).unwrap();
        for sub in ["spool/new", "outbox/sent"] {
            let m = fs::metadata(p.dir.join(sub)).unwrap().permissions().mode() & 0o777;
            assert_eq!(m, 0o700, "{sub}");
        }
        assert!(r.peer("../x").is_err());
    }
}
