//! The adapter seam: what differs between agent programs. The daemon asks
//! a runtime how to launch and resume, how to read the screen during boot,
//! how to tell that a paste landed and was submitted, and where activity
//! shows. Everything else (tmux, spool, lifecycle) is shared.

pub mod claude;
pub mod codex;
pub mod command;
pub mod transcript;
pub mod turns;

use crate::registry::profile::{Profile, RuntimeKind};
use crate::session::turn::{Record, ScreenTurn};
use std::time::SystemTime;

/// Rendered `fresh`/`resume` in logs, state files and status.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WakeMode {
    #[default]
    Fresh,
    Resume,
}

impl WakeMode {
    pub fn as_str(self) -> &'static str {
        match self {
            WakeMode::Fresh => "fresh",
            WakeMode::Resume => "resume",
        }
    }
}

/// What the boot loop sees on the screen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Screen {
    /// Still starting; look again.
    Booting,
    /// The input surface is ready for a paste.
    Ready,
    /// A known dialog: send these keys (one step), then look again.
    Dialog { name: &'static str, keys: Vec<&'static str> },
    /// A screen we must not answer: the wake fails at once.
    Fatal(String),
    /// A screen only the operator can fix (not logged in, refused as
    /// root): the wake fails once and the peer stays blocked until the
    /// profile changes or `peerspool start` clears it; retrying cannot
    /// change the verdict, so it is not a death.
    Setup(String),
}

pub trait Runtime: Send + Sync {
    fn kind(&self) -> RuntimeKind;
    /// Whether a parked session can be continued rather than started anew.
    fn can_resume(&self) -> bool;
    fn argv(&self, mode: WakeMode) -> Vec<String>;
    /// Inherited variables to drop from the session (`PREFIX*` allowed).
    fn env_remove(&self) -> &'static [&'static str] {
        &[]
    }
    fn screen(&self, pane: &str) -> Screen;
    /// Variables the session needs beyond the profile's, prepared just
    /// before a wake (codex: the peer's own CODEX_HOME).
    fn session_env(&self) -> Result<Vec<(String, String)>, String> {
        Ok(vec![])
    }
    /// The newest activity signal, if any has shown yet (cheap: mtimes).
    fn activity(&self) -> Option<SystemTime>;
    /// When the agent last did something, for idle decisions. Runtimes
    /// that rewrite their record while idle answer with the newest entry's
    /// own timestamp; others fall back to `activity`.
    fn last_entry(&self) -> Option<SystemTime> {
        self.activity()
    }
    /// A position in the runtime's own record, taken before a paste, when
    /// deliveries are confirmed there rather than on the screen.
    fn mark(&self) -> Option<transcript::Mark> {
        None
    }
    /// Whether `text` was recorded as a new user prompt after `mark`.
    fn confirmed_since(&self, _mark: &transcript::Mark, _text: &str) -> bool {
        false
    }
    /// Whether this runtime has an activity signal at all (no signal: the
    /// ready gate and activity-based confirmation are skipped).
    fn has_activity(&self) -> bool {
        true
    }
    /// The paste is visible (compared with the screen before it).
    fn pasted(&self, before: &str, now: &str, text: &str) -> bool {
        pasted_by_tail(before, now, text)
    }
    /// Enter was taken (compared with the screen right after the paste).
    fn submitted(&self, after_paste: &str, now: &str) -> bool {
        norm(after_paste) != norm(now)
    }
    /// The input surface already holds `text`, pasted but not submitted
    /// (a daemon killed between paste and Enter): Enter alone finishes it.
    fn composer_holds(&self, screen: &str, text: &str) -> bool {
        let t = tail(text);
        !t.is_empty() && screen.lines().rev().map(norm).find(|l| !l.is_empty()).is_some_and(|l| l.ends_with(&t))
    }
    /// Whether a second Enter is safe when the first did not show.
    fn reenter(&self) -> bool {
        false
    }
    /// The newest turn boundary in the runtime's own record, if it keeps
    /// one (see `turn::state`).
    fn turn_record(&self) -> Option<Record> {
        None
    }
    /// What the screen says of the turn: `plain` is the text, `solid` the
    /// text without faint placeholders (see `turns::solid`).
    fn turn_screen(&self, _plain: &str, _solid: &str) -> ScreenTurn {
        ScreenTurn::Idle
    }
    /// Whether `text` is in the runtime's record as a prompt at all: proof
    /// that a task arrived (`Some(true)`) or did not (`Some(false)`) before
    /// a retry; `None` where the runtime keeps no record.
    fn recorded(&self, _text: &str) -> Option<bool> {
        None
    }
}

/// Whitespace-folded screen text, so wrapping and tabs do not matter.
pub fn norm(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The last visible bit of a text: up to 24 characters of its last
/// non-blank line, whitespace-folded.
pub fn tail(text: &str) -> String {
    let last = text.lines().rev().map(norm).find(|l| !l.is_empty()).unwrap_or_default();
    let n = last.chars().count();
    last.chars().skip(n.saturating_sub(24)).collect::<String>().trim().to_string()
}

/// Cuts an input box out of a screen: from the last line `starts` accepts
/// up to (not including) the first line `ends` accepts, without the
/// prompt glyph, whitespace-folded.
pub fn input_box(screen: &str, glyph: &str, starts: impl Fn(&str) -> bool, ends: impl Fn(&str) -> bool) -> String {
    let lines: Vec<&str> = screen.lines().collect();
    let Some(i) = lines.iter().rposition(|l| starts(l)) else { return String::new() };
    let end = lines[i..].iter().position(|l| ends(l)).map_or(lines.len(), |n| i + n);
    norm(&lines[i..end].join("\n").replacen(glyph, "", 1))
}

/// Whether an input box (already cut out of the screen and folded) holds
/// our unsubmitted paste: its tail, or the runtime's placeholder for a long
/// paste (`marker`).
pub fn composer_has(composer: &str, marker: &str, text: &str) -> bool {
    let t = tail(text);
    !composer.is_empty() && (composer.contains(marker) || (!t.is_empty() && composer.ends_with(&t)))
}

/// Generic paste confirmation: the text's tail shows up more often than
/// before, or the screen changed and the tail is visible.
pub fn pasted_by_tail(before: &str, now: &str, text: &str) -> bool {
    let t = tail(text);
    let (b, n) = (norm(before), norm(now));
    if t.is_empty() {
        return b != n;
    }
    n.matches(&t).count() > b.matches(&t).count() || (b != n && n.contains(&t))
}

/// Newest mtime among the files a glob matches (relative to `cwd`), the
/// walk bounded (a broad glob must not eat the CPU on every tick).
pub fn newest_mtime(pattern: &str, cwd: &std::path::Path) -> Option<SystemTime> {
    crate::fsx::glob_newest(pattern, cwd, &crate::fsx::ACTIVITY_WALK)
}

/// The adapter for a profile.
pub fn for_profile(p: &Profile) -> Result<Box<dyn Runtime>, String> {
    Ok(match p.runtime {
        RuntimeKind::Command => Box::new(command::Command::new(p)),
        RuntimeKind::Claude => Box::new(claude::Claude::new(p)),
        RuntimeKind::Codex => Box::new(codex::Codex::new(p)),
    })
}

/// The adapter for a peer the daemon runs, with `state` its private state
/// directory (where a runtime keeps per-peer homes).
pub fn for_peer(p: &Profile, state: &std::path::Path) -> Result<Box<dyn Runtime>, String> {
    Ok(match p.runtime {
        RuntimeKind::Codex => Box::new(codex::Codex::isolated(p, codex_home(state))),
        _ => for_profile(p)?,
    })
}

/// A codex peer's own CODEX_HOME under its state directory.
pub fn codex_home(state: &std::path::Path) -> std::path::PathBuf {
    state.join("codex-home")
}

/// The program and extra arguments for an agent runtime: `command` in the
/// profile either starts with an option (extra arguments only) or names
/// the program too; otherwise `$<bin_env>` or `default` is the program.
pub fn program_and_extras(p: &Profile, bin_env: &str, default: &str) -> (String, Vec<String>) {
    let env_bin = || std::env::var(bin_env).ok().filter(|b| !b.is_empty()).unwrap_or_else(|| default.to_string());
    match p.command.as_deref() {
        Some([first, rest @ ..]) if !first.starts_with('-') => (first.clone(), rest.to_vec()),
        Some(all) => (env_bin(), all.to_vec()),
        None => (env_bin(), vec![]),
    }
}

/// The home directory the session will see (a profile may set `HOME`).
pub fn session_home(p: &Profile) -> std::path::PathBuf {
    p.env
        .get("HOME")
        .map(std::path::PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(std::path::PathBuf::from))
        .unwrap_or_else(|| "/".into())
}

/// A directory named by a variable in the profile's env, else the
/// daemon's env, else `home/<fallback>`.
pub fn session_dir(p: &Profile, var: &str, fallback: &str) -> std::path::PathBuf {
    if let Some(v) = p.env.get(var).filter(|v| !v.is_empty()) {
        return v.into();
    }
    if !p.env.contains_key("HOME") {
        if let Some(v) = std::env::var_os(var).filter(|v| !v.is_empty()) {
            return v.into();
        }
    }
    session_home(p).join(fallback)
}

/// One step towards a menu option: Enter when the highlighted line (the
/// one starting with `cursor`) contains `want`, else `step` to move on.
pub fn choose(screen: &str, cursor: char, want: &str, step: &'static str) -> Vec<&'static str> {
    let on = screen.lines().map(str::trim_start).any(|l| l.starts_with(cursor) && l.contains(want));
    vec![if on { "Enter" } else { step }]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tail_is_last_line_end() {
        assert_eq!(tail("first\nsecond line here that is long enough\n\n"), "line here that is long enough".chars().skip(5).collect::<String>());
        assert_eq!(tail("a\tb"), "a b");
    }

    #[test]
    fn composer_holds_only_on_the_input_row() {
        let r = command::Command::new(&{
            let mut p = Profile::new(RuntimeKind::Command, "/tmp".into());
            p.command = Some(vec!["x".into()]);
            p
        });
        assert!(r.composer_holds("received #1\nagent> [peerspool task a from b]\u{23ce}do it\n\n", "[peerspool task a from b]\ndo it"));
        assert!(!r.composer_holds("received #1: do it\nagent> \n", "[peerspool task a from b]\ndo it"));
    }

    #[test]
    fn paste_confirmation() {
        assert!(pasted_by_tail("> ", "> hello world", "hello world"));
        assert!(!pasted_by_tail("> ", "> something else", "hello world"));
        // Already visible from an earlier identical message: needs a new copy.
        assert!(!pasted_by_tail("got hello\n> ", "got hello\n> ", "hello"));
        assert!(pasted_by_tail("got hello\n> ", "got hello\n> hello", "hello"));
    }
}
