//! Claude Code: `claude --dangerously-skip-permissions [--continue]`,
//! transcripts under `<config>/projects/<slug>/`, deliveries confirmed by
//! the prompt showing up in a new transcript line.

use super::transcript::{self, Mark};
use super::{choose, pasted_by_tail, program_and_extras, session_dir, Runtime, Screen, WakeMode};
use crate::registry::profile::{Profile, RuntimeKind};
use std::path::PathBuf;
use std::time::SystemTime;

pub const BIN_ENV: &str = "PEERSPOOL_CLAUDE_BIN";
const GLYPH: char = '❯';
const NOT_LOGGED_IN: &str = "not-logged-in";

pub struct Claude {
    program: String,
    extras: Vec<String>,
    /// `<config>/projects/<slug>`: this peer's transcripts.
    project: PathBuf,
    /// Every transcript there, sub-agents' included.
    all: transcript::Listing,
}

impl Claude {
    pub fn new(p: &Profile) -> Self {
        let (program, extras) = program_and_extras(p, BIN_ENV, "claude");
        let config = session_dir(p, "CLAUDE_CONFIG_DIR", ".claude");
        let project = config.join("projects").join(transcript::slug(&p.cwd));
        Claude { program, extras, project, all: transcript::Listing::new(std::time::Duration::from_secs(2)) }
    }

    pub fn project_dir(&self) -> &std::path::Path {
        &self.project
    }

    fn all_transcripts(&self) -> Vec<(PathBuf, SystemTime)> {
        self.all.get(|| {
            let files: Vec<PathBuf> = transcript::jsonl_files(&self.project, true).into_iter().map(|(p, _)| p).collect();
            let n = files.len();
            (files, n)
        })
    }

    /// Session transcripts (top level of the project directory).
    fn sessions(&self) -> Vec<PathBuf> {
        transcript::jsonl_files(&self.project, false).into_iter().map(|(p, _)| p).collect()
    }
}

/// Screens that must not be answered: the wake fails at once; the
/// operator's own (login, root) block the peer.
fn fatal(s: &str) -> Option<Screen> {
    if s.contains("cannot be used with root/sudo privileges") {
        return Some(Screen::Setup("claude refuses --dangerously-skip-permissions as root (inside a sandbox set IS_SANDBOX=1 in the peer's env)".into()));
    }
    if s.contains("Detected a custom API key") {
        return Some(Screen::Setup(format!("{NOT_LOGGED_IN}: claude asks whether to use the API key from the environment; answer it once in an interactive claude")));
    }
    let login = ["Not logged in", "Please run /login", "Select login method", "Claude account with subscription", "Anthropic Console account", "Paste code here", "Invalid API key", "OAuth error"];
    if let Some(hit) = login.iter().find(|m| s.contains(*m)) {
        return Some(Screen::Setup(format!("{NOT_LOGGED_IN}: screen shows {hit:?}; run claude once by hand and log in")));
    }
    if s.contains("Unable to connect to Anthropic services") {
        return Some(Screen::Fatal("claude cannot reach Anthropic services (first-run check failed)".into()));
    }
    None
}

fn is_rule(l: &str) -> bool {
    let t = l.trim();
    t.chars().count() >= 8 && t.chars().all(|c| matches!(c, '─' | '━' | '╭' | '╮'))
}

/// The part of the screen the program is drawing now: its input box (the
/// prompt framed by rules) and what is under it, or else the last box
/// (a dialog). Transcript text above it, a resumed session's history
/// included, is never judged: an old "Invalid API key" or "Enter to
/// confirm" there says nothing about the live screen.
pub fn live(screen: &str) -> String {
    let lines: Vec<&str> = screen.lines().collect();
    let boxed = (1..lines.len()).rev().find(|&p| lines[p].starts_with(GLYPH) && is_rule(lines[p - 1]) && lines[p + 1..].iter().any(|l| is_rule(l)));
    let start = match boxed {
        Some(p) => p - 1,
        None => lines.iter().rposition(|l| is_rule(l)).unwrap_or(0),
    };
    lines[start..].join("\n")
}

/// A known boot dialog and the next key towards the safe answer.
fn dialog(s: &str) -> Option<Screen> {
    let d = |name, keys| Some(Screen::Dialog { name, keys });
    if s.contains("Yes, I trust this folder") || (s.contains("trust this folder") && s.contains("Enter to confirm")) {
        return d("trust-folder", choose(s, GLYPH, "Yes, I trust", "Down"));
    }
    if s.contains("Bypass Permissions mode") && s.contains("Yes, I accept") {
        // The default, "No, exit", quits the program.
        return d("bypass-permissions", choose(s, GLYPH, "Yes, I accept", "Down"));
    }
    if s.contains("Resume from summary") || s.contains("resume from summary") {
        // The default compacts; the second option resumes the full session.
        return d("resume-from-summary", choose(s, GLYPH, "2.", "Down"));
    }
    if s.contains("Choose the text style") || (s.contains("text style") && s.contains("Dark mode")) {
        return d("text-style", vec!["Enter"]);
    }
    if s.contains("Allow external CLAUDE.md file imports?") {
        return d("external-imports", vec!["Enter"]);
    }
    if s.contains("I am using this for local development") {
        return d("local-development", vec!["Enter"]);
    }
    if (s.contains("MCP server") || s.contains("MCP servers")) && s.contains("found in") {
        return d("new-mcp-server", vec!["Enter"]);
    }
    None
}

/// The input box: from the last line starting with the prompt glyph up
/// to the rule drawn under it.
pub fn composer(screen: &str) -> String {
    super::input_box(screen, &GLYPH.to_string(), |l| l.trim_start().starts_with(GLYPH), |l| l.trim_start().starts_with('─'))
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
    // An unknown menu: do not mistake its cursor for the prompt.
    if s.contains("Enter to confirm") || s.contains("Esc to cancel") {
        return Screen::Booting;
    }
    let prompt = s.lines().any(|l| l.trim_start().starts_with(GLYPH));
    let footer = s.contains("bypass permissions on");
    if prompt && footer {
        Screen::Ready
    } else {
        Screen::Booting
    }
}

impl Runtime for Claude {
    fn kind(&self) -> RuntimeKind {
        RuntimeKind::Claude
    }

    /// `--continue` with no conversation recorded here exits at once.
    fn can_resume(&self) -> bool {
        !self.sessions().is_empty()
    }

    fn argv(&self, mode: WakeMode) -> Vec<String> {
        let mut a = vec![self.program.clone(), "--dangerously-skip-permissions".into()];
        if mode == WakeMode::Resume {
            // `--resume <id>` became a search query in 2.1.169.
            a.push("--continue".into());
        }
        a.extend(self.extras.iter().cloned());
        a
    }

    fn env_remove(&self) -> &'static [&'static str] {
        // With these inherited, the child writes no transcript.
        &["CLAUDECODE", "CLAUDE_CODE_*"]
    }

    fn screen(&self, pane: &str) -> Screen {
        classify(pane)
    }

    fn activity(&self) -> Option<SystemTime> {
        transcript::newest(&self.all_transcripts()).map(|(_, t)| *t)
    }

    fn last_entry(&self) -> Option<SystemTime> {
        transcript::newest_entry(&self.all_transcripts())
    }

    fn pasted(&self, before: &str, now: &str, text: &str) -> bool {
        let (b, n) = (composer(before), composer(now));
        b != n && (n.contains("[Pasted text") || pasted_by_tail(&b, &n, text))
    }

    fn composer_holds(&self, screen: &str, text: &str) -> bool {
        super::composer_has(&composer(screen), "[Pasted text", text)
    }

    fn submitted(&self, after_paste: &str, now: &str) -> bool {
        composer(after_paste) != composer(now)
    }

    fn reenter(&self) -> bool {
        true
    }

    fn mark(&self) -> Option<Mark> {
        Some(Mark::take(&self.sessions()))
    }

    fn confirmed_since(&self, mark: &Mark, text: &str) -> bool {
        transcript::claude_echo_since(mark, &self.sessions(), text)
    }

    fn turn_record(&self) -> Option<crate::session::turn::Record> {
        let files = transcript::jsonl_files(&self.project, false);
        super::turns::claude_record(&transcript::newest(&files)?.0)
    }

    fn turn_screen(&self, plain: &str, solid: &str) -> crate::session::turn::ScreenTurn {
        turn_screen(plain, solid)
    }

    fn recorded(&self, text: &str) -> Option<bool> {
        Some(transcript::claude_echo_since(&Mark::default(), &self.sessions(), text))
    }
}

/// Hints claude draws in an empty input box.
const HINTS: &[&str] = &["Press up to edit queued messages"];

pub fn turn_screen(plain: &str, solid: &str) -> crate::session::turn::ScreenTurn {
    use crate::session::turn::ScreenTurn;
    if matches!(classify(plain), Screen::Dialog { .. }) {
        return ScreenTurn::Dialog;
    }
    let live = live(plain);
    if live.contains("esc to interrupt") {
        return ScreenTurn::Busy;
    }
    if live.contains("Enter to confirm") || live.contains("Esc to cancel") {
        return ScreenTurn::Dialog;
    }
    let typed = composer(solid);
    if !typed.is_empty() && !HINTS.contains(&typed.as_str()) {
        return ScreenTurn::Draft;
    }
    ScreenTurn::Idle
}

#[cfg(test)]
mod tests {
    use super::*;

    macro_rules! screen {
        ($n:literal) => {
            include_str!(concat!("../../../tests/fixtures/screens/claude/", $n, ".txt"))
        };
    }

    fn dialog_keys(s: &str) -> (&'static str, Vec<&'static str>) {
        match classify(s) {
            Screen::Dialog { name, keys } => (name, keys),
            other => panic!("expected a dialog, got {other:?}"),
        }
    }

    #[test]
    fn trust_dialog_moves_off_the_exit_default_then_confirms() {
        assert_eq!(dialog_keys(screen!("trust-folder")), ("trust-folder", vec!["Down"]));
        assert_eq!(dialog_keys(screen!("trust-folder-down")), ("trust-folder", vec!["Enter"]));
    }

    #[test]
    fn bypass_dialog_chooses_yes_i_accept() {
        assert_eq!(dialog_keys(screen!("bypass-permissions")), ("bypass-permissions", vec!["Down"]));
        assert_eq!(dialog_keys(screen!("bypass-permissions-down")), ("bypass-permissions", vec!["Enter"]));
    }

    #[test]
    fn turn_screens_from_the_real_cli() {
        use super::super::turns::{plain, solid};
        use crate::session::turn::ScreenTurn;
        let at = |e: &str| turn_screen(&plain(e), &solid(e));
        assert_eq!(at(screen!("busy-queued")), ScreenTurn::Busy);
        assert_eq!(at(screen!("idle-e")), ScreenTurn::Idle);
        assert_eq!(at(screen!("draft-e")), ScreenTurn::Draft);
        assert_eq!(at(screen!("ready-api-key")), ScreenTurn::Idle);
        assert_eq!(at(screen!("trust-folder")), ScreenTurn::Dialog);
        assert_eq!(at(screen!("pasted")), ScreenTurn::Draft, "an unsubmitted paste is text in the input");
    }

    #[test]
    fn history_above_the_input_box_is_not_judged() {
        let resumed = screen!("resumed-continue");
        let old = "❯ hello from peerspool test 1";
        assert!(resumed.contains(old));
        let noisy = resumed.replace(old, "❯ Invalid API key · Please run /login\n  Enter to confirm · Esc to cancel\n  Yes, I trust this folder");
        assert_eq!(classify(&noisy), Screen::Ready);
        // The live footer still counts.
        assert!(matches!(classify(screen!("not-logged-in-prompt")), Screen::Setup(_)));
        // A dialog drawn under history is judged alone.
        let dialog = format!("{noisy}\n{}", screen!("bypass-permissions"));
        assert!(live(&dialog).starts_with("───") && !live(&dialog).contains("Invalid API key"));
        assert_eq!(classify(&dialog), Screen::Dialog { name: "bypass-permissions", keys: vec!["Down"] });
    }

    #[test]
    fn login_screens_fail_the_wake() {
        for s in [screen!("not-logged-in-prompt"), screen!("api-key-confirm")] {
            match classify(s) {
                Screen::Setup(r) => assert!(r.starts_with("not-logged-in"), "{r}"),
                other => panic!("expected not-logged-in, got {other:?}"),
            }
        }
        for s in [screen!("offline-first-run"), screen!("offline-onboarding-apikey")] {
            assert!(matches!(classify(s), Screen::Fatal(r) if r.contains("cannot reach Anthropic")));
        }
        assert!(matches!(classify("--dangerously-skip-permissions cannot be used with root/sudo privileges for security reasons"), Screen::Setup(r) if r.contains("IS_SANDBOX")));
    }

    #[test]
    fn ready_prompt_recognised() {
        for s in [screen!("ready-api-key"), screen!("resumed-continue"), screen!("after-submit")] {
            assert_eq!(classify(s), Screen::Ready);
        }
        assert_eq!(classify(""), Screen::Booting);
        // The cursor of an unknown menu is not the prompt.
        assert_eq!(classify("  ❯ 1. Something new\n    2. Other\n  Enter to confirm · Esc to cancel\n  bypass permissions on"), Screen::Booting);
    }

    #[test]
    fn other_known_dialogs() {
        assert_eq!(dialog_keys("Resume from summary (recommended)\n❯ 1. Resume from summary\n  2. Resume full session as-is\n"), ("resume-from-summary", vec!["Down"]));
        assert_eq!(dialog_keys("Resume from summary (recommended)\n  1. Resume from summary\n❯ 2. Resume full session as-is\n"), ("resume-from-summary", vec!["Enter"]));
        assert_eq!(dialog_keys("Choose the text style that looks best with your terminal\n❯ 1. Dark mode"), ("text-style", vec!["Enter"]));
        assert_eq!(dialog_keys("New MCP server found in .mcp.json: files\n❯ 1. Use this and all future MCP servers in this project").0, "new-mcp-server");
    }

    #[test]
    fn paste_and_submit_seen_in_the_composer() {
        let rt = Claude::new(&Profile::new(RuntimeKind::Claude, "/tmp".into()));
        let ready = screen!("ready-api-key");
        assert!(rt.pasted(ready, screen!("pasted"), "hello from peerspool test 1"));
        assert!(!rt.pasted(ready, ready, "hello from peerspool test 1"));
        assert!(rt.submitted(screen!("pasted"), screen!("after-submit")));
        assert!(!rt.submitted(screen!("pasted"), screen!("pasted")));
        // A long paste shows as a marker, not as its text.
        let text: String = (1..=40).map(|i| format!("line of a long pasted task {i}\n")).collect();
        assert!(rt.pasted(screen!("resumed-continue"), screen!("pasted-multiline"), &text));
        assert!(rt.submitted(screen!("pasted-multiline"), screen!("after-submit-multiline")));
        assert_eq!(composer(ready), "");
        assert_eq!(composer(screen!("pasted")), "hello from peerspool test 1");
        // After a daemon kill between paste and Enter: only Enter is owed.
        assert!(rt.composer_holds(screen!("pasted"), "hello from peerspool test 1"));
        assert!(rt.composer_holds(screen!("pasted-multiline"), &text));
        assert!(!rt.composer_holds(ready, "hello from peerspool test 1"));
        assert!(!rt.composer_holds(screen!("after-submit"), "hello from peerspool test 1"));
    }

    #[test]
    fn argv_env_and_paths() {
        let d = tempfile::tempdir().unwrap();
        let mut p = Profile::new(RuntimeKind::Claude, d.path().join("w"));
        std::fs::create_dir(d.path().join("w")).unwrap();
        p.env.insert("HOME".into(), d.path().display().to_string());
        p.command = Some(vec!["--model".into(), "opus".into()]);
        let rt = Claude::new(&p);
        let bin = std::env::var(BIN_ENV).unwrap_or_else(|_| "claude".into());
        assert_eq!(rt.argv(WakeMode::Fresh), vec![bin.clone(), "--dangerously-skip-permissions".into(), "--model".into(), "opus".into()]);
        assert_eq!(rt.argv(WakeMode::Resume)[..3], [bin, "--dangerously-skip-permissions".to_string(), "--continue".to_string()]);
        p.command = Some(vec!["/opt/claude".into(), "--verbose".into()]);
        assert_eq!(Claude::new(&p).argv(WakeMode::Fresh), vec!["/opt/claude", "--dangerously-skip-permissions", "--verbose"]);
        assert!(rt.env_remove().contains(&"CLAUDE_CODE_*") && rt.env_remove().contains(&"CLAUDECODE"));
        assert_eq!(rt.project_dir(), d.path().join(".claude/projects").join(transcript::slug(&d.path().join("w"))));
    }

    #[test]
    fn transcript_activity_subagents_and_echo() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir(d.path().join("w")).unwrap();
        let mut p = Profile::new(RuntimeKind::Claude, d.path().join("w"));
        p.env.insert("HOME".into(), d.path().display().to_string());
        let rt = Claude::new(&p);
        assert!(rt.activity().is_none() && rt.last_entry().is_none());
        assert!(!rt.can_resume(), "nothing to continue");
        let proj = rt.project_dir().to_path_buf();
        std::fs::create_dir_all(proj.join("s1/subagents")).unwrap();
        let main = proj.join("s1.jsonl");
        std::fs::write(&main, "{\"type\":\"user\",\"message\":{\"content\":\"old\"},\"timestamp\":\"2026-01-01T00:00:00Z\"}\n").unwrap();
        let mark = rt.mark().unwrap();
        assert!(rt.can_resume());
        let a0 = rt.activity().unwrap();
        std::thread::sleep(std::time::Duration::from_millis(20));
        std::fs::write(proj.join("s1/subagents/agent-a.jsonl"), "{\"type\":\"assistant\",\"timestamp\":\"2026-01-01T01:00:00Z\"}\n").unwrap();
        assert!(rt.activity().unwrap() > a0, "a sub-agent transcript is activity");
        assert_eq!(rt.last_entry(), transcript::parse_rfc3339("2026-01-01T01:00:00Z"));
        assert!(!rt.confirmed_since(&mark, "new task"));
        // A sub-agent's prompt is not our delivery.
        std::fs::write(proj.join("s1/subagents/agent-b.jsonl"), "{\"type\":\"user\",\"message\":{\"content\":\"new task\"}}\n").unwrap();
        assert!(!rt.confirmed_since(&mark, "new task"));
        let mut f = std::fs::OpenOptions::new().append(true).open(&main).unwrap();
        std::io::Write::write_all(&mut f, b"{\"type\":\"user\",\"message\":{\"content\":\"new task\"},\"timestamp\":\"2026-01-01T02:00:00Z\"}\n").unwrap();
        assert!(rt.confirmed_since(&mark, "new task"));
    }
}
