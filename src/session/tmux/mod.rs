//! tmux transport: one private server per peer (its own socket), one
//! session named `peer`, one pane. Text goes in through a paste buffer
//! loaded from stdin, never through argv or send-keys.

use crate::error::{Error, Result};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncWriteExt;

pub const SESSION: &str = "peer";
pub const TARGET: &str = "peer:0.0";
const CALL_TIMEOUT: Duration = Duration::from_secs(10);

mod control;
mod shell;
pub mod wedge;
use control::*;

#[derive(Clone)]
pub struct Tmux {
    pub socket: PathBuf,
    ctl: Arc<tokio::sync::Mutex<CtlSlot>>,
}

impl std::fmt::Debug for Tmux {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tmux").field("socket", &self.socket).finish()
    }
}

/// The pane's process state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pane {
    pub dead: bool,
    pub status: Option<i32>,
    /// The signal that ended the program (tmux leaves `status` empty then).
    pub signal: Option<i32>,
    pub pid: Option<u32>,
}

impl Pane {
    /// Dead with neither status nor signal: tmux 3.3a does not record the
    /// exit of a few percent of programs (seen for `exit 3` and SIGKILL
    /// alike, never filled in later).
    pub fn status_unknown(&self) -> bool {
        self.dead && self.status.is_none() && self.signal.is_none()
    }

    /// How the program ended, for logs: `status=N`, `signal=SIGKILL`,
    /// `status=unknown` (tmux did not record it), `gone` (no pane at all).
    pub fn exit(pane: Option<&Pane>) -> String {
        match pane {
            Some(Pane { signal: Some(n), .. }) => format!("signal={}", signal_name(*n)),
            Some(Pane { status: Some(s), .. }) => format!("status={s}"),
            Some(p) if p.status_unknown() => "status=unknown".into(),
            _ => "gone".into(),
        }
    }
}

/// One `list-panes` line: dead flag, exit status, signal, pid (fields
/// empty where they do not apply).
fn parse_pane(line: &str) -> Option<Pane> {
    let mut it = line.lines().next()?.trim().split('|');
    let dead = it.next()? == "1";
    let num = |s: Option<&str>| s.and_then(|s| s.trim().parse::<i32>().ok());
    let (status, signal) = (num(it.next()), num(it.next()));
    let pid = it.next().and_then(|s| s.trim().parse().ok());
    let (status, signal) = if dead { (status, signal) } else { (None, None) };
    Some(Pane { dead, status, signal, pid })
}

fn signal_name(n: i32) -> String {
    let name = match n {
        libc::SIGHUP => "SIGHUP",
        libc::SIGINT => "SIGINT",
        libc::SIGQUIT => "SIGQUIT",
        libc::SIGABRT => "SIGABRT",
        libc::SIGKILL => "SIGKILL",
        libc::SIGSEGV => "SIGSEGV",
        libc::SIGPIPE => "SIGPIPE",
        libc::SIGTERM => "SIGTERM",
        libc::SIGBUS => "SIGBUS",
        _ => return n.to_string(),
    };
    name.into()
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
        Tmux { socket, ctl: Arc::default() }
    }

    /// Runs `args` through the control client; `None` means "not available,
    /// spawn a client instead" (disabled, cannot connect, or it broke).
    /// `None`: run it by spawning instead. A client lost mid-call gives
    /// `None` only for a command that is safe to run twice (`rerun`).
    async fn via_control(&self, args: &[&str], rerun: bool) -> Option<Result<String>> {
        let line = args.iter().map(|a| quote(a)).collect::<Option<Vec<_>>>()?.join(" ");
        let (err, body) = match self.control_all(&[line]).await? {
            Ok(mut a) => a.pop()?,
            Err(_) if rerun => return None,
            Err(e) => return Some(Err(tmux_err(args[0], e))),
        };
        Some(if err { Err(tmux_err(args[0], format!("tmux {}: {}", args[0], body.trim()))) } else { Ok(body) })
    }

    /// `cmds` through the control client. `None`: no client, nothing was
    /// sent. `Some(Err)`: the client was lost mid-call, so what ran is
    /// unknown; it is dropped and the next call connects anew.
    async fn control_all(&self, cmds: &[String]) -> Option<std::io::Result<Vec<(bool, String)>>> {
        if std::env::var_os("PEERSPOOL_TMUX_CONTROL").is_some_and(|v| v == "0") {
            return None;
        }
        let mut slot = self.ctl.lock().await;
        if std::mem::take(&mut slot.busy) {
            slot.ctl = None;
        }
        if slot.ctl.is_none() {
            if slot.failed_at.is_some_and(|t| t.elapsed() < CTL_RETRY) {
                return None;
            }
            match tokio::time::timeout(CTL_CONNECT_TIMEOUT, Control::connect(&self.socket)).await {
                Ok(Ok(c)) => slot.ctl = Some(c),
                r => {
                    let why = r.map_or_else(|_| "timed out".to_string(), |e| e.err().map(|e| e.to_string()).unwrap_or_default());
                    tracing::debug!(socket = %self.socket.display(), error = %why, "tmux control client not connected; spawning clients for a while");
                    slot.failed_at = Some(std::time::Instant::now());
                    return None;
                }
            }
        }
        slot.busy = true;
        let c = slot.ctl.as_mut()?;
        let r = match tokio::time::timeout(CTL_TIMEOUT, c.call_all(cmds)).await {
            Ok(r) => r,
            Err(_) => Err(std::io::Error::new(std::io::ErrorKind::TimedOut, "control client timed out")),
        };
        slot.busy = false;
        if let Err(e) = &r {
            tracing::debug!(socket = %self.socket.display(), error = %e, "tmux control client lost");
            slot.ctl = None;
            slot.failed_at = Some(std::time::Instant::now());
        }
        Some(r)
    }

    async fn drop_control(&self) {
        *self.ctl.lock().await = CtlSlot::default();
    }

    /// A command through the control client, else a spawned client.
    async fn call(&self, args: &[&str]) -> Result<String> {
        self.call_with(args, true).await
    }

    /// `rerun` false for a command with an effect (keys): not run a second
    /// time by spawning when the control client was lost after sending it.
    async fn call_with(&self, args: &[&str], rerun: bool) -> Result<String> {
        match self.via_control(args, rerun).await {
            Some(r) => r,
            None => self.run(args).await,
        }
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
        self.drop_control().await;
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
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        // Before new-session: its one-word command runs through this shell.
        args.extend(["set-option", "-g", "default-shell"].map(String::from));
        args.push(shell::for_daemon().display().to_string());
        args.push(";".into());
        args.extend(["new-session", "-d", "-s", SESSION, "-x", "220", "-y", "50"].map(String::from));
        args.push("-c".into());
        args.push(l.cwd.display().to_string());
        for (k, v) in &l.env {
            args.push("-e".into());
            args.push(format!("{k}={v}"));
        }
        args.push("--".into());
        args.extend(l.argv.iter().cloned());
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        let command = || {
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
            c
        };
        match self.output(command(), None, "new-session").await {
            Err(e) if e.to_string().contains(wedge::SYMPTOM) => {
                // A wedged server holds the socket: end it, start once more.
                self.end_wedged("tmux server refused every client while exiting").await;
                self.output(command(), None, "new-session").await.map(|_| ())
            }
            r => r.map(|_| ()),
        }
    }

    pub async fn pane(&self) -> Option<Pane> {
        let out = self.call(&["list-panes", "-t", TARGET, "-F", "#{pane_dead}|#{pane_dead_status}|#{pane_dead_signal}|#{pane_pid}"]).await.ok()?;
        parse_pane(&out)
    }

    /// The visible screen as plain text (`-e` adds SGR for ghost-text checks).
    pub async fn capture(&self, escapes: bool) -> Result<String> {
        let mut a = vec!["capture-pane", "-p", "-J", "-t", TARGET];
        if escapes {
            a.push("-e");
        }
        self.call(&a).await
    }

    /// Loads `text` into a private buffer from stdin and pastes it
    /// bracketed (`-p`), deleting the buffer afterwards (`-d`).
    pub async fn paste(&self, text: &str) -> Result<()> {
        let mut c = self.command(&["load-buffer", "-b", "peerspool", "-", ";", "paste-buffer", "-p", "-d", "-b", "peerspool", "-t", TARGET]);
        die_with_parent(&mut c);
        self.output(c, Some(text.as_bytes()), "paste").await.map(|_| ())
    }

    /// The screen as it was just before the paste, then `paste`, in one
    /// client call: one process spawn fewer on every delivery. The server
    /// runs the commands in order, so the capture cannot include the paste.
    pub async fn capture_then_paste(&self, text: &str) -> Result<String> {
        if let Some(r) = self.capture_then_paste_control(text).await {
            return r;
        }
        let mut c = self.command(&[
            "capture-pane", "-p", "-J", "-t", TARGET, ";",
            "load-buffer", "-b", "peerspool", "-", ";",
            "paste-buffer", "-p", "-d", "-b", "peerspool", "-t", TARGET,
        ]);
        die_with_parent(&mut c);
        self.output(c, Some(text.as_bytes()), "paste").await
    }

    /// With a control client the capture, the buffer and the paste are
    /// one write and three answers, no process spawned. The text travels
    /// on the control client's stdin, never in an argv.
    async fn capture_then_paste_control(&self, text: &str) -> Option<Result<String>> {
        let Some(q) = quote_text(text) else {
            let before = match self.via_control(&["capture-pane", "-p", "-J", "-t", TARGET], true).await? {
                Ok(b) => b,
                Err(e) => return Some(Err(e)),
            };
            return Some(self.paste(text).await.map(|_| before));
        };
        let cmds = [
            format!("capture-pane -p -J -t {TARGET}"),
            format!("set-buffer -b peerspool -- {q}"),
            format!("paste-buffer -p -d -b peerspool -t {TARGET}"),
        ];
        let answers = match self.control_all(&cmds).await? {
            Ok(a) => a,
            // Not retried by spawning: the paste may already have run.
            Err(e) => return Some(Err(tmux_err("paste", e))),
        };
        if let Some((_, msg)) = answers.iter().find(|(err, _)| *err) {
            return Some(Err(tmux_err("paste", format!("tmux paste: {}", msg.trim()))));
        }
        answers.into_iter().next().map(|(_, before)| Ok(before))
    }

    pub async fn keys(&self, keys: &[&str]) -> Result<()> {
        let mut a = vec!["send-keys", "-t", TARGET];
        a.extend_from_slice(keys);
        self.call_with(&a, false).await.map(|_| ())
    }

    /// Whether a human client is attached (deliveries then wait their turn).
    pub async fn attached(&self) -> bool {
        // The daemon's own control client is not a human.
        self.run(&["list-clients", "-F", "#{?client_control_mode,,#{client_name}}"]).await.map(|s| !s.trim().is_empty()).unwrap_or(false)
    }

    pub async fn kill(&self) {
        self.drop_control().await;
        let _ = self.run(&["kill-server"]).await;
        // The server exits just after answering: give it a moment.
        for _ in 0..10 {
            if self.remove_stale_socket(false) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // Told to exit and still there: waiting for a client that never
        // leaves (see `wedge`). It was asked to end; end it.
        if self.server_may_run() && self.run(&["list-sessions"]).await.is_err_and(|e| e.to_string().contains(wedge::SYMPTOM)) {
            self.end_wedged("tmux server did not exit after kill-server").await;
        }
        self.remove_stale_socket(true);
    }

    /// Ends a wedged server and its clients (see `wedge`), then waits up
    /// to a second for its socket to go stale, and removes it.
    async fn end_wedged(&self, why: &str) {
        let n = wedge::unwedge(&self.socket);
        tracing::warn!(socket = %self.socket.display(), processes = n, "{why}: ended it and its clients");
        for _ in 0..50 {
            if self.remove_stale_socket(false) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub fn kill_server_blocking(&self) {
        let _ = std::process::Command::new(tmux_bin())
            .arg("-S")
            .arg(&self.socket)
            .arg("kill-server")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        for _ in 0..10 {
            if self.remove_stale_socket(false) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.remove_stale_socket(true);
    }

    /// Removes the socket only when no server listens on it any more. A
    /// `kill-server` that failed (no descriptor left to spawn the client, a
    /// timeout) leaves the server and its agent running: without their
    /// socket they could never be reached or reaped again.
    /// Whether a server may still be listening on the socket: a refused
    /// or missing socket says no; an answer, or no way to tell (out of
    /// descriptors), says it may.
    pub fn server_may_run(&self) -> bool {
        !matches!(
            std::os::unix::net::UnixStream::connect(&self.socket).map_err(|e| e.kind()),
            Err(std::io::ErrorKind::ConnectionRefused | std::io::ErrorKind::NotFound)
        )
    }

    /// Returns whether the socket is gone now; `warn`: say why it is kept.
    fn remove_stale_socket(&self, warn: bool) -> bool {
        match std::os::unix::net::UnixStream::connect(&self.socket) {
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                let _ = std::fs::remove_file(&self.socket);
                true
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => true,
            Err(e) => {
                if warn {
                    tracing::warn!(socket = %self.socket.display(), error = %e, "tmux socket kept: cannot tell whether its server still runs");
                }
                false
            }
            Ok(_) => {
                if warn {
                    tracing::warn!(socket = %self.socket.display(), "tmux socket kept: its server still runs after kill-server");
                }
                false
            }
        }
    }

    /// Whether the session runs. A socket no server listens on (a server
    /// that died) is told by a refused connect, without a tmux process.
    pub fn alive_blocking(&self) -> bool {
        std::os::unix::net::UnixStream::connect(&self.socket).is_ok()
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pane_exit_by_status_or_signal() {
        let by_signal = parse_pane("1||9|4242\n").unwrap();
        assert_eq!(by_signal, Pane { dead: true, status: None, signal: Some(9), pid: Some(4242) });
        assert_eq!(Pane::exit(Some(&by_signal)), "signal=SIGKILL");
        let by_status = parse_pane("1|3||4242").unwrap();
        assert_eq!(Pane::exit(Some(&by_status)), "status=3");
        let live = parse_pane("0|||77").unwrap();
        assert_eq!((live.dead, live.pid), (false, Some(77)));
        assert_eq!(Pane::exit(None), "gone");
        // Dead, and tmux never recorded how: said so, not "gone".
        let unrecorded = parse_pane("1|||4242\n").unwrap();
        assert!(unrecorded.status_unknown() && !by_signal.status_unknown());
        assert_eq!(Pane::exit(Some(&unrecorded)), "status=unknown");
    }

    #[test]
    fn text_quoting_keeps_every_byte_literal() {
        assert_eq!(quote_text("a'b\nc\td $x ~ #{y};").as_deref(), Some("'a'\"'\"'b'\"\\n\"'c\td $x ~ #{y};'"));
        assert_eq!(quote_text("").as_deref(), Some("''"));
        assert_eq!(quote_text("bell\x07"), None, "control characters go the spawned way");
        assert_eq!(quote_text(&"x".repeat(CONTROL_TEXT_MAX + 1)), None, "so do long texts");
    }

    #[test]
    fn quoting_refuses_what_a_command_line_cannot_carry() {
        assert_eq!(quote("peer:0.0").as_deref(), Some("'peer:0.0'"));
        assert_eq!(quote("a'b"), None);
        assert_eq!(quote("a\nb"), None);
    }

    /// Commands go through the persistent control client (which is not
    /// counted as a human attached) and see the same screen as a spawned
    /// client would.
    #[tokio::test]
    async fn control_client_runs_commands_and_is_not_a_human() {
        let d = tempfile::tempdir().unwrap();
        let t = Tmux::new(d.path().join("s"));
        // Stops the server even when an assertion fails.
        struct Guard(Tmux);
        impl Drop for Guard {
            fn drop(&mut self) {
                self.0.kill_server_blocking();
            }
        }
        let _guard = Guard(t.clone());
        let argv = vec!["cat".to_string()];
        t.start(&Launch { cwd: d.path(), argv: &argv, env: BTreeMap::new(), env_remove: &[] }).await.unwrap();
        let before = t.capture_then_paste("pasted-text").await.unwrap();
        assert!(!before.contains("pasted-text"));
        assert!(t.ctl.lock().await.ctl.is_some(), "control client connected");
        t.keys(&["Enter"]).await.unwrap();
        let mut seen = String::new();
        for _ in 0..100 {
            seen = t.capture(false).await.unwrap();
            if seen.matches("pasted-text").count() >= 2 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // cat echoes the line back: typed once, printed once.
        assert_eq!(seen.matches("pasted-text").count(), 2, "{seen}");
        assert!(!t.attached().await);
        assert!(t.capture(false).await.is_ok());
        t.kill().await;
        assert!(t.ctl.lock().await.ctl.is_none());
        assert!(t.capture(false).await.is_err(), "server is gone");
    }
}
