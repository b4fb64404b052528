//! Append-only logfmt logs with size rotation. A log failure never breaks
//! the operation being logged: errors are swallowed after one warning.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

/// Formats one logfmt value: quoted when it has whitespace, `"` or `=`
/// (escaping `\` then `"`), `""` when empty.
pub fn value(v: &str) -> String {
    if v.is_empty() {
        return "\"\"".into();
    }
    if v.chars().any(|c| c.is_whitespace() || c == '"' || c == '=' || c.is_control()) {
        let esc = v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n").replace('\r', "\\r").replace('\t', "\\t");
        let esc: String = esc.chars().map(|c| if c.is_control() { '?' } else { c }).collect();
        format!("\"{esc}\"")
    } else {
        v.into()
    }
}

/// ISO-8601 UTC with milliseconds, computed without a date crate.
pub fn iso8601(t: SystemTime) -> String {
    let d = t.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs() as i64;
    let (days, rem) = (secs.div_euclid(86400), secs.rem_euclid(86400));
    // Howard Hinnant's civil-from-days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        d.subsec_millis()
    )
}

/// Renders `ts=... k=v ...` for the given pairs.
pub fn line(t: SystemTime, fields: &[(&str, &str)]) -> String {
    let mut s = format!("ts={}", iso8601(t));
    for (k, v) in fields {
        s.push(' ');
        s.push_str(k);
        s.push('=');
        s.push_str(&value(v));
    }
    s.push('\n');
    s
}

/// A size-rotated log file shared by the daemon's tasks. The file stays
/// open between lines (a busy router writes thousands a second); it is
/// looked up again at most every second, so a log removed or moved
/// away by hand is recreated.
#[derive(Debug)]
pub struct Log {
    path: PathBuf,
    max_bytes: u64,
    keep: usize,
    recheck: Duration,
    open: Mutex<Option<Open>>,
}

#[derive(Debug)]
struct Open {
    file: fs::File,
    size: u64,
    ino: u64,
    checked: Instant,
}

impl Log {
    pub fn new(path: PathBuf, max_bytes: u64, keep: usize) -> Self {
        Log { path, max_bytes, keep, recheck: Duration::from_secs(1), open: Mutex::new(None) }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn write(&self, fields: &[(&str, &str)]) {
        self.write_text(&line(SystemTime::now(), fields));
    }

    /// Several lines in one write.
    pub fn write_lines(&self, lines: &[Vec<(&str, &str)>]) {
        let now = SystemTime::now();
        let text: String = lines.iter().map(|f| line(now, f)).collect();
        if !text.is_empty() {
            self.write_text(&text);
        }
    }

    fn write_text(&self, text: &str) {
        let mut g = self.open.lock().unwrap_or_else(|p| p.into_inner());
        if let Err(e) = self.append(&mut g, text) {
            *g = None;
            tracing::warn!(path = %self.path.display(), error = %e, "log write failed");
        }
    }

    fn append(&self, slot: &mut Option<Open>, text: &str) -> std::io::Result<()> {
        // Every `recheck`: is the open file still the one at the path?
        if let Some(o) = slot.as_mut().filter(|o| o.checked.elapsed() >= self.recheck) {
            if fs::symlink_metadata(&self.path).is_ok_and(|m| m.ino() == o.ino) {
                o.checked = Instant::now();
            } else {
                *slot = None;
            }
        }
        let over = |size: u64| size > 0 && size + text.len() as u64 > self.max_bytes;
        let mut rotated = false;
        if slot.as_ref().is_some_and(|o| over(o.size)) {
            *slot = None;
            self.rotate();
            rotated = true;
        }
        if slot.is_none() {
            let open = || -> std::io::Result<Open> {
                let file = crate::fsx::open_private(&self.path, true)?;
                let md = file.metadata()?;
                Ok(Open { size: md.len(), ino: md.ino(), file, checked: Instant::now() })
            };
            let mut o = open()?;
            // A log found over the limit on open rotates first, once: if
            // rotating fails (read-only dir), the line is still written.
            if over(o.size) && !rotated {
                drop(o);
                self.rotate();
                o = open()?;
            }
            *slot = Some(o);
        }
        let Some(o) = slot.as_mut() else { return Ok(()) };
        o.file.write_all(text.as_bytes())?;
        o.size += text.len() as u64;
        Ok(())
    }

    /// Drops `.keep`, shifts `.i` to `.i+1`, the base to `.1`.
    fn rotate(&self) {
        let nth = |i: usize| PathBuf::from(format!("{}.{i}", self.path.display()));
        let _ = fs::remove_file(nth(self.keep));
        for i in (1..self.keep).rev() {
            let _ = fs::rename(nth(i), nth(i + 1));
        }
        let _ = fs::rename(&self.path, nth(1));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_rules() {
        assert_eq!(value(""), "\"\"");
        assert_eq!(value("ok"), "ok");
        assert_eq!(value("a b"), "\"a b\"");
        assert_eq!(value(r#"x="\"#), r#""x=\"\\""#);
    }

    #[test]
    fn iso_dates() {
        assert_eq!(iso8601(SystemTime::UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
        let t = SystemTime::UNIX_EPOCH + Duration::from_millis(1_795_000_000_123);
        assert_eq!(iso8601(t), "2026-11-18T11:06:40.123Z");
    }

    #[test]
    fn rotates_and_keeps_bounded_files() {
        let d = tempfile::tempdir().unwrap();
        let log = Log::new(d.path().join("x.log"), 200, 3);
        for i in 0..100 {
            log.write(&[("i", &i.to_string()), ("pad", "0123456789012345678901234567890123456789")]);
        }
        let n = fs::read_dir(d.path()).unwrap().count();
        assert_eq!(n, 4, "base + 3 rotations");
        assert!(fs::metadata(d.path().join("x.log")).unwrap().len() <= 200);
        assert!(!d.path().join("x.log.4").exists());
    }

    #[test]
    fn a_log_removed_by_hand_is_recreated() {
        let d = tempfile::tempdir().unwrap();
        let mut log = Log::new(d.path().join("x.log"), 1 << 20, 3);
        log.recheck = Duration::ZERO;
        log.write(&[("n", "1")]);
        fs::remove_file(d.path().join("x.log")).unwrap();
        log.write(&[("n", "2")]);
        log.write_lines(&[vec![("n", "3")], vec![("n", "4")]]);
        let text = fs::read_to_string(d.path().join("x.log")).unwrap();
        assert_eq!(text.lines().map(|l| l.split(' ').nth(1).unwrap_or("")).collect::<Vec<_>>(), ["n=2", "n=3", "n=4"]);
    }

    #[test]
    fn a_failing_rotation_still_writes_and_does_not_recurse() {
        let d = tempfile::tempdir().unwrap();
        // A directory in the way of `x.log.1`: every rotation fails.
        fs::create_dir_all(d.path().join("x.log.1/blocker")).unwrap();
        let log = Log::new(d.path().join("x.log"), 50, 1);
        for i in 0..20 {
            log.write(&[("i", &i.to_string()), ("pad", "0123456789012345678901234567890123456789")]);
        }
        assert_eq!(fs::read_to_string(d.path().join("x.log")).unwrap().lines().count(), 20);
    }
}
