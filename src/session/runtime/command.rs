//! Any terminal program as a peer: argv from the profile, readiness from an
//! optional regex on the screen, activity from an optional glob's mtime.

use super::{newest_mtime, Runtime, Screen, WakeMode};
use crate::registry::profile::{Profile, RuntimeKind};
use std::path::PathBuf;
use std::time::SystemTime;

pub struct Command {
    argv: Vec<String>,
    resume: Option<Vec<String>>,
    ready: Option<regex::Regex>,
    activity: Option<String>,
    cwd: PathBuf,
}

impl Command {
    pub fn new(p: &Profile) -> Self {
        Command {
            argv: p.command.clone().unwrap_or_default(),
            resume: p.resume_command.clone(),
            // validate() already refused a bad pattern.
            ready: p.ready_pattern.as_deref().and_then(|r| crate::registry::profile::ready_regex(r).ok()),
            activity: p.activity.clone(),
            cwd: p.cwd.clone(),
        }
    }
}

impl Runtime for Command {
    fn kind(&self) -> RuntimeKind {
        RuntimeKind::Command
    }

    fn can_resume(&self) -> bool {
        self.resume.is_some()
    }

    fn argv(&self, mode: WakeMode) -> Vec<String> {
        match (mode, &self.resume) {
            (WakeMode::Resume, Some(r)) => r.clone(),
            _ => self.argv.clone(),
        }
    }

    fn screen(&self, pane: &str) -> Screen {
        match &self.ready {
            Some(re) if !re.is_match(pane) => Screen::Booting,
            _ => Screen::Ready,
        }
    }

    /// With a ready pattern: idle when it matches on the last line with
    /// nothing typed after it, a draft when something is, busy otherwise.
    /// Without one nothing can be told, so always idle.
    fn turn_screen(&self, plain: &str, _solid: &str) -> crate::session::turn::ScreenTurn {
        use crate::session::turn::ScreenTurn;
        let Some(re) = &self.ready else { return ScreenTurn::Idle };
        let Some(last) = plain.lines().rev().find(|l| !l.trim().is_empty()) else { return ScreenTurn::Busy };
        match re.find(last) {
            Some(m) if last[m.end()..].trim().is_empty() => ScreenTurn::Idle,
            Some(_) => ScreenTurn::Draft,
            None if re.is_match(&format!("{last} ")) => ScreenTurn::Idle,
            None => ScreenTurn::Busy,
        }
    }

    fn has_activity(&self) -> bool {
        self.activity.is_some()
    }

    fn activity(&self) -> Option<SystemTime> {
        newest_mtime(self.activity.as_deref()?, &self.cwd)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A test-agent-like profile with the `agent> ` prompt.
    fn agent_profile() -> Profile {
        let mut p = Profile::new(RuntimeKind::Command, "/tmp".into());
        p.command = Some(vec!["x".into()]);
        p.ready_pattern = Some("^agent> ".into());
        p
    }

    #[test]
    fn turn_screen_by_the_ready_pattern_on_the_last_line() {
        use crate::session::turn::ScreenTurn;
        let mut p = agent_profile();
        let r = Command::new(&p);
        assert_eq!(r.turn_screen("banner\nagent>", ""), ScreenTurn::Idle, "capture trims the prompt's trailing space");
        assert_eq!(r.turn_screen("agent> \nreceived #1: hi\n\n", ""), ScreenTurn::Busy, "mid-turn: no prompt yet");
        assert_eq!(r.turn_screen("agent> half typed", ""), ScreenTurn::Draft);
        p.ready_pattern = None;
        assert_eq!(Command::new(&p).turn_screen("anything", ""), ScreenTurn::Idle, "nothing to tell by");
    }

    #[test]
    fn ready_pattern_gates_boot() {
        let p = agent_profile();
        let r = Command::new(&p);
        assert_eq!(r.screen("booting...\n"), Screen::Booting);
        assert_eq!(r.screen("hello\nagent> \n"), Screen::Ready);
        assert!(!r.can_resume());
        assert_eq!(r.argv(WakeMode::Resume), vec!["x".to_string()]);
    }

    #[test]
    fn activity_glob_newest_mtime() {
        let d = tempfile::tempdir().unwrap();
        let mut p = Profile::new(RuntimeKind::Command, d.path().into());
        p.command = Some(vec!["x".into()]);
        p.activity = Some("*.log".into());
        let r = Command::new(&p);
        assert!(r.activity().is_none());
        std::fs::write(d.path().join("a.log"), "x").unwrap();
        assert!(r.activity().is_some());
    }
}
