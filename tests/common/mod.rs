//! Test harness: a private root, the real binary, a real tmux server per
//! peer, the built-in agent as the fake peer. Everything started here is
//! stopped in Drop by the ids it was started with, even when a test fails.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_peerspool");

pub struct Env {
    pub dir: tempfile::TempDir,
    pub root: PathBuf,
    pub work: PathBuf,
    pub daemon: Option<Child>,
    pub vars: Vec<(String, String)>,
    /// Removed from every command's environment (the daemon's too).
    pub unset: Vec<String>,
    peers: Vec<String>,
    /// Run every command (the daemon too) as this uid and gid.
    pub user: Option<(u32, u32)>,
}

#[derive(Clone, Debug, Default)]
pub struct PeerOpts {
    pub ephemeral: bool,
    pub reply: bool,
    pub turn_end: bool,
    pub idle_secs: Option<f64>,
    pub quiet_secs: Option<f64>,
    pub resume: bool,
    pub exit_after: Option<u64>,
    pub work_ms: u64,
    pub reply_cli: bool,
    /// The test agent answers to this peer instead (`--forward-to`).
    pub forward_to: Option<String>,
    /// Replace the agent argv entirely.
    pub argv: Option<Vec<String>>,
}


impl Env {
    pub fn new() -> Env {
        let dir = tempfile::Builder::new().prefix("ps-").tempdir_in("/tmp").expect("tempdir");
        let root = dir.path().join("root");
        let work = dir.path().join("work");
        std::fs::create_dir_all(&work).unwrap();
        Env { root, work, dir, daemon: None, vars: vec![], unset: vec![], peers: vec![], user: None }
    }

    /// Runs everything as `uid`:`gid` from now on (the harness must be
    /// root), and hands the test's directory to that user.
    pub fn as_user(&mut self, uid: u32, gid: u32) -> &mut Self {
        self.user = Some((uid, gid));
        self.chown_all();
        self
    }

    /// Gives everything under the test's directory to `user` (after the
    /// test created files there as root).
    pub fn chown_all(&self) {
        let Some((uid, gid)) = self.user else { return };
        let st = Command::new("chown").arg("-R").arg(format!("{uid}:{gid}")).arg(self.dir.path()).status().expect("chown");
        assert!(st.success(), "chown -R {uid}:{gid} {}", self.dir.path().display());
    }

    /// Applies `user` to a command built outside `cmd` (a shell line).
    pub fn as_us(&self, c: &mut Command) {
        if let Some((uid, gid)) = self.user {
            use std::os::unix::process::CommandExt;
            c.uid(uid).gid(gid);
        }
    }

    pub fn unset_var(&mut self, k: &str) -> &mut Self {
        self.unset.push(k.into());
        self
    }

    pub fn var(&mut self, k: &str, v: &str) -> &mut Self {
        self.vars.push((k.into(), v.into()));
        self
    }

    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(BIN);
        c.args(args).env("PEERSPOOL_HOME", &self.root).env_remove("PEERSPOOL_PEER").env("USER", "tester");
        self.as_us(&mut c);
        for (k, v) in &self.vars {
            c.env(k, v);
        }
        for k in &self.unset {
            c.env_remove(k);
        }
        c
    }

    pub fn run(&self, args: &[&str]) -> Output {
        let out = self.cmd(args).stdin(Stdio::null()).output().expect("run peerspool");
        out
    }

    /// Runs a command that must succeed; returns its trimmed stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(out.status.success(), "peerspool {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    pub fn agent_log(&self, peer: &str) -> PathBuf {
        self.work.join(format!("{peer}.log"))
    }

    pub fn add_peer(&mut self, name: &str, o: &PeerOpts) {
        let log = self.agent_log(name);
        let mut args: Vec<String> = vec!["peer".into(), "add".into(), name.into(), "--runtime".into(), "command".into()];
        args.extend(["--cwd".into(), self.work.display().to_string()]);
        args.extend(["--activity".into(), log.display().to_string()]);
        if o.argv.is_none() {
            args.extend(["--ready-pattern".into(), "^agent> ".into()]);
        }
        if o.ephemeral {
            args.push("--ephemeral".into());
        }
        if let Some(s) = o.idle_secs {
            args.extend(["--idle-secs".into(), s.to_string()]);
        }
        if let Some(s) = o.quiet_secs {
            args.extend(["--quiet-secs".into(), s.to_string()]);
        }
        let mut agent = vec![BIN.to_string(), "agent".into(), "--log".into(), log.display().to_string()];
        if o.reply {
            agent.push("--reply".into());
        }
        if o.reply_cli {
            agent.push("--reply-cli".into());
        }
        if o.turn_end {
            agent.push("--turn-end".into());
        }
        if let Some(p) = &o.forward_to {
            agent.extend(["--reply".into(), "--forward-to".into(), p.clone()]);
        }
        if let Some(n) = o.exit_after {
            agent.extend(["--exit-after".into(), n.to_string()]);
        }
        if o.work_ms > 0 {
            agent.extend(["--work-ms".into(), o.work_ms.to_string()]);
        }
        if o.resume {
            let mut r = agent.clone();
            r.push("--resumed".into());
            args.extend(["--resume-command".into(), r.join(" ")]);
        }
        args.push("--".into());
        args.extend(o.argv.clone().unwrap_or(agent));
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        self.ok(&refs);
        self.peers.push(name.into());
    }

    /// Registers a peer added by other means, so Drop stops its tmux server.
    pub fn track_peer(&mut self, name: &str) {
        self.peers.push(name.into());
    }

    pub fn start_daemon(&mut self) {
        assert!(self.daemon.is_none(), "daemon already running");
        let err = std::fs::File::create(self.dir.path().join("daemon.err")).unwrap();
        let child = self
            .cmd(&["daemon"])
            .env("PEERSPOOL_LOG", "debug")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(err)
            .spawn()
            .expect("spawn daemon");
        self.daemon = Some(child);
        // Ready: watches set and the first pass done.
        // Ready once every peer's first pass is done: allow for many peers.
        let limit = Duration::from_secs(10) + Duration::from_millis(40) * self.peers.len() as u32;
        wait_for("daemon ready", limit, || self.daemon_stderr().contains("daemon ready") && self.daemon_running());
    }

    pub fn daemon_running(&self) -> bool {
        self.run(&["status", "--json"]).stdout.windows(15).any(|w| w == b"\"running\": true")
    }

    /// SIGTERM and wait; returns the exit status code.
    pub fn stop_daemon(&mut self) -> Option<i32> {
        let mut c = self.daemon.take()?;
        signal(c.id(), libc::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Ok(Some(st)) = c.try_wait() {
                return st.code();
            }
            if Instant::now() > deadline {
                let _ = c.kill();
                let _ = c.wait();
                panic!("daemon did not exit within 15 s of SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn kill_daemon(&mut self) {
        if let Some(mut c) = self.daemon.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn send(&self, peer: &str, text: &str) -> String {
        self.ok(&["send", peer, text])
    }

    pub fn peer_dir(&self, peer: &str) -> PathBuf {
        self.root.join("peers").join(peer)
    }

    pub fn count(&self, peer: &str, sub: &str) -> usize {
        std::fs::read_dir(self.peer_dir(peer).join(sub))
            .map(|rd| rd.filter_map(|e| e.ok()).filter(|e| e.file_name().to_string_lossy().ends_with(".json")).count())
            .unwrap_or(0)
    }

    /// Messages the fake agent received, in order.
    pub fn received(&self, peer: &str) -> Vec<serde_json::Value> {
        std::fs::read_to_string(self.agent_log(peer))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    /// The task bodies the agent received (envelope header removed).
    pub fn bodies(&self, peer: &str) -> Vec<String> {
        self.received(peer)
            .iter()
            .filter_map(|v| v["text"].as_str())
            .filter_map(|t| peerspool::demo::agent::parse_header(t).map(|(_, b)| b))
            .collect()
    }

    pub fn lifecycle(&self) -> String {
        std::fs::read_to_string(self.root.join("log/lifecycle.log")).unwrap_or_default()
    }

    pub fn delivery(&self) -> String {
        std::fs::read_to_string(self.root.join("log/delivery.log")).unwrap_or_default()
    }

    pub fn socket(&self, peer: &str) -> PathBuf {
        let uid = self.user.map_or_else(peerspool::root::uid, |(u, _)| u);
        peerspool::root::Root::new(&self.root).tmux_socket_of(uid, peer)
    }

    pub fn session_alive(&self, peer: &str) -> bool {
        peerspool::session::tmux::Tmux::new(self.socket(peer)).alive_blocking()
    }

    pub fn daemon_stderr(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("daemon.err")).unwrap_or_default()
    }

    /// Drops a raw file into a peer's outbox via tmp + rename.
    pub fn drop_outbox(&self, peer: &str, name: &str, bytes: &[u8]) {
        let tmp = self.peer_dir(peer).join("outbox/tmp").join(name);
        std::fs::write(&tmp, bytes).unwrap();
        std::fs::rename(&tmp, self.peer_dir(peer).join("outbox/new").join(name)).unwrap();
    }

    /// Drops a raw file into a peer's spool via tmp + rename.
    pub fn drop_raw(&self, peer: &str, name: &str, bytes: &[u8]) {
        let tmp = self.peer_dir(peer).join("spool/tmp").join(name);
        std::fs::write(&tmp, bytes).unwrap();
        std::fs::rename(&tmp, self.peer_dir(peer).join("spool/new").join(name)).unwrap();
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        self.kill_daemon();
        for p in &self.peers {
            peerspool::session::tmux::Tmux::new(self.socket(p)).kill_server_blocking();
        }
        if std::thread::panicking() {
            eprintln!("--- daemon stderr ---\n{}", self.daemon_stderr());
            eprintln!("--- lifecycle.log ---\n{}", self.lifecycle());
            eprintln!("--- delivery.log (tail) ---\n{}", self.delivery().lines().rev().take(20).collect::<Vec<_>>().join("\n"));
        }
    }
}

/// A directory nothing can be renamed into while it stays a private real
/// directory (so only the rename fails, not the directory checks):
/// immutable for root (who ignores modes), read-only otherwise. Undone on
/// drop, so the test's directory can be removed even after a failure.
pub struct Frozen(std::path::PathBuf);

impl Frozen {
    pub fn new(dir: &Path) -> Frozen {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } == 0 {
            let st = std::process::Command::new("chattr").arg("+i").arg(dir).status().expect("chattr");
            assert!(st.success(), "chattr +i {} failed (needs ext4/xfs/btrfs)", dir.display());
        } else {
            std::fs::set_permissions(dir, std::os::unix::fs::PermissionsExt::from_mode(0o500)).unwrap();
        }
        Frozen(dir.to_path_buf())
    }
}

impl Drop for Frozen {
    fn drop(&mut self) {
        // SAFETY: as above.
        if unsafe { libc::geteuid() } == 0 {
            let _ = std::process::Command::new("chattr").arg("-i").arg(&self.0).status();
        } else {
            let _ = std::fs::set_permissions(&self.0, std::os::unix::fs::PermissionsExt::from_mode(0o700));
        }
    }
}

pub fn signal(pid: u32, sig: i32) {
    // SAFETY: sends a signal to a child this harness spawned.
    unsafe {
        libc::kill(pid as i32, sig);
    }
}

/// Polls `cond` until true; panics with `what` after `limit`.
pub fn wait_for(what: &str, limit: Duration, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        if start.elapsed() > limit {
            panic!("timed out after {limit:?} waiting for: {what}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

pub fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_default()
}
