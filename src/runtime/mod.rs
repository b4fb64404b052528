//! The adapter seam: what differs between agent programs. The daemon asks
//! a runtime how to launch and resume, how to read the screen during boot,
//! how to tell that a paste landed and was submitted, and where activity
//! shows. Everything else (tmux, spool, lifecycle) is shared.

pub mod command;

use crate::profile::{Profile, RuntimeKind};
use std::time::SystemTime;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WakeMode {
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
    /// A screen we must not answer (e.g. login): the wake fails at once.
    Fatal(String),
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
    /// The newest activity signal, if any has shown yet.
    fn activity(&self) -> Option<SystemTime>;
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

/// Newest mtime among the files a glob matches (relative to `cwd`).
pub fn newest_mtime(pattern: &str, cwd: &std::path::Path) -> Option<SystemTime> {
    let full = if pattern.starts_with('/') { pattern.to_string() } else { format!("{}/{pattern}", cwd.display()) };
    glob::glob(&full)
        .ok()?
        .filter_map(|p| p.ok())
        .filter_map(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok())
        .max()
}

/// The adapter for a profile. claude and codex get their own adapters;
/// until then they refuse to wake with a clear reason.
pub fn for_profile(p: &Profile) -> Result<Box<dyn Runtime>, String> {
    match p.runtime {
        RuntimeKind::Command => Ok(Box::new(command::Command::new(p))),
        other => Err(format!("runtime {:?} has no adapter in this build", other.as_str())),
    }
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
