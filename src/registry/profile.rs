//! `peers/<name>/peer.json`: how a peer is launched and watched.

use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RuntimeKind {
    Claude,
    Codex,
    Command,
}

impl RuntimeKind {
    pub fn as_str(self) -> &'static str {
        match self {
            RuntimeKind::Claude => "claude",
            RuntimeKind::Codex => "codex",
            RuntimeKind::Command => "command",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WakePolicy {
    #[default]
    Warm,
    Ephemeral,
}

/// What a delivery pastes: agents read the header (who asked, where the
/// reply goes); a plain program (a shell, a REPL) would try to run it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Envelope {
    #[default]
    Header,
    Text,
}

impl Envelope {
    fn is_default(&self) -> bool {
        *self == Envelope::Header
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    pub runtime: RuntimeKind,
    pub cwd: PathBuf,
    #[serde(default)]
    pub wake_policy: WakePolicy,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<Vec<String>>,
    /// For `command`: argv used instead of `command` when resuming a parked
    /// session (absent: the runtime cannot resume and always starts fresh).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resume_command: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub activity: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready_pattern: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub initial_prompt: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idle_secs: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quiet_secs: Option<f64>,
    /// A human also types into this session (`peerspool attach`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub human: bool,
    #[serde(default, skip_serializing_if = "Envelope::is_default")]
    pub envelope: Envelope,
    /// One turn running longer than this is reported as stuck.
    #[serde(default = "default_max_turn_secs", skip_serializing_if = "is_default_max_turn")]
    pub max_turn_secs: f64,
    /// Reap a stuck turn's session (default: report only).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub reap_stuck: bool,
    /// This peer's messages past this many hops are not delivered
    /// (default: the daemon's `PEERSPOOL_MAX_HOPS`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_hops: Option<u32>,
}

/// Four hours: generous, since agents run long builds and test suites.
pub const DEFAULT_MAX_TURN_SECS: f64 = 4.0 * 3600.0;

fn default_max_turn_secs() -> f64 {
    DEFAULT_MAX_TURN_SECS
}

fn is_default_max_turn(v: &f64) -> bool {
    *v == DEFAULT_MAX_TURN_SECS
}

impl Profile {
    pub fn new(runtime: RuntimeKind, cwd: PathBuf) -> Self {
        Profile {
            runtime,
            cwd,
            wake_policy: WakePolicy::Warm,
            command: None,
            resume_command: None,
            activity: None,
            ready_pattern: None,
            initial_prompt: None,
            env: BTreeMap::new(),
            idle_secs: None,
            quiet_secs: None,
            human: false,
            envelope: Envelope::Header,
            max_turn_secs: DEFAULT_MAX_TURN_SECS,
            reap_stuck: false,
            max_hops: None,
        }
    }

    /// Semantic checks serde cannot express. Returns warnings that do not
    /// make the profile unusable.
    pub fn validate(&self) -> std::result::Result<Vec<String>, String> {
        if !self.cwd.is_absolute() {
            return Err(format!("cwd {:?} is not an absolute path", self.cwd));
        }
        for (k, argv) in [("command", &self.command), ("resume_command", &self.resume_command)] {
            if argv.as_ref().is_some_and(|a| a.is_empty() || a[0].is_empty()) {
                return Err(format!("{k} must be a non-empty argv array"));
            }
        }
        if self.runtime == RuntimeKind::Command && self.command.is_none() {
            return Err("runtime \"command\" needs a \"command\" argv array".into());
        }
        if let Some(re) = &self.ready_pattern {
            ready_regex(re).map_err(|e| format!("ready_pattern is not a valid regex: {}", one_line(&e.to_string())))?;
        }
        if let Some(g) = &self.activity {
            glob::Pattern::new(g).map_err(|e| format!("activity is not a valid glob: {e}"))?;
        }
        for k in self.env.keys() {
            if k.is_empty() || k.contains('=') || k.contains('\0') {
                return Err(format!("env key {k:?} is not a valid variable name"));
            }
        }
        for (k, v) in [("idle_secs", self.idle_secs), ("quiet_secs", self.quiet_secs), ("max_turn_secs", Some(self.max_turn_secs))] {
            if v.is_some_and(|v| !(v.is_finite() && v > 0.0)) {
                return Err(format!("{k} must be a positive number"));
            }
        }
        let mut warn = vec![];
        if self.wake_policy == WakePolicy::Ephemeral && self.human {
            warn.push("ephemeral peer declares a human interface: its session is reaped after every task, so a human's typing is lost".into());
        }
        if !self.cwd.is_dir() {
            warn.push(format!("cwd {} does not exist (yet)", self.cwd.display()));
        }
        Ok(warn)
    }

    pub fn load(path: &Path) -> Result<Self> {
        let err = |reason: String| Error::Profile { path: path.into(), reason };
        let md = std::fs::symlink_metadata(path).map_err(|e| err(e.to_string()))?;
        if !md.is_file() {
            return Err(err("is not a regular file".into()));
        }
        if md.len() > 256 * 1024 {
            return Err(err("is larger than 256 KiB".into()));
        }
        let bytes = crate::fsx::read_bounded(path, 256 * 1024).map_err(|e| err(e.to_string()))?;
        let p: Profile = serde_json::from_slice(&bytes).map_err(|e| err(e.to_string()))?;
        p.validate().map_err(err)?;
        Ok(p)
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_default() + "\n"
    }
}

/// Patterns compiled so far, kept at most this many (cleared when full).
const READY_CACHE_MAX: usize = 64;

/// A `ready_pattern` compiled (multi-line, as the command runtime matches
/// it), shared by every peer using the same pattern. Compiling builds a
/// full DFA: three compiles per peer (load, validate, runtime) were most
/// of the daemon's CPU before `daemon ready` with 1,000 peers of one
/// pattern. A `Regex` clone shares the compiled program and is safe to
/// use from many threads. Errors are not kept: a bad pattern is rare.
pub fn ready_regex(re: &str) -> std::result::Result<regex::Regex, regex::Error> {
    static CACHE: std::sync::Mutex<BTreeMap<String, regex::Regex>> = std::sync::Mutex::new(BTreeMap::new());
    if let Some(r) = CACHE.lock().unwrap_or_else(|p| p.into_inner()).get(re) {
        return Ok(r.clone());
    }
    let r = regex::RegexBuilder::new(re).multi_line(true).build()?;
    let mut c = CACHE.lock().unwrap_or_else(|p| p.into_inner());
    if c.len() >= READY_CACHE_MAX {
        c.clear();
    }
    c.insert(re.to_string(), r.clone());
    Ok(r)
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cmd() -> Profile {
        let mut p = Profile::new(RuntimeKind::Command, "/tmp".into());
        p.command = Some(vec!["cat".into()]);
        p
    }

    /// The shared compile is the pattern itself, multi-line, past the
    /// cache's bound too; a bad pattern is still refused.
    #[test]
    fn ready_regex_is_shared_and_still_refuses_bad_patterns() {
        for i in 0..READY_CACHE_MAX + 2 {
            let r = ready_regex(&format!("^p{i}> ")).expect("valid");
            assert!(r.is_match(&format!("banner\np{i}> ")), "multi-line: {i}");
            assert!(!r.is_match("banner\nother> "));
        }
        assert_eq!(ready_regex("^agent> ").map(|r| r.as_str().to_string()).ok().as_deref(), Some("^agent> "));
        assert!(ready_regex("(unclosed").is_err());
        let mut p = cmd();
        p.ready_pattern = Some("(unclosed".into());
        assert!(p.validate().is_err());
    }

    #[test]
    fn command_runtime_needs_argv_and_absolute_cwd() {
        assert!(cmd().validate().is_ok());
        let mut p = cmd();
        p.command = None;
        assert!(p.validate().unwrap_err().contains("command"));
        let mut p = cmd();
        p.cwd = "rel/dir".into();
        assert!(p.validate().unwrap_err().contains("absolute"));
    }

    #[test]
    fn bad_regex_and_unknown_fields_are_refused() {
        let mut p = cmd();
        p.ready_pattern = Some("(".into());
        assert!(p.validate().unwrap_err().contains("ready_pattern"));
        let e = serde_json::from_str::<Profile>(r#"{"runtime":"command","cwd":"/","bogus":1}"#);
        assert!(e.is_err());
    }

    #[test]
    fn ephemeral_with_human_warns() {
        let mut p = cmd();
        p.wake_policy = WakePolicy::Ephemeral;
        p.human = true;
        assert_eq!(p.validate().unwrap().len(), 1);
    }

    #[test]
    fn roundtrips() {
        let p = cmd();
        assert_eq!(serde_json::from_str::<Profile>(&p.to_json()).unwrap(), p);
    }
}
