//! Opens that cannot be turned against the daemon. Anything under the root
//! can be replaced by a same-user process at any moment: a name the daemon
//! reads may be a FIFO (a blocking open hangs a worker thread for good), a
//! symlink (the daemon reads or writes wherever it points) or a hard link
//! to a file outside the root. Every open of a path the daemon did not just
//! create itself goes through here.

use std::fs::{File, Metadata, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::Path;

/// Flags for every open of an untrusted path: never follow the last
/// component, never wait for a FIFO's other end, never leak into children.
pub const SAFE_FLAGS: i32 = libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC;

fn not_regular(md: &Metadata) -> io::Error {
    let ft = md.file_type();
    let kind = if ft.is_dir() { "a directory" } else { "not a regular file" };
    io::Error::new(io::ErrorKind::InvalidInput, format!("entry is {kind}"))
}

/// Opens `path` for reading only if it is a regular file, without following
/// a symlink or blocking on a FIFO. The type is checked on the opened
/// descriptor, so a swap between a check and the open cannot fool it.
pub fn open_regular(path: &Path) -> io::Result<(File, Metadata)> {
    let f = OpenOptions::new().read(true).custom_flags(SAFE_FLAGS).open(path)?;
    let md = f.metadata()?;
    if !md.file_type().is_file() {
        return Err(not_regular(&md));
    }
    Ok((f, md))
}

/// Reads at most `max` bytes of a regular file; a longer file is an error,
/// so a reader never holds more than it asked for.
pub fn read_bounded(path: &Path, max: u64) -> io::Result<Vec<u8>> {
    let (f, md) = open_regular(path)?;
    let mut buf = Vec::with_capacity(md.len().min(max) as usize);
    f.take(max + 1).read_to_end(&mut buf)?;
    if buf.len() as u64 > max {
        return Err(io::Error::new(io::ErrorKind::InvalidData, format!("larger than {max} bytes")));
    }
    Ok(buf)
}

/// `read_bounded` as text (small state and marker files).
pub fn read_string_bounded(path: &Path, max: u64) -> io::Result<String> {
    String::from_utf8(read_bounded(path, max)?).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

/// Creates a new file (0600) that did not exist: a name taken by anything,
/// a symlink included, is `AlreadyExists`, never written through.
pub fn create_new(path: &Path) -> io::Result<File> {
    OpenOptions::new().write(true).create_new(true).mode(0o600).custom_flags(SAFE_FLAGS).open(path)
}

/// Opens a file the daemon owns for rewriting or appending (logs, markers):
/// created 0600 if missing; an existing entry must be a regular file of
/// ours with one link, or it is refused instead of written through.
pub fn open_private(path: &Path, append: bool) -> io::Result<File> {
    let mut o = OpenOptions::new();
    o.create(true).mode(0o600).custom_flags(SAFE_FLAGS);
    if append {
        o.append(true);
    } else {
        o.write(true);
    }
    let f = o.open(path)?;
    let md = f.metadata()?;
    if !md.file_type().is_file() {
        return Err(not_regular(&md));
    }
    if md.uid() != crate::root::uid() || md.nlink() != 1 {
        return Err(io::Error::new(io::ErrorKind::PermissionDenied, "not a private file of the daemon's user (owner or hard links)"));
    }
    Ok(f)
}

/// Replaces a private file's content in place (see `open_private`).
pub fn write_private(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut f = open_private(path, false)?;
    f.set_len(0)?;
    f.write_all(bytes)
}

/// Opens a directory for `fsync` or locking without following a symlink.
pub fn open_dir(path: &Path) -> io::Result<File> {
    OpenOptions::new().read(true).custom_flags(SAFE_FLAGS | libc::O_DIRECTORY).open(path)
}

/// Whether a failure (as reported, e.g. a boot's reason) came from the
/// daemon running out of descriptors: a fault of the daemon, not of the
/// peer it was waking, so it must not count as that peer's death. The
/// message is what is at hand; a probe confirms a limit still reached.
pub fn out_of_fds(reason: &str) -> bool {
    let said = [libc::EMFILE, libc::ENFILE].iter().any(|n| reason.contains(&format!("(os error {n})")));
    said || File::open("/dev/null").is_err_and(|e| matches!(e.raw_os_error(), Some(libc::EMFILE | libc::ENFILE)))
}

/// Raises the soft descriptor limit to the hard one: every live peer holds
/// a few descriptors (control client pipes, pane log), and the usual soft
/// default of 1024 runs out at a few hundred peers. Returns (old, new).
pub fn raise_nofile_limit() -> io::Result<(u64, u64)> {
    let mut l = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit writes into the struct it is given.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut l) } != 0 {
        return Err(io::Error::last_os_error());
    }
    let old = l.rlim_cur;
    // macOS refuses more than OPEN_MAX (10240, <sys/syslimits.h>; not in
    // the libc crate) for an "unlimited" hard limit.
    #[cfg(target_os = "macos")]
    let want = l.rlim_max.min(10240);
    #[cfg(not(target_os = "macos"))]
    let want = l.rlim_max;
    if want > old {
        l.rlim_cur = want;
        // SAFETY: setrlimit reads the struct it is given.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &l) } != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok((old, l.rlim_cur))
}

/// How much of a tree one activity probe may look at. A profile's glob is
/// the user's (`/usr/**/*` is valid); it is evaluated on every tick, so an
/// unbounded walk would eat the CPU and hold up shutdown.
#[derive(Debug, Clone, Copy)]
pub struct WalkBound {
    pub max_entries: usize,
    pub max_depth: usize,
    pub max_time: std::time::Duration,
}

pub const ACTIVITY_WALK: WalkBound = WalkBound { max_entries: 4096, max_depth: 16, max_time: std::time::Duration::from_millis(8) };

/// Newest mtime among the paths `pattern` (a `glob` pattern, relative to
/// `cwd` unless absolute) matches, looking at no more of the tree than
/// `b` allows; links are not followed into directories.
pub fn glob_newest(pattern: &str, cwd: &Path, b: &WalkBound) -> Option<std::time::SystemTime> {
    let full = if pattern.starts_with('/') { std::path::PathBuf::from(pattern) } else { cwd.join(pattern) };
    let is_meta = |s: &str| s.contains(['*', '?', '[']);
    let mut base = std::path::PathBuf::new();
    let mut rest: Vec<String> = vec![];
    for c in full.components() {
        let s = c.as_os_str().to_string_lossy().into_owned();
        if rest.is_empty() && !is_meta(&s) {
            base.push(c);
        } else {
            rest.push(s);
        }
    }
    if rest.is_empty() {
        return std::fs::metadata(&full).and_then(|m| m.modified()).ok();
    }
    let pat = glob::Pattern::new(&full.to_string_lossy()).ok()?;
    let opts = glob::MatchOptions { require_literal_separator: true, ..Default::default() };
    let depth = if rest.iter().any(|s| s.contains("**")) { b.max_depth } else { rest.len() };
    let start = std::time::Instant::now();
    walkdir::WalkDir::new(&base)
        .min_depth(1)
        .max_depth(depth)
        .follow_links(false)
        .into_iter()
        .take(b.max_entries)
        .take_while(|_| start.elapsed() < b.max_time)
        .filter_map(|e| e.ok())
        .filter(|e| pat.matches_path_with(e.path(), opts))
        .filter_map(|e| std::fs::metadata(e.path()).and_then(|m| m.modified()).ok())
        .max()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    fn mkfifo(p: &Path) {
        let c = std::ffi::CString::new(p.to_str().unwrap()).unwrap();
        // SAFETY: mkfifo on a path this test owns.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    }

    #[test]
    fn fifo_symlink_and_directory_are_refused_without_blocking() {
        let d = tempfile::tempdir().unwrap();
        let (fifo, link, target) = (d.path().join("f.json"), d.path().join("l.json"), d.path().join("t"));
        mkfifo(&fifo);
        std::fs::write(&target, "secret").unwrap();
        std::os::unix::fs::symlink(&target, &link).unwrap();
        let t = Instant::now();
        assert!(read_bounded(&fifo, 100).is_err());
        assert!(read_bounded(&link, 100).is_err());
        assert!(read_bounded(d.path(), 100).is_err());
        assert!(t.elapsed() < Duration::from_secs(1));
        assert!(write_private(&link, b"x").is_err());
        assert!(write_private(&fifo, b"x").is_err());
        assert!(create_new(&link).is_err());
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "secret", "nothing written through the link");
        assert!(open_dir(&link).is_err());
    }

    #[test]
    fn activity_globs_match_like_glob_and_stay_bounded() {
        let d = tempfile::tempdir().unwrap();
        let old = std::time::SystemTime::now() - Duration::from_secs(100);
        std::fs::create_dir_all(d.path().join("a/b/c")).unwrap();
        for p in ["x.log", "a/y.log", "a/b/c/z.jsonl", "a/b/w.txt"] {
            std::fs::write(d.path().join(p), "x").unwrap();
            std::fs::File::options().write(true).open(d.path().join(p)).unwrap().set_modified(old).unwrap();
        }
        let newest = std::time::SystemTime::now() - Duration::from_secs(10);
        std::fs::File::options().write(true).open(d.path().join("a/b/c/z.jsonl")).unwrap().set_modified(newest).unwrap();
        let b = ACTIVITY_WALK;
        assert_eq!(glob_newest("**/*.jsonl", d.path(), &b), Some(newest));
        assert_eq!(glob_newest("*.log", d.path(), &b), Some(old), "* does not cross /");
        assert_eq!(glob_newest("a/b/c/z.jsonl", d.path(), &b), Some(newest));
        assert_eq!(glob_newest("nothing/*", d.path(), &b), None);
        // A big tree: the walk stops at the bound, fast.
        let big = d.path().join("big");
        std::fs::create_dir(&big).unwrap();
        for i in 0..3000 {
            std::fs::write(big.join(format!("{i}.f")), "").unwrap();
        }
        // (How fast a bounded walk is, is the benchmarks' and the hostile
        // suite's business, not a timed assertion here.)
        let small = WalkBound { max_entries: 500, ..b };
        assert!(glob_newest(&format!("{}/**/nomatch", big.display()), d.path(), &small).is_none());
        assert!(glob_newest(&format!("{}/**/*", big.display()), d.path(), &small).is_some());
    }

    #[test]
    fn fd_exhaustion_is_recognised_by_errno_or_probe() {
        assert!(out_of_fds("tmux: spawn: Too many open files (os error 24)"));
        assert!(out_of_fds("x (os error 23)"));
        assert!(!out_of_fds("program exited during boot (status 3): boom"));
        let (old, new) = raise_nofile_limit().unwrap();
        assert!(new >= old);
    }

    #[test]
    fn a_fifo_named_like_a_transcript_does_not_block_the_readers() {
        let d = tempfile::tempdir().unwrap();
        let fifo = d.path().join("s.jsonl");
        mkfifo(&fifo);
        let t = Instant::now();
        assert!(crate::session::runtime::transcript::last_entry_time(&fifo).is_none());
        assert!(crate::session::runtime::transcript::codex_session_cwd(&fifo).is_none());
        assert!(t.elapsed() < Duration::from_secs(1));
    }

    #[test]
    fn reads_are_bounded_and_hard_links_are_not_rewritten() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("a");
        std::fs::write(&p, "12345").unwrap();
        assert_eq!(read_bounded(&p, 5).unwrap(), b"12345");
        assert!(read_bounded(&p, 4).is_err());
        std::fs::hard_link(&p, d.path().join("b")).unwrap();
        assert!(write_private(&p, b"x").is_err());
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "12345");
        write_private(&d.path().join("c"), b"new").unwrap();
        write_private(&d.path().join("c"), b"x").unwrap();
        assert_eq!(std::fs::read_to_string(d.path().join("c")).unwrap(), "x");
    }
}
