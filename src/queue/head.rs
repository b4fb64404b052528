//! The head of a queue directory: the first names in delivery order,
//! without holding (or re-reading) the whole directory on every event.
//!
//! A spool may hold 100,000 files. Re-listing it per delivery makes a
//! burst quadratic, and loading it whole costs memory per event. A `Head`
//! keeps at most `cap` of the smallest names from one streaming listing;
//! file events add names as they arrive; the directory is listed again
//! only when the window runs dry while more files are known to exist, or
//! when events may have been lost (a rescan).

use crate::error::{Error, Result};
use crate::queue::format::is_message_name;
use std::collections::BTreeSet;
use std::fs;
use std::path::Path;

/// Default window: small enough to be cheap, big enough that a burst
/// re-lists rarely.
pub const DEFAULT_CAP: usize = 4096;

#[derive(Debug)]
pub struct Head {
    cap: usize,
    names: BTreeSet<String>,
    /// The last listing held more than `cap` names: names above the
    /// window's end exist on disk but are not in memory.
    truncated: bool,
    /// Events may have been lost: list again before trusting the window.
    stale: bool,
    /// The directory's mtime when it was last listed.
    listed_mtime: Option<std::time::SystemTime>,
    /// That mtime was well before the listing: file timestamps are coarse,
    /// so a change in the same tick as the listing could keep the mtime.
    mtime_settled: bool,
}

/// What a listing found besides message names.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Listing {
    /// Entries whose names are not UTF-8 (to be quarantined).
    pub strays: usize,
    pub truncated: bool,
}

impl Head {
    pub fn new(cap: usize) -> Head {
        Head { cap: cap.max(1), names: BTreeSet::new(), truncated: false, stale: true, listed_mtime: None, mtime_settled: false }
    }

    /// Forces a listing before the next use.
    pub fn invalidate(&mut self) {
        self.stale = true;
    }

    /// The periodic safety net: list again only if an entry was added or
    /// removed since the last listing (the directory's mtime moved), so an
    /// idle daemon with many peers reads almost nothing.
    pub fn invalidate_if_changed(&mut self, dir: &Path) {
        let now = fs::metadata(dir).and_then(|m| m.modified()).ok();
        if now.is_none() || now != self.listed_mtime || !self.mtime_settled {
            self.stale = true;
        }
    }

    /// Known empty: listed, nothing in the window, nothing beyond it.
    pub fn known_empty(&self) -> bool {
        !self.stale && !self.truncated && self.names.is_empty()
    }

    pub fn needs_listing(&self) -> bool {
        self.stale || (self.names.is_empty() && self.truncated)
    }

    /// Lists `dir` in one streaming pass, keeping the `cap` smallest names.
    pub fn relist(&mut self, dir: &Path) -> Result<Listing> {
        self.names.clear();
        self.truncated = false;
        self.stale = false;
        // Taken before reading, so a change during the listing shows later.
        self.listed_mtime = fs::metadata(dir).and_then(|m| m.modified()).ok();
        self.mtime_settled = self
            .listed_mtime
            .and_then(|m| std::time::SystemTime::now().duration_since(m).ok())
            .is_some_and(|age| age > std::time::Duration::from_secs(1));
        let rd = match fs::read_dir(dir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Listing::default()),
            Err(e) => {
                self.stale = true;
                return Err(Error::io(dir, e));
            }
        };
        let mut strays = 0;
        for e in rd.filter_map(|e| e.ok()) {
            match e.file_name().into_string() {
                Ok(n) if is_message_name(&n) => self.insert(n),
                Ok(_) => {}
                Err(_) => strays += 1,
            }
        }
        Ok(Listing { strays, truncated: self.truncated })
    }

    fn insert(&mut self, name: String) {
        if self.truncated && self.names.last().is_some_and(|last| &name > last) {
            return;
        }
        self.names.insert(name);
        if self.names.len() > self.cap {
            self.names.pop_last();
            self.truncated = true;
        }
    }

    /// A file event named this entry. Names beyond a truncated window are
    /// left for the next listing, so order is kept without growing.
    pub fn hint(&mut self, name: &str) {
        if is_message_name(name) && !self.names.contains(name) {
            self.insert(name.to_string());
        }
    }

    /// The names in order, listing `dir` first when needed.
    pub fn names(&mut self, dir: &Path) -> Result<(Vec<String>, Listing)> {
        let listing = if self.needs_listing() { self.relist(dir)? } else { Listing::default() };
        Ok((self.names.iter().cloned().collect(), listing))
    }

    pub fn first(&self) -> Option<&String> {
        self.names.first()
    }

    /// The entry left `new/` (claimed, routed, failed or deleted).
    pub fn remove(&mut self, name: &str) {
        self.names.remove(name);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir_with(names: &[&str]) -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        for n in names {
            fs::write(d.path().join(n), "{}").unwrap();
        }
        d
    }

    #[test]
    fn keeps_the_smallest_names_and_relists_when_dry() {
        let d = dir_with(&["05.json", "01.json", "03.json", "02.json", "04.json", ".x.json", "README"]);
        let mut h = Head::new(2);
        let (v, l) = h.names(d.path()).unwrap();
        assert_eq!(v, ["01.json", "02.json"]);
        assert!(l.truncated);
        // A later name cannot jump into a truncated window; an earlier one can.
        h.hint("09.json");
        h.hint("00.json");
        assert_eq!(h.names(d.path()).unwrap().0, ["00.json", "01.json"]);
        for n in ["00.json", "01.json"] {
            h.remove(n);
        }
        fs::remove_file(d.path().join("01.json")).unwrap();
        fs::remove_file(d.path().join("02.json")).unwrap();
        assert!(h.needs_listing());
        assert_eq!(h.names(d.path()).unwrap().0, ["03.json", "04.json"]);
    }

    #[test]
    fn untruncated_window_takes_every_hint_without_listing() {
        let d = dir_with(&["a.json"]);
        let mut h = Head::new(8);
        assert_eq!(h.names(d.path()).unwrap().0, ["a.json"]);
        fs::write(d.path().join("b.json"), "{}").unwrap();
        h.hint("b.json");
        h.hint(".turn-end");
        assert!(!h.needs_listing());
        assert_eq!(h.names(d.path()).unwrap().0, ["a.json", "b.json"]);
        h.invalidate();
        fs::remove_file(d.path().join("a.json")).unwrap();
        assert_eq!(h.names(d.path()).unwrap().0, ["b.json"]);
    }

    #[test]
    fn periodic_check_lists_again_only_after_a_change() {
        let d = dir_with(&["a.json"]);
        let mut h = Head::new(8);
        h.names(d.path()).unwrap();
        h.invalidate_if_changed(d.path());
        assert!(h.needs_listing(), "changed within a second of the listing: not trusted yet");
        let old = std::time::SystemTime::now() - std::time::Duration::from_secs(5);
        fs::File::open(d.path()).unwrap().set_modified(old).unwrap();
        h.names(d.path()).unwrap();
        h.invalidate_if_changed(d.path());
        assert!(!h.needs_listing(), "unchanged directory: no listing");
        std::thread::sleep(std::time::Duration::from_millis(10));
        fs::write(d.path().join("b.json"), "{}").unwrap();
        h.invalidate_if_changed(d.path());
        assert!(h.needs_listing());
        assert_eq!(h.names(d.path()).unwrap().0, ["a.json", "b.json"]);
    }

    #[test]
    fn counts_non_utf8_names() {
        use std::os::unix::ffi::OsStrExt;
        let d = dir_with(&["a.json"]);
        fs::write(d.path().join(std::ffi::OsStr::from_bytes(b"\xff.json")), "{}").unwrap();
        let mut h = Head::new(8);
        let (v, l) = h.names(d.path()).unwrap();
        assert_eq!(v, ["a.json"]);
        assert_eq!(l.strays, 1);
    }
}
