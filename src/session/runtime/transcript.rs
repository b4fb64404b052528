//! Reading agent transcripts (JSON lines) cheaply: the newest entry's
//! timestamp from the file's tail, which session file belongs to a peer,
//! and whether a delivered text shows up after a recorded size.
//! Transcripts grow to hundreds of MB, so nothing here reads a whole file.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// First tail window; doubled until a whole timestamped line fits.
const TAIL_START: u64 = 64 * 1024;
/// A line longer than this is not looked at (it would not be a small
/// status record anyway, and reading it would cost more than it tells).
const TAIL_MAX: u64 = 64 * 1024 * 1024;
/// At most this much new transcript is scanned for a delivered text.
const SCAN_MAX: u64 = 16 * 1024 * 1024;

/// Claude Code's project directory name: the real path with every
/// character that is not ASCII alphanumeric replaced by `-`.
pub fn slug(cwd: &Path) -> String {
    let real = std::fs::canonicalize(cwd).unwrap_or_else(|_| cwd.to_path_buf());
    real.to_string_lossy().chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '-' }).collect()
}

/// Parses `YYYY-MM-DDTHH:MM:SS[.frac](Z|±HH:MM)`.
pub fn parse_rfc3339(s: &str) -> Option<SystemTime> {
    let b = s.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') || b[13] != b':' || b[16] != b':' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| s.get(r)?.parse::<i64>().ok();
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, sec) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || sec > 60 {
        return None;
    }
    let mut rest = &s[19..];
    let mut nanos: u64 = 0;
    if let Some(frac) = rest.strip_prefix('.') {
        let n = frac.bytes().take_while(u8::is_ascii_digit).count();
        if n == 0 {
            return None;
        }
        let digits = &frac[..n.min(9)];
        nanos = digits.parse::<u64>().ok()? * 10u64.pow(9 - digits.len() as u32);
        rest = &frac[n..];
    }
    let offset = match rest {
        "Z" | "z" => 0,
        o if o.len() == 6 && (o.starts_with('+') || o.starts_with('-')) && &o[3..4] == ":" => {
            let v = o[1..3].parse::<i64>().ok()? * 3600 + o[4..6].parse::<i64>().ok()? * 60;
            if o.starts_with('-') { -v } else { v }
        }
        _ => return None,
    };
    // Days from the civil date (Howard Hinnant's algorithm).
    let (y2, m2) = if mo <= 2 { (y - 1, mo + 9) } else { (y, mo - 3) };
    let era = y2.div_euclid(400);
    let yoe = y2 - era * 400;
    let doy = (153 * m2 + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146097 + doe - 719468;
    let secs = days * 86400 + h * 3600 + mi * 60 + sec - offset;
    let secs = u64::try_from(secs).ok()?;
    Some(UNIX_EPOCH + Duration::from_secs(secs) + Duration::from_nanos(nanos))
}

fn has(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

#[derive(serde::Deserialize)]
struct Stamp {
    timestamp: Option<String>,
}

pub(crate) fn line_time(line: &[u8]) -> Option<SystemTime> {
    // Cheap pre-filter: most large lines are not worth a parse without it.
    if !has(line, b"\"timestamp\"") {
        return None;
    }
    serde_json::from_slice::<Stamp>(line).ok()?.timestamp.as_deref().and_then(parse_rfc3339)
}

/// The timestamp of the last entry that carries one (lines without a
/// `timestamp`, like mode records written while idle, are skipped). Reads
/// a tail window that doubles until a complete timestamped line fits.
pub fn last_entry_time(path: &Path) -> Option<SystemTime> {
    // A transcript directory is the agent's: never block on a FIFO there.
    let (mut f, md): (File, _) = crate::fsx::open_regular(path).ok()?;
    let len = md.len();
    let mut window = TAIL_START.min(len);
    loop {
        let start = len - window;
        f.seek(SeekFrom::Start(start)).ok()?;
        let mut buf = Vec::with_capacity(window as usize);
        (&mut f).take(window).read_to_end(&mut buf).ok()?;
        // The first piece is partial unless the window reaches the start.
        let mut lines: Vec<&[u8]> = buf.split(|&c| c == b'\n').collect();
        if start > 0 && !lines.is_empty() {
            lines.remove(0);
        }
        if let Some(t) = lines.iter().rev().find_map(|l| line_time(l)) {
            return Some(t);
        }
        if start == 0 || window >= TAIL_MAX {
            return None;
        }
        window = (window * 2).min(len).min(TAIL_MAX);
    }
}

fn mtime(p: &Path) -> Option<SystemTime> {
    std::fs::metadata(p).and_then(|m| m.modified()).ok()
}

/// `*.jsonl` files under `dir` (recursively when `deep`), with mtimes.
pub fn jsonl_files(dir: &Path, deep: bool) -> Vec<(PathBuf, SystemTime)> {
    let walk = walkdir::WalkDir::new(dir).min_depth(1).max_depth(if deep { 16 } else { 1 });
    walk.into_iter()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().is_file() && e.path().extension().is_some_and(|x| x == "jsonl"))
        .filter_map(|e| Some((e.path().to_path_buf(), e.metadata().ok()?.modified().ok()?)))
        .collect()
}

/// The most recently written file of a set.
pub fn newest(files: &[(PathBuf, SystemTime)]) -> Option<&(PathBuf, SystemTime)> {
    files.iter().max_by_key(|(_, t)| *t)
}

/// The newest last-entry time across files, reading only the tails of
/// files written after the best time found so far.
pub fn newest_entry(files: &[(PathBuf, SystemTime)]) -> Option<SystemTime> {
    let mut sorted: Vec<&(PathBuf, SystemTime)> = files.iter().collect();
    sorted.sort_by_key(|f| std::cmp::Reverse(f.1));
    let mut best: Option<SystemTime> = None;
    for (p, m) in sorted {
        if best.is_some_and(|b| *m <= b) {
            break;
        }
        if let Some(t) = last_entry_time(p) {
            best = best.max(Some(t));
        }
    }
    best
}

/// What a Codex session file's first line says so far.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CodexHead {
    /// A `session_meta` line with this cwd.
    Cwd(PathBuf),
    /// A complete first line that is not a session start: final.
    Other,
    /// No complete first line yet: codex creates the file empty and
    /// writes `session_meta` a moment later, so ask again.
    Incomplete,
}

/// The `cwd` in a Codex session file's first line (`session_meta`).
pub fn codex_session_head(path: &Path) -> CodexHead {
    let Ok((f, _)) = crate::fsx::open_regular(path) else { return CodexHead::Incomplete };
    let mut first = Vec::new();
    // The first line holds the base instructions: a few KiB, bounded here.
    let mut r = std::io::BufReader::new(f.take(4 * 1024 * 1024));
    if std::io::BufRead::read_until(&mut r, b'\n', &mut first).is_err() || !first.ends_with(b"\n") {
        return CodexHead::Incomplete;
    }
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(first.trim_ascii_end()) else { return CodexHead::Other };
    match v["payload"]["cwd"].as_str() {
        Some(c) if v["type"] == "session_meta" => CodexHead::Cwd(PathBuf::from(c)),
        _ => CodexHead::Other,
    }
}

/// The cwd a Codex session file started in, once its first line is there.
pub fn codex_session_cwd(path: &Path) -> Option<PathBuf> {
    match codex_session_head(path) {
        CodexHead::Cwd(c) => Some(c),
        _ => None,
    }
}

fn same_dir(a: &Path, b: &Path) -> bool {
    let ca = std::fs::canonicalize(a).unwrap_or_else(|_| a.to_path_buf());
    let cb = std::fs::canonicalize(b).unwrap_or_else(|_| b.to_path_buf());
    ca == cb
}

/// The newest Codex session file started in `cwd`. `seen` remembers each
/// file's first-line verdict for this `cwd` so a file's head is read once.
pub fn codex_session_for(sessions: &Path, cwd: &Path, seen: &mut BTreeMap<PathBuf, bool>) -> Option<(PathBuf, SystemTime)> {
    codex_session_in(jsonl_files(sessions, true), cwd, seen)
}

/// As `codex_session_for`, over an existing listing.
pub fn codex_session_in(mut files: Vec<(PathBuf, SystemTime)>, cwd: &Path, seen: &mut BTreeMap<PathBuf, bool>) -> Option<(PathBuf, SystemTime)> {
    files.sort_by_key(|f| std::cmp::Reverse(f.1));
    for (p, t) in files {
        let hit = match seen.get(&p) {
            Some(v) => *v,
            None => match codex_session_head(&p) {
                CodexHead::Incomplete => false,
                head => *seen.entry(p.clone()).or_insert(matches!(head, CodexHead::Cwd(c) if same_dir(&c, cwd))),
            },
        };
        if hit {
            return Some((p, t));
        }
    }
    None
}

/// Sizes of transcript files before a paste, so that only what was
/// written after it is searched.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Mark {
    pub sizes: BTreeMap<PathBuf, u64>,
}

impl Mark {
    pub fn take(files: &[PathBuf]) -> Mark {
        Mark { sizes: files.iter().filter_map(|p| Some((p.clone(), std::fs::metadata(p).ok()?.len()))).collect() }
    }
}

/// The user text of a Claude Code transcript line, if it is a user prompt.
fn claude_user_text(v: &serde_json::Value) -> Option<String> {
    if v["type"] != "user" {
        return None;
    }
    match &v["message"]["content"] {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Array(parts) => Some(parts.iter().filter_map(|p| p["text"].as_str()).collect::<Vec<_>>().join("\n")),
        _ => None,
    }
}

/// What must show in the transcript: the text, whitespace-folded (the TUI
/// may trim trailing blanks or normalise line ends).
fn needle(text: &str) -> String {
    super::norm(text)
}

/// Whether a user line containing `text` was written to any of `files`
/// after the mark (a file absent from the mark is read from its start).
pub fn claude_echo_since(mark: &Mark, files: &[PathBuf], text: &str) -> bool {
    let want = needle(text);
    if want.is_empty() {
        return false;
    }
    files.iter().any(|p| {
        let from = mark.sizes.get(p).copied().unwrap_or(0);
        let Ok((mut f, _)) = crate::fsx::open_regular(p) else { return false };
        let len = f.metadata().map(|m| m.len()).unwrap_or(0);
        if len <= from || f.seek(SeekFrom::Start(from.max(len.saturating_sub(SCAN_MAX)))).is_err() {
            return false;
        }
        let mut buf = Vec::new();
        if (&mut f).take(SCAN_MAX).read_to_end(&mut buf).is_err() {
            return false;
        }
        buf.split(|&c| c == b'\n')
            .filter(|l| has(l, b"\"user\""))
            .filter_map(|l| serde_json::from_slice::<serde_json::Value>(l).ok())
            .filter_map(|v| claude_user_text(&v))
            .any(|t| needle(&t).contains(&want))
    })
}

pub fn file_mtime(p: &Path) -> Option<SystemTime> {
    mtime(p)
}

/// A directory listing reused for a short while when it was large:
/// activity is asked for every few milliseconds during a delivery, and
/// walking a big session tree that often costs more than it tells. Small
/// listings are redone every time. Mtimes are always fresh.
pub struct Listing {
    ttl: std::time::Duration,
    cached: std::sync::Mutex<Option<(std::time::Instant, Vec<PathBuf>)>>,
}

impl Listing {
    pub fn new(ttl: std::time::Duration) -> Self {
        Listing { ttl, cached: std::sync::Mutex::new(None) }
    }

    /// The paths `list` gives (with how many files it had to look at),
    /// reused while fresh if that was more than `CHEAP` files.
    pub fn get(&self, list: impl FnOnce() -> (Vec<PathBuf>, usize)) -> Vec<(PathBuf, SystemTime)> {
        const CHEAP: usize = 64;
        let mut c = self.cached.lock().unwrap_or_else(|p| p.into_inner());
        let paths = match c.as_ref() {
            Some((at, p)) if at.elapsed() < self.ttl => p.clone(),
            _ => {
                let (p, cost) = list();
                *c = (cost > CHEAP).then(|| (std::time::Instant::now(), p.clone()));
                p
            }
        };
        drop(c);
        paths.into_iter().filter_map(|p| Some((p.clone(), mtime(&p)?))).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn slug_replaces_every_non_alphanumeric() {
        let d = tempfile::tempdir().unwrap();
        let sub = d.path().join("my.proj_x y");
        std::fs::create_dir(&sub).unwrap();
        let real = std::fs::canonicalize(&sub).unwrap().display().to_string();
        let want: String = real.chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '-' }).collect();
        assert_eq!(slug(&sub), want);
        assert!(slug(&sub).ends_with("-my-proj-x-y"));
        assert_eq!(slug(Path::new("/nonexistent/a.b/ü")), "-nonexistent-a-b--");
    }

    #[test]
    fn slug_follows_symlinks() {
        let d = tempfile::tempdir().unwrap();
        let real = d.path().join("real");
        std::fs::create_dir(&real).unwrap();
        std::os::unix::fs::symlink(&real, d.path().join("link")).unwrap();
        assert_eq!(slug(&d.path().join("link")), slug(&real));
    }

    #[test]
    fn rfc3339() {
        let t = parse_rfc3339("2026-11-27T04:01:06.228Z").unwrap();
        assert_eq!(t.duration_since(UNIX_EPOCH).unwrap().as_millis(), 1795752066228);
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z"), Some(UNIX_EPOCH));
        assert_eq!(parse_rfc3339("1970-01-01T01:00:00+01:00"), Some(UNIX_EPOCH));
        assert_eq!(parse_rfc3339("2000-02-29T00:00:00.5Z").unwrap().duration_since(UNIX_EPOCH).unwrap().as_millis(), 951782400500);
        assert!(parse_rfc3339("not a time").is_none());
        assert!(parse_rfc3339("2026-13-01T00:00:00Z").is_none());
    }

    fn ts_ms(t: SystemTime) -> u128 {
        t.duration_since(UNIX_EPOCH).unwrap().as_millis()
    }

    #[test]
    fn last_entry_skips_untimed_lines_and_partial_tail() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("s.jsonl");
        std::fs::write(
            &p,
            concat!(
                "{\"type\":\"user\",\"timestamp\":\"2026-01-01T00:00:01Z\"}\n",
                "{\"type\":\"assistant\",\"timestamp\":\"2026-01-01T00:00:02.500Z\"}\n",
                "{\"type\":\"mode\",\"mode\":\"normal\"}\n",
                "{\"type\":\"permission-mode\"}\n",
            ),
        )
        .unwrap();
        assert_eq!(ts_ms(last_entry_time(&p).unwrap()), ts_ms(parse_rfc3339("2026-01-01T00:00:02.5Z").unwrap()));
        // A half-written last line is not an entry.
        let mut f = std::fs::OpenOptions::new().append(true).open(&p).unwrap();
        f.write_all(b"{\"type\":\"user\",\"timestamp\":\"2026-01-01T00:00:09Z\",\"message\":{\"con").unwrap();
        assert_eq!(ts_ms(last_entry_time(&p).unwrap()), ts_ms(parse_rfc3339("2026-01-01T00:00:02.5Z").unwrap()));
        assert!(last_entry_time(&d.path().join("missing.jsonl")).is_none());
    }

    #[test]
    fn last_entry_of_a_line_larger_than_the_first_window() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("big.jsonl");
        let huge = "x".repeat(300 * 1024);
        std::fs::write(&p, format!("{{\"timestamp\":\"2026-01-01T00:00:01Z\"}}\n{{\"timestamp\":\"2026-01-01T00:00:05Z\",\"blob\":\"{huge}\"}}\n{{\"type\":\"mode\"}}\n")).unwrap();
        assert_eq!(ts_ms(last_entry_time(&p).unwrap()), ts_ms(parse_rfc3339("2026-01-01T00:00:05Z").unwrap()));
    }

    #[test]
    fn last_entry_from_200_mb_file_reads_only_the_tail() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("huge.jsonl");
        let f = File::create(&p).unwrap();
        // Sparse 200 MB of zeros, then real lines: only a tail read can be fast.
        f.set_len(200 * 1024 * 1024).unwrap();
        drop(f);
        let mut f = std::fs::OpenOptions::new().append(true).open(&p).unwrap();
        f.write_all(b"\n{\"type\":\"assistant\",\"timestamp\":\"2026-11-27T04:01:06.228Z\"}\n{\"type\":\"mode\"}\n").unwrap();
        drop(f);
        let start = std::time::Instant::now();
        let t = last_entry_time(&p);
        let took = start.elapsed();
        println!("last_entry_time on a {} MB file: {:?}", std::fs::metadata(&p).unwrap().len() / (1024 * 1024), took);
        assert_eq!(ts_ms(t.unwrap()), 1795752066228);
    }

    #[test]
    fn codex_session_created_empty_is_matched_once_its_meta_is_written() {
        let d = tempfile::tempdir().unwrap();
        let day = d.path().join("sessions/2026/12/01");
        std::fs::create_dir_all(&day).unwrap();
        let f = day.join("rollout-x.jsonl");
        let mut seen = BTreeMap::new();
        let root = d.path().join("sessions");
        std::fs::write(&f, "").unwrap();
        assert!(codex_session_for(&root, d.path(), &mut seen).is_none());
        let meta = serde_json::json!({"type": "session_meta", "payload": {"cwd": d.path()}}).to_string();
        std::fs::write(&f, &meta).unwrap();
        assert!(codex_session_for(&root, d.path(), &mut seen).is_none(), "a first line still being written is not judged");
        std::fs::write(&f, format!("{meta}\n")).unwrap();
        assert_eq!(codex_session_for(&root, d.path(), &mut seen).unwrap().0, f, "the early look was not cached as a miss");
    }

    #[test]
    fn codex_session_matched_by_cwd_newest_first() {
        let d = tempfile::tempdir().unwrap();
        let sessions = d.path().join("sessions/2026/11/27");
        std::fs::create_dir_all(&sessions).unwrap();
        let work = d.path().join("work");
        let other = d.path().join("other");
        std::fs::create_dir_all(&work).unwrap();
        std::fs::create_dir_all(&other).unwrap();
        std::os::unix::fs::symlink(&work, d.path().join("worklink")).unwrap();
        let meta = |cwd: &Path| format!("{{\"timestamp\":\"2026-11-27T04:01:43.217Z\",\"type\":\"session_meta\",\"payload\":{{\"id\":\"x\",\"cwd\":{:?}}}}}\n{{\"type\":\"event_msg\"}}\n", cwd.display().to_string());
        let a = sessions.join("rollout-a.jsonl");
        let b = sessions.join("rollout-b.jsonl");
        let c = sessions.join("rollout-c.jsonl");
        std::fs::write(&a, meta(&work)).unwrap();
        std::thread::sleep(Duration::from_millis(20));
        std::fs::write(&b, meta(&d.path().join("worklink"))).unwrap();
        std::thread::sleep(Duration::from_millis(20));
        std::fs::write(&c, meta(&other)).unwrap();
        std::fs::write(sessions.join("junk.jsonl"), "not json\n").unwrap();
        let mut seen = BTreeMap::new();
        let root = d.path().join("sessions");
        assert_eq!(codex_session_for(&root, &work, &mut seen).unwrap().0, b, "newest match, compared by real path");
        assert_eq!(codex_session_for(&root, &work, &mut seen).unwrap().0, b, "cached verdicts give the same answer");
        assert_eq!(codex_session_for(&root, &other, &mut BTreeMap::new()).unwrap().0, c);
        assert!(codex_session_for(&root, &d.path().join("none"), &mut BTreeMap::new()).is_none());
        assert_eq!(codex_session_cwd(&a).unwrap(), work);
    }

    #[test]
    fn newest_entry_across_files_counts_subagents() {
        let d = tempfile::tempdir().unwrap();
        let main = d.path().join("s1.jsonl");
        std::fs::write(&main, "{\"type\":\"user\",\"timestamp\":\"2026-01-01T00:00:01Z\"}\n").unwrap();
        let sub = d.path().join("s1/subagents");
        std::fs::create_dir_all(&sub).unwrap();
        std::thread::sleep(Duration::from_millis(20));
        std::fs::write(sub.join("agent-1.jsonl"), "{\"type\":\"assistant\",\"timestamp\":\"2026-01-01T00:10:00Z\"}\n").unwrap();
        let files = jsonl_files(d.path(), true);
        assert_eq!(files.len(), 2);
        assert_eq!(newest_entry(&files), parse_rfc3339("2026-01-01T00:10:00Z"));
        assert_eq!(newest_entry(&jsonl_files(d.path(), false)), parse_rfc3339("2026-01-01T00:00:01Z"));
    }

    #[test]
    fn large_listings_are_reused_briefly_small_ones_never() {
        let l = Listing::new(Duration::from_secs(60));
        let d = tempfile::tempdir().unwrap();
        let a = d.path().join("a.jsonl");
        std::fs::write(&a, "x").unwrap();
        let mut calls = 0;
        for _ in 0..2 {
            l.get(|| {
                calls += 1;
                (vec![a.clone()], 1)
            });
        }
        assert_eq!(calls, 2, "a cheap listing is redone");
        let mut calls = 0;
        for _ in 0..2 {
            let got = l.get(|| {
                calls += 1;
                (vec![a.clone(), d.path().join("gone.jsonl")], 1000)
            });
            assert_eq!(got.len(), 1, "vanished files drop out");
        }
        assert_eq!(calls, 1, "an expensive listing is reused");
    }

    #[test]
    fn claude_echo_only_after_the_mark() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("s.jsonl");
        let user = |t: &str| format!("{}\n", serde_json::json!({"type":"user","message":{"role":"user","content":t},"timestamp":"2026-01-01T00:00:01Z"}));
        std::fs::write(&p, user("hello there")).unwrap();
        let files = vec![p.clone()];
        let mark = Mark::take(&files);
        assert!(!claude_echo_since(&mark, &files, "hello there"), "an older copy does not count");
        let mut f = std::fs::OpenOptions::new().append(true).open(&p).unwrap();
        f.write_all(b"{\"type\":\"mode\",\"mode\":\"normal\"}\n").unwrap();
        f.write_all(serde_json::json!({"type":"assistant","message":{"content":[{"type":"text","text":"hello there"}]}}).to_string().as_bytes()).unwrap();
        f.write_all(b"\n").unwrap();
        assert!(!claude_echo_since(&mark, &files, "hello there"), "an assistant line is not the delivery");
        f.write_all(user("[peerspool task t1 from bob]\nhello there\n  second line").as_bytes()).unwrap();
        assert!(claude_echo_since(&mark, &files, "[peerspool task t1 from bob]\nhello there\nsecond line"));
        assert!(!claude_echo_since(&mark, &files, "something else"));
        // A session file that appeared after the mark is read from its start.
        let q = d.path().join("new.jsonl");
        std::fs::write(&q, user("fresh one")).unwrap();
        assert!(claude_echo_since(&mark, &[p, q], "fresh one"));
        // Content given as parts.
        let r = d.path().join("parts.jsonl");
        std::fs::write(&r, serde_json::json!({"type":"user","message":{"content":[{"type":"text","text":"in parts"}]}}).to_string() + "\n").unwrap();
        assert!(claude_echo_since(&Mark::default(), &[r], "in parts"));
    }
}
