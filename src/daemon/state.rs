//! The daemon's per-peer markers under `<root>/state/peers/<name>/`. They
//! are files so that CLI verbs (stop/start, status, reply) and a restarted
//! daemon see the same truth. Not part of the public contract.

use crate::error::{IoContext, Result};
use serde::{Deserialize, Serialize};
use crate::session::runtime::WakeMode;
use crate::session::turn::TurnState;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub const DEATHS_KEPT: usize = 16;
pub const TOPICS_KEPT: usize = 16;
/// No marker the daemon writes comes near this; a bigger one is not ours.
const MARKER_MAX: u64 = 1 << 20;

pub fn now_ms() -> u64 {
    ms(SystemTime::now())
}

pub fn ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

pub fn from_ms(ms: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(ms)
}

/// The task a session is working on: what `peerspool reply` answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Current {
    pub id: String,
    pub from: String,
    pub reply_to: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topic: Option<String>,
}

/// A live session as the daemon last recorded it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session {
    pub woke_at_ms: u64,
    pub mode: WakeMode,
    #[serde(default)]
    pub delivered: u64,
    #[serde(default)]
    pub armed_at_ms: Option<u64>,
    #[serde(default)]
    pub last_delivery_ms: Option<u64>,
    /// Ephemeral: the one task this session exists for.
    #[serde(default)]
    pub task: Option<String>,
}

/// What the live session is doing, as delivery last saw it, and the task
/// that waits for it (shown by `status`).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct TurnView {
    pub state: TurnState,
    pub since_ms: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub waiting: Option<Waiting>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Waiting {
    pub task: String,
    pub since_ms: u64,
    pub why: String,
}

/// Why a wake of a parked peer resumed: the park mark remembers topics.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Park {
    pub at_ms: u64,
    #[serde(default)]
    pub topics: Vec<String>,
}

/// A boot in progress, for `peerspool status`: what it waits for, since
/// when, and the screen's last line.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Booting {
    pub since_ms: u64,
    pub deadline_secs: u64,
    pub waiting_for: String,
    #[serde(default)]
    pub last_line: String,
}

impl Booting {
    pub fn describe(&self, now_ms: u64) -> String {
        let mut s = format!("booting: waiting for {} ({} s of {})", self.waiting_for, now_ms.saturating_sub(self.since_ms) / 1000, self.deadline_secs);
        if !self.last_line.is_empty() {
            s.push_str(&format!(", screen: {}", self.last_line));
        }
        s
    }
}

#[derive(Debug, Clone)]
pub struct PeerState {
    pub dir: PathBuf,
}

fn read_json<T: for<'de> Deserialize<'de>>(p: &Path) -> Option<T> {
    crate::fsx::read_bounded(p, MARKER_MAX).ok().and_then(|b| serde_json::from_slice(&b).ok())
}

/// Replaces a small file atomically (write a temp sibling, rename).
pub fn replace_file(p: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = p.with_extension("tmp~");
    crate::root::write_private(&tmp, bytes).at(&tmp)?;
    fs::rename(&tmp, p).at(p)
}

pub fn write_json<T: Serialize>(p: &Path, v: &T) -> Result<()> {
    replace_file(p, &serde_json::to_vec(v).unwrap_or_default())
}

impl PeerState {
    pub fn new(root: &crate::root::Root, peer: &str) -> Self {
        PeerState { dir: root.peer_state(peer) }
    }

    pub fn ensure(&self) -> Result<()> {
        crate::root::mkdir_private(&self.dir)
    }

    fn p(&self, n: &str) -> PathBuf {
        self.dir.join(n)
    }

    pub fn stopped(&self) -> bool {
        self.p("stopped").exists()
    }

    pub fn set_stopped(&self, on: bool) -> Result<()> {
        self.ensure()?;
        let p = self.p("stopped");
        if on {
            crate::root::write_private(&p, format!("{}\n", now_ms())).at(&p)
        } else {
            match fs::remove_file(&p) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(crate::Error::io(p, e)),
                _ => Ok(()),
            }
        }
    }

    pub fn park(&self) -> Option<Park> {
        read_json(&self.p("park.json"))
    }

    pub fn set_park(&self, park: Option<&Park>) -> Result<()> {
        match park {
            Some(pk) => write_json(&self.p("park.json"), pk),
            None => {
                let _ = fs::remove_file(self.p("park.json"));
                Ok(())
            }
        }
    }

    pub fn fresh_next(&self) -> bool {
        self.p("fresh-next").exists()
    }

    pub fn clear_fresh_next(&self) {
        let _ = fs::remove_file(self.p("fresh-next"));
    }

    pub fn deaths(&self) -> Vec<u64> {
        read_json(&self.p("deaths.json")).unwrap_or_default()
    }

    pub fn record_death(&self, at_ms: u64) -> Result<Vec<u64>> {
        let mut d = self.deaths();
        d.push(at_ms);
        let n = d.len().saturating_sub(DEATHS_KEPT);
        d.drain(..n);
        write_json(&self.p("deaths.json"), &d)?;
        Ok(d)
    }

    pub fn clear_deaths(&self) {
        let _ = fs::remove_file(self.p("deaths.json"));
    }

    pub fn session(&self) -> Option<Session> {
        read_json(&self.p("session.json"))
    }

    pub fn set_session(&self, s: Option<&Session>) -> Result<()> {
        match s {
            Some(s) => write_json(&self.p("session.json"), s),
            None => {
                let _ = fs::remove_file(self.p("session.json"));
                Ok(())
            }
        }
    }

    pub fn current(&self) -> Option<Current> {
        read_json(&self.p("current.json"))
    }

    pub fn set_current(&self, c: Option<&Current>) -> Result<()> {
        match c {
            Some(c) => write_json(&self.p("current.json"), c),
            None => {
                let _ = fs::remove_file(self.p("current.json"));
                Ok(())
            }
        }
    }

    pub fn booting(&self) -> Option<Booting> {
        read_json(&self.p("booting.json"))
    }

    pub fn set_booting(&self, b: Option<&Booting>) {
        self.put_json("booting.json", b);
    }

    /// Writes a state file whole (`Some`) or removes it (`None`). Best
    /// effort: these files are for `status`, not for delivery.
    fn put_json<T: Serialize>(&self, name: &str, v: Option<&T>) {
        match v {
            Some(v) => {
                let _ = write_json(&self.p(name), v);
            }
            None => {
                let _ = fs::remove_file(self.p(name));
            }
        }
    }

    /// A one-line state file, replaced whole (a waiter reads it at any
    /// moment), or removed; read back trimmed, empty as absent.
    fn put_line(&self, name: &str, line: Option<&str>) {
        match line {
            Some(w) => {
                let _ = replace_file(&self.p(name), format!("{w}\n").as_bytes());
            }
            None => {
                let _ = fs::remove_file(self.p(name));
            }
        }
    }

    fn line(&self, name: &str) -> Option<String> {
        crate::fsx::read_string_bounded(&self.p(name), MARKER_MAX).ok().map(|s| s.trim().to_string()).filter(|s| !s.is_empty())
    }

    /// Last activity the daemon observed (ms), for status.
    pub fn activity_ms(&self) -> Option<u64> {
        crate::fsx::read_string_bounded(&self.p("activity"), MARKER_MAX).ok().and_then(|s| s.trim().parse().ok())
    }

    pub fn set_activity_ms(&self, at: u64) {
        let _ = crate::root::write_private(&self.p("activity"), format!("{at}\n"));
    }

    pub fn turn(&self) -> Option<TurnView> {
        read_json(&self.p("turn.json"))
    }

    pub fn set_turn(&self, t: Option<&TurnView>) {
        self.put_json("turn.json", t);
    }

    /// A wake verdict only the operator can change (not logged in): kept
    /// across restarts, cleared by a changed profile or `peerspool start`.
    pub fn setup_block(&self) -> Option<String> {
        self.line("setup-blocked")
    }

    pub fn set_setup_block(&self, why: Option<&str>) {
        self.put_line("setup-blocked", why);
    }

    /// Why the last wake was refused or failed (crash-loop, boot failure).
    pub fn blocked(&self) -> Option<String> {
        self.line("blocked")
    }

    pub fn set_blocked(&self, why: Option<&str>) {
        self.put_line("blocked", why);
    }

    /// Why outbox messages are held back (the loop guard's pair rate).
    pub fn held(&self) -> Option<String> {
        fs::read_to_string(self.p("held")).ok().map(|s| s.trim().to_string()).filter(|s| !s.is_empty())
    }

    /// Written only when it changes: routing calls this on every pass.
    pub fn set_held(&self, why: Option<&str>) {
        match why {
            Some(w) if self.held().as_deref() != Some(w) => {
                let _ = replace_file(&self.p("held"), format!("{w}\n").as_bytes());
            }
            Some(_) => {}
            None => {
                if self.p("held").exists() {
                    let _ = fs::remove_file(self.p("held"));
                }
            }
        }
    }
}
