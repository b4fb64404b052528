//! tmux transport: one private server per peer (its own socket), one
//! session named `peer`, one pane. Text goes in through a paste buffer
//! loaded from stdin, never through argv or send-keys.

use crate::error::{Error, Result};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;
use tokio::io::AsyncWriteExt;

pub const SESSION: &str = "peer";
pub const TARGET: &str = "peer:0.0";
const CALL_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, Clone)]
pub struct Tmux {
    pub socket: PathBuf,
}

/// The pane's process state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pane {
    pub dead: bool,
    pub status: Option<i32>,
    pub pid: Option<u32>,
}

/// What a session is started with.
#[derive(Debug, Clone)]
pub struct Launch<'a> {
    pub cwd: &'a Path,
    pub argv: &'a [String],
    pub env: BTreeMap<String, String>,
    /// Inherited variables removed from the session (by exact name or `PREFIX*`).
    pub env_remove: &'a [&'a str],
}

fn tmux_err(what: &str, e: impl std::fmt::Display) -> Error {
    Error::io(what, std::io::Error::other(e.to_string()))
}

fn tmux_bin() -> String {
    std::env::var("PEERSPOOL_TMUX").unwrap_or_else(|_| "tmux".into())
}

impl Tmux {
    pub fn new(socket: PathBuf) -> Self {
        Tmux { socket }
    }

    fn command(&self, args: &[&str]) -> tokio::process::Command {
        let mut c = tokio::process::Command::new(tmux_bin());
        c.arg("-S").arg(&self.socket).args(args);
        c.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).kill_on_drop(true);
        c
    }

    async fn output(&self, mut c: tokio::process::Command, input: Option<&[u8]>, what: &str) -> Result<String> {
        if input.is_some() {
            c.stdin(Stdio::piped());
        }
        let mut child = c.spawn().map_err(|e| tmux_err("tmux", e))?;
        if let (Some(bytes), Some(mut stdin)) = (input, child.stdin.take()) {
            stdin.write_all(bytes).await.map_err(|e| tmux_err(what, e))?;
            drop(stdin);
        }
        let out = tokio::time::timeout(CALL_TIMEOUT, child.wait_with_output())
            .await
            .map_err(|_| tmux_err(what, "timed out"))?
            .map_err(|e| tmux_err(what, e))?;
        if !out.status.success() {
            let msg = String::from_utf8_lossy(&out.stderr);
            return Err(tmux_err(what, format!("tmux {what}: {}", msg.trim())));
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    pub async fn run(&self, args: &[&str]) -> Result<String> {
        self.output(self.command(args), None, args.first().copied().unwrap_or("tmux")).await
    }

    /// Starts the server and the session. `remain-on-exit` keeps a dead
    /// pane around so that its exit status can be read and recorded.
    pub async fn start(&self, l: &Launch<'_>) -> Result<()> {
        if let Some(dir) = self.socket.parent() {
            crate::root::mkdir_private(dir)?;
            crate::root::check_private(dir)?;
        }
        let mut args: Vec<String> = [
            "-f", "/dev/null", "start-server", ";",
            "set-option", "-g", "remain-on-exit", "on", ";",
            "set-option", "-g", "status", "off", ";",
            "set-option", "-g", "history-limit", "5000", ";",
            "set-option", "-g", "exit-empty", "off", ";",
            "new-session", "-d", "-s", SESSION, "-x", "220", "-y", "50",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        args.push("-c".into());
        args.push(l.cwd.display().to_string());
        for (k, v) in &l.env {
            args.push("-e".into());
            args.push(format!("{k}={v}"));
        }
        args.push("--".into());
        args.extend(l.argv.iter().cloned());
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        let mut c = self.command(&refs);
        c.env_remove("TMUX").env_remove("TMUX_PANE");
        for (k, _) in std::env::vars_os() {
            let Some(k) = k.to_str() else { continue };
            let drop = l.env_remove.iter().any(|pat| match pat.strip_suffix('*') {
                Some(prefix) => k.starts_with(prefix),
                None => k == *pat,
            });
            if drop {
                c.env_remove(k);
            }
        }
        for (k, v) in &l.env {
            c.env(k, v);
        }
        self.output(c, None, "new-session").await.map(|_| ())
    }

    pub async fn pane(&self) -> Option<Pane> {
        let out = self.run(&["list-panes", "-t", TARGET, "-F", "#{pane_dead} #{pane_dead_status} #{pane_pid}"]).await.ok()?;
        let mut it = out.split_whitespace();
        let dead = it.next()? == "1";
        let (status, pid) = if dead {
            (it.next().and_then(|s| s.parse().ok()), it.next().and_then(|s| s.parse().ok()))
        } else {
            (None, it.next().and_then(|s| s.parse().ok()))
        };
        Some(Pane { dead, status, pid })
    }

    /// The visible screen as plain text (`-e` adds SGR for ghost-text checks).
    pub async fn capture(&self, escapes: bool) -> Result<String> {
        let mut a = vec!["capture-pane", "-p", "-J", "-t", TARGET];
        if escapes {
            a.push("-e");
        }
        self.run(&a).await
    }

    /// Loads `text` into a private buffer from stdin and pastes it
    /// bracketed (`-p`), deleting the buffer afterwards (`-d`).
    pub async fn paste(&self, text: &str) -> Result<()> {
        let c = self.command(&["load-buffer", "-b", "peerspool", "-", ";", "paste-buffer", "-p", "-d", "-b", "peerspool", "-t", TARGET]);
        self.output(c, Some(text.as_bytes()), "paste").await.map(|_| ())
    }

    /// The screen as it was just before the paste, then `paste`, in one
    /// client call: one process spawn fewer on every delivery. The server
    /// runs the commands in order, so the capture cannot include the paste.
    pub async fn capture_then_paste(&self, text: &str) -> Result<String> {
        let c = self.command(&[
            "capture-pane", "-p", "-J", "-t", TARGET, ";",
            "load-buffer", "-b", "peerspool", "-", ";",
            "paste-buffer", "-p", "-d", "-b", "peerspool", "-t", TARGET,
        ]);
        self.output(c, Some(text.as_bytes()), "paste").await
    }

    pub async fn keys(&self, keys: &[&str]) -> Result<()> {
        let mut a = vec!["send-keys", "-t", TARGET];
        a.extend_from_slice(keys);
        self.run(&a).await.map(|_| ())
    }

    /// Whether a human client is attached (deliveries then wait their turn).
    pub async fn attached(&self) -> bool {
        self.run(&["list-clients", "-F", "#{client_name}"]).await.map(|s| !s.trim().is_empty()).unwrap_or(false)
    }

    pub async fn kill(&self) {
        let _ = self.run(&["kill-server"]).await;
        let _ = std::fs::remove_file(&self.socket);
    }

    pub fn kill_server_blocking(&self) {
        let _ = std::process::Command::new(tmux_bin())
            .arg("-S")
            .arg(&self.socket)
            .arg("kill-server")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let _ = std::fs::remove_file(&self.socket);
    }

    pub fn alive_blocking(&self) -> bool {
        self.socket.exists()
            && std::process::Command::new(tmux_bin())
                .arg("-S")
                .arg(&self.socket)
                .args(["has-session", "-t", SESSION])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .map(|s| s.success())
                .unwrap_or(false)
    }

    pub fn version_blocking() -> Option<String> {
        let out = std::process::Command::new(tmux_bin()).arg("-V").output().ok()?;
        out.status.success().then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
    }
}
