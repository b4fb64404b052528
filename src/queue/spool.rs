//! Maildir-style queue directories: stage in `tmp/`, rename into `new/`,
//! claim into `cur/`, finish into `done/` (or `sent/`), fail into
//! `failed/` with a `.error` sibling. Renames are the only state changes,
//! so a file is in exactly one place at every instant.

use crate::error::{Error, IoContext, Result};
use crate::queue::format::{is_message_name, safe_file_name, Reject};
use std::fs::{self, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A file name that sorts in arrival order: 20-digit UTC nanoseconds, then
/// pid and a per-process counter mixed with the clock so that names from
/// concurrent processes never collide.
pub fn unique_name() -> String {
    static SEQ: AtomicU32 = AtomicU32::new(0);
    let ns = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    let seq = SEQ.fetch_add(1, Ordering::Relaxed);
    let salt = crate::root::fnv1a(&ns.to_le_bytes()) as u32 ^ seq.rotate_left(16);
    format!("{ns:020}-{}-{seq:04}{salt:08x}.json", std::process::id())
}

pub fn fsync_dir(dir: &Path) -> Result<()> {
    crate::fsx::open_dir(dir).and_then(|f| f.sync_all()).at(dir)
}

/// Stages `bytes` as `tmp_dir/name` without syncing: the caller syncs a
/// whole batch together (`sync_staged`) before renaming any of it into place.
pub fn stage(tmp_dir: &Path, name: &str, bytes: &[u8]) -> Result<PathBuf> {
    let tmp = tmp_dir.join(name);
    let open = || OpenOptions::new().write(true).create_new(true).mode(0o600).open(&tmp);
    let mut f = match open() {
        // A stale staging file of a crashed batch: ours to replace.
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            let _ = fs::remove_file(&tmp);
            open()
        }
        r => r,
    }
    .at(&tmp)?;
    if let Err(e) = f.write_all(bytes) {
        let _ = fs::remove_file(&tmp);
        return Err(Error::io(&tmp, e));
    }
    Ok(tmp)
}

/// Most fsyncs in flight at once. Each small file's fsync waits mostly on
/// the device; several in flight let the block layer merge their writes
/// and flushes, which is where a batch's throughput comes from.
pub const SYNC_THREADS: usize = 16;

/// Makes staged files durable by syncing those files themselves (fsync per
/// file, up to `SYNC_THREADS` at once). Unlike one `syncfs` of the whole
/// filesystem, the cost does not grow with other processes' dirty data: a
/// build writing gigabytes beside us no longer holds every reply for
/// seconds. The files' directory entries in `tmp/` need no sync: the
/// caller renames each copy into `new/` and syncs that directory.
pub fn sync_staged(files: &[PathBuf]) -> Result<()> {
    if legacy_syncfs() {
        return syncfs_of(files);
    }
    let sync = |p: &PathBuf| crate::fsx::open_regular(p).and_then(|(f, _)| f.sync_all()).at(p);
    let threads = SYNC_THREADS.min(files.len());
    if threads <= 1 {
        return files.iter().try_for_each(sync);
    }
    let next = std::sync::atomic::AtomicUsize::new(0);
    let first_err: std::sync::Mutex<Option<Error>> = std::sync::Mutex::new(None);
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(p) = files.get(i) else { break };
                if let Err(e) = sync(p) {
                    first_err.lock().unwrap_or_else(|p| p.into_inner()).get_or_insert(e);
                    // The batch fails as a whole: no point syncing the rest.
                    next.store(files.len(), Ordering::Relaxed);
                    break;
                }
            });
        }
    });
    match first_err.into_inner().unwrap_or_else(|p| p.into_inner()) {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// `PEERSPOOL_SYNC=syncfs`: the former whole-filesystem sync, kept only so
/// that bench/run.sh can time it beside the per-file sync in the same run
/// with the same binary (listed in the man page as a comparison switch).
fn legacy_syncfs() -> bool {
    static LEGACY: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *LEGACY.get_or_init(|| std::env::var_os("PEERSPOOL_SYNC").is_some_and(|v| v == "syncfs"))
}

fn syncfs_of(files: &[PathBuf]) -> Result<()> {
    #[cfg(target_os = "linux")]
    if let Some(first) = files.first() {
        let f = crate::fsx::open_regular(first).at(first)?.0;
        use std::os::fd::AsRawFd;
        // SAFETY: syncfs on a descriptor this function owns.
        if unsafe { libc::syncfs(f.as_raw_fd()) } != 0 {
            return Err(Error::io(first, std::io::Error::last_os_error()));
        }
        return Ok(());
    }
    for p in files {
        crate::fsx::open_regular(p).and_then(|(f, _)| f.sync_all()).at(p)?;
    }
    Ok(())
}

/// Writes `bytes` durably into `new_dir/name` via `tmp_dir`: create
/// exclusively (0600), write, fsync, rename, fsync the directory.
pub fn write_atomic(tmp_dir: &Path, new_dir: &Path, name: &str, bytes: &[u8]) -> Result<PathBuf> {
    // A queue directory swapped for a link would take the task (and its
    // rename) wherever the link points; the daemon refuses such a queue, so
    // a writer must not report it delivered there.
    for d in [tmp_dir, new_dir] {
        refuse_linked_dir(d)?;
    }
    let tmp = tmp_dir.join(name);
    let dst = new_dir.join(name);
    let mut f = OpenOptions::new().write(true).create_new(true).mode(0o600).open(&tmp).at(&tmp)?;
    let res = f.write_all(bytes).and_then(|_| f.sync_all()).at(&tmp).and_then(|_| fs::rename(&tmp, &dst).at(&dst));
    if res.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    res?;
    fsync_dir(new_dir)?;
    Ok(dst)
}

/// Fails when `dir`, the queue holding it or that queue's owner (a peer's
/// directory) is a symbolic link, or not a directory: the writer's side of
/// the daemon's refusal.
fn refuse_linked_dir(dir: &Path) -> Result<()> {
    for d in dir.ancestors().take(3) {
        match fs::symlink_metadata(d) {
            Ok(md) if md.file_type().is_symlink() => {
                return Err(Error::Unsafe { path: d.into(), reason: "is a symbolic link, which peerspool never writes through".into(), fix: "replace it with a real directory (`peerspool doctor` lists what else is wrong)".into() })
            }
            Ok(md) if !md.is_dir() => {
                return Err(Error::Unsafe { path: d.into(), reason: "is not a directory".into(), fix: "remove it; the daemon recreates the queue directories".into() })
            }
            _ => {}
        }
    }
    Ok(())
}

/// Message names in a directory, sorted (the delivery order).
pub fn list(dir: &Path) -> Result<Vec<String>> {
    names_in(dir, is_message_name)
}

/// The UTF-8 names in `dir` that `keep` accepts, sorted; none when `dir`
/// does not exist yet.
pub fn names_in(dir: &Path, keep: impl Fn(&str) -> bool) -> Result<Vec<String>> {
    let rd = match fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(vec![]),
        Err(e) => return Err(Error::io(dir, e)),
    };
    let mut v: Vec<String> = rd.filter_map(|e| e.ok()).filter_map(|e| e.file_name().into_string().ok()).filter(|n| keep(n)).collect();
    v.sort_unstable();
    Ok(v)
}

/// Number of message files in a directory (for status).
pub fn depth(dir: &Path) -> usize {
    fs::read_dir(dir)
        .map(|rd| rd.filter_map(|e| e.ok()).filter(|e| e.file_name().to_str().is_some_and(is_message_name)).count())
        .unwrap_or(0)
}

/// `rename(2)` that fails with `AlreadyExists` instead of replacing `to`.
/// A rename, not a link: watchers (ours and readers') see a completed
/// `moved_to`, not a `create` they would have to let settle.
pub fn rename_noreplace(from: &Path, to: &Path) -> std::io::Result<()> {
    use std::ffi::CString;
    use std::os::unix::ffi::OsStrExt;
    let c = |p: &Path| CString::new(p.as_os_str().as_bytes()).map_err(std::io::Error::other);
    let (f, t) = (c(from)?, c(to)?);
    // SAFETY: both are valid NUL-terminated paths that outlive the call.
    #[cfg(target_os = "linux")]
    let r = unsafe { libc::renameat2(libc::AT_FDCWD, f.as_ptr(), libc::AT_FDCWD, t.as_ptr(), libc::RENAME_NOREPLACE) };
    // SAFETY: as above.
    #[cfg(target_os = "macos")]
    let r = unsafe { libc::renamex_np(f.as_ptr(), t.as_ptr(), libc::RENAME_EXCL) };
    #[cfg(not(any(target_os = "linux", target_os = "macos")))]
    let r = {
        let _ = (&f, &t);
        fs::hard_link(from, to)?;
        fs::remove_file(from)?;
        0
    };
    if r == 0 {
        return Ok(());
    }
    let e = std::io::Error::last_os_error();
    match e.raw_os_error() {
        // Filesystems (NFS, FUSE) and sandboxes without the flag: a link
        // refuses an existing name just the same.
        Some(libc::EINVAL | libc::ENOSYS | libc::EPERM | libc::ENOTSUP) => {
            fs::hard_link(from, to)?;
            fs::remove_file(from)
        }
        _ => Err(e),
    }
}

/// Moves `from/name` to `to/name`, never replacing what holds that name
/// there (a writer may reuse any name; the file there is not ours to
/// destroy): that is an `AlreadyExists` error. Returns false when the
/// entry was already gone (another pass took it), which callers treat as
/// "not mine".
pub fn move_to(from: &Path, to: &Path, name: &str) -> Result<bool> {
    match rename_noreplace(&from.join(name), &to.join(name)) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(Error::io(from.join(name), e)),
    }
}

/// Whether a library error is a no-replace rename refused by a taken name.
pub fn is_taken(e: &Error) -> bool {
    matches!(e, Error::Io { source, .. } if source.kind() == std::io::ErrorKind::AlreadyExists)
}

/// The longest name the daemon stores a file under: a `.error` sibling and
/// a `~N` suffix must still fit in the 255 bytes a file name may have.
pub const STORED_NAME_MAX: usize = 200;

/// The `n`th candidate name for `name` in a place that may already hold it:
/// the name itself, then `<stem>~<n>.json`, then clock-derived suffixes.
fn candidate(name: &str, n: u32) -> String {
    let stem = name.strip_suffix(".json").unwrap_or(name);
    match n {
        0 => name.to_string(),
        1..=15 => format!("{stem}~{n}.json"),
        _ => format!("{stem}~{:016x}.json", crate::root::fnv1a(unique_name().as_bytes())),
    }
}

const CANDIDATES: u32 = 32;

/// Moves a finished entry (to `done/`, `sent/`) without replacing an
/// earlier one of the same name: that one keeps its name, this one takes
/// the first free `<stem>~<n>.json`. Returns false when it was gone.
pub fn finish(from: &Path, to: &Path, name: &str) -> Result<bool> {
    for n in 0..CANDIDATES {
        match rename_noreplace(&from.join(name), &to.join(candidate(name, n))) {
            Ok(()) => return Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(Error::io(from.join(name), e)),
        }
    }
    Err(Error::io(to.join(name), std::io::Error::other("no free name")))
}

/// The name a file is stored under in `failed/`: control characters and
/// slashes become `_`, and a name too long to store beside its `.error`
/// is shortened; either way a hash of the original keeps two such names
/// apart. A name that can be stored as it is stays as it is.
pub fn stored_name(name: &str) -> String {
    if safe_file_name(name) && name.len() <= STORED_NAME_MAX {
        return name.to_string();
    }
    let clean: String = name.chars().map(|c| if c.is_control() || c == '/' { '_' } else { c }).collect();
    let stem = clean.strip_suffix(".json").unwrap_or(&clean).replace("..", "__");
    let mut cut = stem.len().min(STORED_NAME_MAX - 22);
    while !stem.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}-{:016x}.json", &stem[..cut], crate::root::fnv1a(name.as_bytes()))
}

/// Moves a judged-bad entry into `failed/` with a one-line `.error` beside
/// it. Nothing in `failed/` is ever replaced or written through: the
/// `.error` is created exclusively (a symlink planted under its name is
/// skipped, not followed) and the entry is renamed without replacing, each
/// taking the next free name if needed. Returns the stored name.
pub fn fail(from: &Path, failed: &Path, name: &str, reason: &str) -> Result<String> {
    fail_as(&from.join(name), failed, &stored_name(name), reason)
}

fn fail_as(src: &Path, failed: &Path, base: &str, reason: &str) -> Result<String> {
    let line: String = reason.chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
    for n in 0..CANDIDATES {
        let target = candidate(base, n);
        let err = failed.join(format!("{target}.error"));
        let mut f = match crate::fsx::create_new(&err) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(Error::io(&err, e)),
        };
        if let Err(e) = f.write_all(format!("{line}\n").as_bytes()).and_then(|_| f.sync_all()) {
            let _ = fs::remove_file(&err);
            return Err(Error::io(&err, e));
        }
        match rename_noreplace(src, &failed.join(&target)) {
            Ok(()) => {
                fsync_dir(failed)?;
                return Ok(target);
            }
            Err(e) => {
                let _ = fs::remove_file(&err);
                match e.kind() {
                    std::io::ErrorKind::AlreadyExists => continue,
                    std::io::ErrorKind::NotFound => return Ok(target),
                    _ => return Err(Error::io(src, e)),
                }
            }
        }
    }
    Err(Error::io(failed, std::io::Error::other(format!("no free name for {base}"))))
}

/// Moves entries whose names are not UTF-8 (they cannot be handled by
/// name) into `failed/` under a readable name. Returns how many.
pub fn quarantine_unnamed(dir: &Path, failed: &Path) -> usize {
    let Ok(rd) = fs::read_dir(dir) else { return 0 };
    let mut n = 0;
    for e in rd.filter_map(|e| e.ok()) {
        let raw = e.file_name();
        if raw.to_str().is_some() {
            continue;
        }
        let lossy = raw.to_string_lossy();
        let target = format!("non-utf8-{:08x}.json", crate::root::fnv1a(raw.as_encoded_bytes()) as u32);
        let reason = format!("bad-file-name: file name {:?} is not valid UTF-8", lossy);
        if fail_as(&e.path(), failed, &stored_name(&target), &reason).is_ok() {
            n += 1;
        }
    }
    n
}

/// What a reader may accept, and whose files count as ours.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_bytes: u64,
    pub uid: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { max_bytes: crate::queue::format::DEFAULT_MAX_BYTES, uid: crate::root::uid() }
    }
}

fn kind_of(ft: &fs::FileType) -> &'static str {
    if ft.is_symlink() { "symlink" }
    else if ft.is_dir() { "directory" }
    else if ft.is_fifo() { "FIFO" }
    else if ft.is_socket() { "socket" }
    else if ft.is_block_device() || ft.is_char_device() { "device" }
    else { "special file" }
}

fn check_meta(md: &fs::Metadata, lim: &Limits) -> Result<(), Reject> {
    let ft = md.file_type();
    if !ft.is_file() {
        return Err(Reject::NotRegularFile(kind_of(&ft)));
    }
    if md.uid() != lim.uid {
        return Err(Reject::ForeignOwner(md.uid()));
    }
    if md.nlink() > 1 {
        return Err(Reject::MultipleLinks(md.nlink()));
    }
    // World-writable only: a script under `umask 002` makes 0664 files,
    // and the 0700 directories already keep the group out.
    let mode = md.permissions().mode() & 0o7777;
    if mode & 0o002 != 0 {
        return Err(Reject::WritableByOthers(mode));
    }
    if md.len() > lim.max_bytes {
        return Err(Reject::TooLarge { size: md.len(), limit: lim.max_bytes });
    }
    Ok(())
}

/// Reads a queue entry the safe way: lstat first (never follow, never open
/// a FIFO or device), open with O_NOFOLLOW|O_NONBLOCK, re-check the opened
/// inode, and read at most the limit plus one byte.
pub fn read_checked(path: &Path, lim: &Limits) -> Result<Vec<u8>, Reject> {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("\u{1}");
    if !safe_file_name(name) {
        return Err(Reject::BadFileName);
    }
    let md = fs::symlink_metadata(path).map_err(|e| Reject::Unreadable(e.to_string()))?;
    check_meta(&md, lim)?;
    let f = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(path)
        .map_err(|e| Reject::Unreadable(e.to_string()))?;
    let md2 = f.metadata().map_err(|e| Reject::Unreadable(e.to_string()))?;
    if md2.ino() != md.ino() || md2.dev() != md.dev() {
        return Err(Reject::Unreadable("file was replaced while being read".into()));
    }
    check_meta(&md2, lim)?;
    let mut buf = Vec::with_capacity(md2.len() as usize);
    f.take(lim.max_bytes + 1).read_to_end(&mut buf).map_err(|e| Reject::Unreadable(e.to_string()))?;
    if buf.len() as u64 > lim.max_bytes {
        return Err(Reject::TooLarge { size: buf.len() as u64, limit: lim.max_bytes });
    }
    Ok(buf)
}

/// Keeps `done/` bounded: removes entries older than `max_age`, then the
/// oldest by name beyond `max_count`. Returns how many were removed.
pub fn prune(dir: &Path, max_age: Duration, max_count: usize, now: SystemTime) -> Result<usize> {
    let names = list(dir)?;
    let mut removed = 0;
    let excess = names.len().saturating_sub(max_count);
    for (i, n) in names.into_iter().enumerate() {
        let p = dir.join(&n);
        let old = fs::symlink_metadata(&p)
            .and_then(|m| m.modified())
            .map(|m| now.duration_since(m).unwrap_or_default() > max_age)
            .unwrap_or(false);
        if (i < excess || old) && fs::remove_file(&p).is_ok() {
            removed += 1;
        }
    }
    Ok(removed)
}

/// A spool or outbox: the five (or four) Maildir subdirectories.
#[derive(Debug, Clone)]
pub struct Queue {
    pub tmp: PathBuf,
    pub new: PathBuf,
    pub cur: PathBuf,
    pub done: PathBuf,
    pub failed: PathBuf,
}

impl Queue {
    pub fn spool(p: &crate::root::PeerPaths) -> Self {
        Queue {
            tmp: p.spool_sub("tmp"),
            new: p.spool_sub("new"),
            cur: p.spool_sub("cur"),
            done: p.spool_sub("done"),
            failed: p.spool_sub("failed"),
        }
    }

    /// The outbox has no `cur/`: routing is one rename, so `new/` doubles
    /// as the in-flight place and `sent/` is its `done/`.
    pub fn outbox(p: &crate::root::PeerPaths) -> Self {
        Queue {
            tmp: p.outbox_sub("tmp"),
            new: p.outbox_sub("new"),
            cur: p.outbox_sub("new"),
            done: p.outbox_sub("sent"),
            failed: p.outbox_sub("failed"),
        }
    }

    pub fn enqueue(&self, name: &str, bytes: &[u8]) -> Result<PathBuf> {
        write_atomic(&self.tmp, &self.new, name, bytes)
    }
}

/// Removes staging files a crashed writer left in `tmp/` (older than `age`).
pub fn sweep_tmp(tmp: &Path, age: Duration, now: SystemTime) -> usize {
    let Ok(rd) = fs::read_dir(tmp) else { return 0 };
    rd.filter_map(|e| e.ok())
        .filter(|e| {
            e.metadata()
                .and_then(|m| m.modified())
                .map(|m| now.duration_since(m).unwrap_or_default() > age)
                .unwrap_or(false)
        })
        .filter(|e| fs::remove_file(e.path()).is_ok())
        .count()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rename_noreplace_never_replaces() {
        let d = tempfile::tempdir().unwrap();
        let (a, b, c) = (d.path().join("a"), d.path().join("b"), d.path().join("c"));
        fs::write(&a, "a").unwrap();
        fs::write(&b, "b").unwrap();
        let e = rename_noreplace(&a, &b).unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::AlreadyExists);
        assert_eq!(fs::read_to_string(&b).unwrap(), "b");
        rename_noreplace(&a, &c).unwrap();
        assert!(!a.exists() && fs::read_to_string(&c).unwrap() == "a");
    }

    fn dirs() -> (tempfile::TempDir, PathBuf, PathBuf) {
        let d = tempfile::tempdir().unwrap();
        let (cur, failed) = (d.path().join("cur"), d.path().join("failed"));
        fs::create_dir(&cur).unwrap();
        fs::create_dir(&failed).unwrap();
        (d, cur, failed)
    }

    #[test]
    fn a_name_too_long_to_store_beside_its_error_is_shortened() {
        let (_d, cur, failed) = dirs();
        for len in [200, 237, 250, 255] {
            let name = format!("{}.json", "n".repeat(len - 5));
            fs::write(cur.join(&name), "x").unwrap();
            let stored = fail(&cur, &failed, &name, "bad-id: too long").unwrap();
            assert!(stored.len() <= STORED_NAME_MAX, "{len}: {stored}");
            assert!(!cur.join(&name).exists(), "{len}: left cur/");
            assert_eq!(fs::read_to_string(failed.join(format!("{stored}.error"))).unwrap(), "bad-id: too long\n");
        }
        // Same long prefix, different names: different stored names.
        let (a, b) = (format!("{}a.json", "n".repeat(240)), format!("{}b.json", "n".repeat(240)));
        assert_ne!(stored_name(&a), stored_name(&b));
        assert_eq!(stored_name("ok.json"), "ok.json");
    }

    #[test]
    fn failed_never_replaces_and_never_writes_through_a_link() {
        let (d, cur, failed) = dirs();
        fs::write(cur.join("x.json"), "first").unwrap();
        assert_eq!(fail(&cur, &failed, "x.json", "e: one").unwrap(), "x.json");
        fs::write(cur.join("x.json"), "second").unwrap();
        let second = fail(&cur, &failed, "x.json", "e: two").unwrap();
        assert_ne!(second, "x.json");
        assert_eq!(fs::read_to_string(failed.join("x.json")).unwrap(), "first");
        assert_eq!(fs::read_to_string(failed.join(&second)).unwrap(), "second");
        assert_eq!(fs::read_to_string(failed.join("x.json.error")).unwrap(), "e: one\n");
        // A planted symlink under the .error name is skipped, not followed.
        let victim = d.path().join("victim");
        fs::write(&victim, "precious").unwrap();
        std::os::unix::fs::symlink(&victim, failed.join("y.json.error")).unwrap();
        fs::write(cur.join("y.json"), "y").unwrap();
        let stored = fail(&cur, &failed, "y.json", "e: y").unwrap();
        assert_ne!(stored, "y.json");
        assert_eq!(fs::read_to_string(&victim).unwrap(), "precious");
        assert_eq!(fs::read_to_string(failed.join(format!("{stored}.error"))).unwrap(), "e: y\n");
    }

    #[test]
    fn sync_staged_syncs_every_file_and_reports_a_missing_one() {
        let d = tempfile::tempdir().unwrap();
        let mut files: Vec<PathBuf> = (0..3 * SYNC_THREADS).map(|i| stage(d.path(), &format!("s{i}"), b"x").unwrap()).collect();
        sync_staged(&files).unwrap();
        sync_staged(&files[..1]).unwrap();
        sync_staged(&[]).unwrap();
        files.insert(7, d.path().join("gone"));
        assert!(sync_staged(&files).is_err());
    }

    #[test]
    fn finish_keeps_an_earlier_file_of_the_same_name() {
        let (_d, cur, done) = dirs();
        fs::write(cur.join("t.json"), "1").unwrap();
        assert!(finish(&cur, &done, "t.json").unwrap());
        fs::write(cur.join("t.json"), "2").unwrap();
        assert!(finish(&cur, &done, "t.json").unwrap());
        assert_eq!(fs::read_to_string(done.join("t.json")).unwrap(), "1");
        assert_eq!(fs::read_to_string(done.join("t~1.json")).unwrap(), "2");
        assert!(!finish(&cur, &done, "t.json").unwrap(), "gone");
        // move_to never replaces: the taken name is an error, both kept.
        fs::write(cur.join("t.json"), "3").unwrap();
        let e = move_to(&cur, &done, "t.json").unwrap_err();
        assert!(is_taken(&e));
        assert_eq!(fs::read_to_string(done.join("t.json")).unwrap(), "1");
    }
}
