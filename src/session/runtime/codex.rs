//! Codex: `codex [resume --last] --no-alt-screen -C <cwd>
//! --dangerously-bypass-approvals-and-sandbox`, sessions under
//! `<CODEX_HOME>/sessions/**` matched to the peer by the cwd in their
//! first line, deliveries confirmed on the screen.

use super::transcript;
use super::{choose, pasted_by_tail, program_and_extras, session_dir, Runtime, Screen, WakeMode};
use crate::registry::profile::{Profile, RuntimeKind};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::SystemTime;

pub const BIN_ENV: &str = "PEERSPOOL_CODEX_BIN";
const GLYPH: &str = "› ";
const NOT_LOGGED_IN: &str = "not-logged-in";

pub struct Codex {
    program: String,
    extras: Vec<String>,
    cwd: PathBuf,
    sessions: PathBuf,
    /// The peer's own CODEX_HOME and the user's it borrows from.
    overlay: Option<Overlay>,
    /// Each session file's "started in our cwd" verdict, read once.
    seen: Mutex<BTreeMap<PathBuf, bool>>,
    /// Our newest session file, looked up again every 2 s at most.
    found: transcript::Listing,
}

/// What a peer's own CODEX_HOME borrows from the user's: settings and
/// login, never sessions, logs, history or the app-server's state.
const BORROWED: &[&str] = &["config.toml", "auth.json", "AGENTS.md", "instructions.md", "prompts", "skills", "rules", "hooks.json"];

/// A per-peer CODEX_HOME. Codex runs tools in one app-server per
/// CODEX_HOME, which keeps the environment of the session that started
/// it and outlives it: two peers sharing `~/.codex` would run each
/// other's `peerspool reply` (as the wrong peer). Each peer gets a home of
/// its own whose settings and login are links to the user's.
#[derive(Debug, Clone)]
pub struct Overlay {
    pub source: PathBuf,
    pub dir: PathBuf,
}

impl Overlay {
    /// Links what is borrowed; leaves a file codex itself replaced.
    pub fn prepare(&self) -> std::io::Result<()> {
        crate::root::mkdir_private(&self.dir).map_err(std::io::Error::other)?;
        for name in BORROWED {
            let (from, to) = (self.source.join(name), self.dir.join(name));
            let here = std::fs::symlink_metadata(&to);
            if !from.exists() {
                if here.is_ok_and(|m| m.file_type().is_symlink()) {
                    std::fs::remove_file(&to)?;
                }
                continue;
            }
            match here {
                Ok(m) if m.file_type().is_symlink() => {
                    if std::fs::read_link(&to)? != from {
                        std::fs::remove_file(&to)?;
                        std::os::unix::fs::symlink(&from, &to)?;
                    }
                }
                Ok(_) => {}
                Err(_) => std::os::unix::fs::symlink(&from, &to)?,
            }
        }
        Ok(())
    }
}

impl Codex {
    pub fn new(p: &Profile) -> Self {
        let (program, extras) = program_and_extras(p, BIN_ENV, "codex");
        let home = session_dir(p, "CODEX_HOME", ".codex");
        Codex { program, extras, cwd: p.cwd.clone(), sessions: home.join("sessions"), overlay: None, seen: Mutex::new(BTreeMap::new()), found: transcript::Listing::new(std::time::Duration::from_secs(2)) }
    }

    /// The adapter for a peer whose CODEX_HOME is `dir` (see `Overlay`).
    pub fn isolated(p: &Profile, dir: PathBuf) -> Self {
        let source = session_dir(p, "CODEX_HOME", ".codex");
        Codex { sessions: dir.join("sessions"), overlay: Some(Overlay { source, dir }), ..Codex::new(p) }
    }

    /// Every rollout file this peer's sessions wrote (its own CODEX_HOME
    /// holds only its own), for confirming a prompt.
    fn rollouts(&self) -> Vec<PathBuf> {
        transcript::jsonl_files(&self.sessions, true).into_iter().map(|(p, _)| p).collect()
    }

    fn session(&self) -> Option<(PathBuf, SystemTime)> {
        let found = self.found.get(|| {
            let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
            let files = transcript::jsonl_files(&self.sessions, true);
            let n = files.len();
            (transcript::codex_session_in(files, &self.cwd, &mut seen).into_iter().map(|(p, _)| p).collect(), n)
        });
        found.into_iter().next()
    }
}

fn fatal(s: &str) -> Option<Screen> {
    let login = ["Sign in with ChatGPT", "Sign in with Device Code", "Sign in another way", "Provide your own API key", "Log in with ChatGPT"];
    login
        .iter()
        .find(|m| s.contains(*m))
        .map(|hit| Screen::Setup(format!("{NOT_LOGGED_IN}: screen shows {hit:?}; run `codex login` (an OPENAI_API_KEY in the environment alone is not enough)")))
}

/// Whether line `i` is the input row rather than a menu's cursor line.
fn input_row(lines: &[&str], i: usize) -> bool {
    lines[i].starts_with(GLYPH) && !lines[i][GLYPH.len()..].split_once(". ").is_some_and(|(n, _)| !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()))
}

/// The part of the screen codex is drawing now: from the input row down
/// when there is one, else the whole screen (onboarding and dialogs are
/// drawn alone). History above the input row, a resumed session's
/// included, is never judged.
pub fn live(screen: &str) -> String {
    let lines: Vec<&str> = screen.lines().collect();
    match (0..lines.len()).rev().find(|&i| input_row(&lines, i)) {
        Some(i) => lines[i..].join("\n"),
        None => screen.to_string(),
    }
}

fn dialog(s: &str) -> Option<Screen> {
    let d = |name, keys| Some(Screen::Dialog { name, keys });
    if s.contains("Update available") {
        // Option 2 skips the update; the default would run the installer.
        return d("update-available", choose(s, '›', "2.", "2"));
    }
    if s.contains("Trust this folder?") || s.contains("Do you trust the contents of this directory") {
        let safe = if s.contains("Trust and continue") { "Trust and continue" } else { "Yes" };
        return d("trust-directory", choose(s, '›', safe, "Up"));
    }
    if s.contains("Hooks need review") || s.contains("hooks need review") {
        return d("hooks-review", vec!["Down", "Enter"]);
    }
    None
}

/// The input row: the last line starting with `› ` and its continuation
/// lines up to the first blank one.
pub fn composer(screen: &str) -> String {
    // The first line is never blank, so the box has at least that line.
    super::input_box(screen, GLYPH, |l| l.starts_with(GLYPH), |l| l.trim().is_empty())
}

pub fn classify(screen: &str) -> Screen {
    let live = live(screen);
    let s = live.as_str();
    if let Some(f) = fatal(s) {
        return f;
    }
    if let Some(d) = dialog(s) {
        return d;
    }
    if s.contains("Press enter to continue") {
        return Screen::Booting;
    }
    let lines: Vec<&str> = s.lines().collect();
    // A numbered choice under the cursor is a menu, not the input row.
    let Some(i) = lines.iter().rposition(|l| l.starts_with(GLYPH)) else { return Screen::Booting };
    // While starting, the row already shows but an Enter waits ("Waiting
    // for startup"); the status line (model · cwd) comes with the start.
    let started = lines[i + 1..].iter().any(|l| l.contains(" · "));
    if input_row(&lines, i) && started {
        Screen::Ready
    } else {
        Screen::Booting
    }
}

impl Runtime for Codex {
    fn kind(&self) -> RuntimeKind {
        RuntimeKind::Codex
    }

    /// `resume --last` needs a session recorded for this cwd.
    fn can_resume(&self) -> bool {
        self.session().is_some()
    }

    fn argv(&self, mode: WakeMode) -> Vec<String> {
        let mut a = vec![self.program.clone()];
        if mode == WakeMode::Resume {
            a.extend(["resume".into(), "--last".into()]);
        }
        a.extend(["--no-alt-screen".into(), "-C".into(), self.cwd.display().to_string(), "--dangerously-bypass-approvals-and-sandbox".into()]);
        a.extend(self.extras.iter().cloned());
        a
    }

    fn screen(&self, pane: &str) -> Screen {
        classify(pane)
    }

    fn session_env(&self) -> Result<Vec<(String, String)>, String> {
        let Some(o) = &self.overlay else { return Ok(vec![]) };
        o.prepare().map_err(|e| format!("cannot prepare the peer's CODEX_HOME {}: {e}", o.dir.display()))?;
        Ok(vec![("CODEX_HOME".into(), o.dir.display().to_string())])
    }

    fn activity(&self) -> Option<SystemTime> {
        self.session().map(|(_, t)| t)
    }

    fn last_entry(&self) -> Option<SystemTime> {
        let (p, t) = self.session()?;
        transcript::last_entry_time(&p).or(Some(t))
    }

    fn pasted(&self, before: &str, now: &str, text: &str) -> bool {
        let (b, n) = (composer(before), composer(now));
        b != n && (n.contains("[Pasted Content") || pasted_by_tail(&b, &n, text))
    }

    fn composer_holds(&self, screen: &str, text: &str) -> bool {
        super::composer_has(&composer(screen), "[Pasted Content", text)
    }

    fn submitted(&self, after_paste: &str, now: &str) -> bool {
        // Taken, and held until startup ends: submitting again would double it.
        composer(after_paste) != composer(now) || now.contains("Waiting for startup")
    }

    fn reenter(&self) -> bool {
        true
    }

    fn mark(&self) -> Option<transcript::Mark> {
        Some(transcript::Mark::take(&self.rollouts()))
    }

    /// Delivered means the turn started with it: a user prompt recorded.
    fn confirmed_since(&self, mark: &transcript::Mark, text: &str) -> bool {
        super::turns::codex_echo_since(mark, &self.rollouts(), text)
    }

    fn turn_record(&self) -> Option<crate::session::turn::Record> {
        super::turns::codex_record(&self.session()?.0)
    }

    fn turn_screen(&self, plain: &str, solid: &str) -> crate::session::turn::ScreenTurn {
        turn_screen(plain, solid)
    }

    fn recorded(&self, text: &str) -> Option<bool> {
        Some(super::turns::codex_echo_since(&transcript::Mark::default(), &self.rollouts(), text))
    }
}

/// How far above the input row the status ("Working … esc to interrupt")
/// and queued-message lines are looked for.
const STATUS_ABOVE: usize = 8;

pub fn turn_screen(plain: &str, solid: &str) -> crate::session::turn::ScreenTurn {
    use crate::session::turn::ScreenTurn;
    let lines: Vec<&str> = plain.lines().collect();
    let Some(i) = (0..lines.len()).rev().find(|&i| input_row(&lines, i)) else {
        return if matches!(classify(plain), Screen::Dialog { .. }) || plain.contains("Press enter to continue") { ScreenTurn::Dialog } else { ScreenTurn::Busy };
    };
    let above: Vec<&str> = lines[..i].iter().rev().filter(|l| !l.trim().is_empty()).take(STATUS_ABOVE).copied().collect();
    if above.iter().chain(&lines[i..]).any(|l| l.contains("esc to interrupt")) {
        return ScreenTurn::Busy;
    }
    if !composer(solid).is_empty() {
        return ScreenTurn::Draft;
    }
    ScreenTurn::Idle
}

#[cfg(test)]
mod tests {
    use super::*;

    macro_rules! screen {
        ($n:literal) => {
            include_str!(concat!("../../../tests/fixtures/screens/codex/", $n, ".txt"))
        };
    }

    #[test]
    fn login_screens_fail_the_wake() {
        for s in [screen!("login"), screen!("login-apikey-env")] {
            assert!(matches!(classify(s), Screen::Setup(r) if r.starts_with("not-logged-in")));
        }
    }

    #[test]
    fn turn_screens_from_the_real_cli() {
        use super::super::turns::{plain, solid};
        use crate::session::turn::ScreenTurn;
        let at = |e: &str| turn_screen(&plain(e), &solid(e));
        assert_eq!(at(screen!("busy-queued")), ScreenTurn::Busy);
        assert_eq!(at(screen!("idle-e")), ScreenTurn::Idle, "the faint placeholder is not a draft");
        assert_eq!(at(screen!("draft-e")), ScreenTurn::Draft);
        assert_eq!(at(screen!("trust-folder")), ScreenTurn::Dialog);
        assert_eq!(at(screen!("login")), ScreenTurn::Dialog);
    }

    #[test]
    fn history_above_the_input_row_is_not_judged() {
        let ready = screen!("ready");
        let noisy = ready.replace("To get started", "› Sign in with ChatGPT · Press enter to continue · Trust this folder?\n  To get started");
        assert_ne!(noisy, ready);
        assert_eq!(classify(&noisy), Screen::Ready);
        assert!(matches!(classify(screen!("login")), Screen::Setup(_)));
    }

    #[test]
    fn trust_dialog_is_not_the_input_row() {
        assert_eq!(classify(screen!("trust-folder")), Screen::Dialog { name: "trust-directory", keys: vec!["Enter"] });
        assert_eq!(classify(screen!("ready-after-trust")), Screen::Ready);
        let old = "Do you trust the contents of this directory?\n  1. Yes, continue\n› 2. No, quit\n\n  Press enter to continue";
        assert_eq!(classify(old), Screen::Dialog { name: "trust-directory", keys: vec!["Up"] });
    }

    #[test]
    fn update_and_hooks_dialogs() {
        let up = "✨ Update available! 0.171.0 -> 0.999.0\n› 1. Update now\n  2. Skip\n  3. Skip until next version\n\n  Press enter to continue";
        assert_eq!(classify(up), Screen::Dialog { name: "update-available", keys: vec!["2"] });
        assert_eq!(classify(&up.replace("› 1.", "  1.").replace("  2. Skip\n", "› 2. Skip\n")), Screen::Dialog { name: "update-available", keys: vec!["Enter"] });
        assert!(matches!(classify("2 hooks need review before they can run.\n› 1. Review"), Screen::Dialog { name: "hooks-review", .. }));
        assert_eq!(classify("Loading...\n  Press enter to continue\n› x"), Screen::Booting);
    }

    #[test]
    fn ready_row_recognised() {
        for s in [screen!("ready"), screen!("ready-after-trust"), screen!("after-submit"), screen!("after-submit-multiline")] {
            assert_eq!(classify(s), Screen::Ready);
        }
        // The input row shows before startup has finished: not ready yet.
        assert_eq!(classify(screen!("starting")), Screen::Booting);
        assert_eq!(classify("WARNING: proceeding\n"), Screen::Booting);
    }

    #[test]
    fn paste_and_submit_seen_in_the_input_row() {
        let rt = Codex::new(&Profile::new(RuntimeKind::Codex, "/tmp".into()));
        assert_eq!(composer(screen!("starting")), "Ask Codex to do anything");
        assert!(rt.pasted(screen!("starting"), screen!("pasted"), "hello from peerspool codex 1"));
        assert!(!rt.pasted(screen!("ready"), screen!("ready"), "hello from peerspool codex 1"));
        // An Enter during startup is held by codex, not lost.
        assert!(rt.submitted(screen!("pasted"), screen!("waiting-for-startup")));
        assert!(rt.submitted(screen!("pasted"), screen!("after-submit")));
        assert!(!rt.submitted(screen!("pasted"), screen!("pasted")));
        let text: String = (1..=40).map(|i| format!("line of a long pasted task {i}\n")).collect();
        assert!(rt.pasted(screen!("after-submit"), screen!("pasted-multiline"), &text));
        assert!(rt.submitted(screen!("pasted-multiline"), screen!("after-submit-multiline")));
        assert!(rt.composer_holds(screen!("pasted"), "hello from peerspool codex 1"));
        assert!(rt.composer_holds(screen!("pasted-multiline"), &text));
        assert!(!rt.composer_holds(screen!("starting"), "hello from peerspool codex 1"));
        assert!(!rt.composer_holds(screen!("after-submit"), "hello from peerspool codex 1"));
    }

    #[test]
    fn argv_and_session_matching() {
        let d = tempfile::tempdir().unwrap();
        let w = d.path().join("w");
        std::fs::create_dir(&w).unwrap();
        let mut p = Profile::new(RuntimeKind::Codex, w.clone());
        p.env.insert("CODEX_HOME".into(), d.path().join("ch").display().to_string());
        let rt = Codex::new(&p);
        let bin = std::env::var(BIN_ENV).unwrap_or_else(|_| "codex".into());
        let tail = ["--no-alt-screen".to_string(), "-C".into(), w.display().to_string(), "--dangerously-bypass-approvals-and-sandbox".into()];
        assert_eq!(rt.argv(WakeMode::Fresh), [vec![bin.clone()], tail.to_vec()].concat());
        assert_eq!(rt.argv(WakeMode::Resume), [vec![bin, "resume".into(), "--last".into()], tail.to_vec()].concat());
        assert!(rt.activity().is_none());
        assert!(!rt.can_resume());
        let day = d.path().join("ch/sessions/2026/11/27");
        std::fs::create_dir_all(&day).unwrap();
        let meta = serde_json::json!({"timestamp":"2026-11-27T04:01:43.217Z","type":"session_meta","payload":{"cwd": w}});
        let f = day.join("rollout-1.jsonl");
        std::fs::write(&f, format!("{meta}\n{{\"timestamp\":\"2026-11-27T04:05:00Z\",\"type\":\"event_msg\"}}\n")).unwrap();
        std::fs::write(day.join("rollout-0.jsonl"), format!("{}\n", serde_json::json!({"type":"session_meta","payload":{"cwd":"/elsewhere"}}))).unwrap();
        assert_eq!(rt.activity(), transcript::file_mtime(&f));
        assert!(rt.can_resume());
        assert_eq!(rt.last_entry(), transcript::parse_rfc3339("2026-11-27T04:05:00Z"));
    }
}
