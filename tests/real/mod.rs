//! The harness for tests against the real Claude Code and Codex CLIs: a
//! peer of either runtime with a private HOME (and CODEX_HOME), pointed at
//! a scripted model server on loopback, driven by the real daemon.
//!
//! Where a CLI is not installed the test is skipped with a line on the
//! real stderr (shown without --nocapture); under CI (`CI=true`) a missing
//! CLI fails the test instead, since CI installs them.

use super::common::*;
use super::models::{self, Server};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Kind {
    Claude,
    Codex,
}

impl Kind {
    pub fn runtime(self) -> &'static str {
        match self {
            Kind::Claude => "claude",
            Kind::Codex => "codex",
        }
    }
    fn bin_env(self) -> &'static str {
        match self {
            Kind::Claude => "PEERSPOOL_CLAUDE_BIN",
            Kind::Codex => "PEERSPOOL_CODEX_BIN",
        }
    }
}

/// Writes straight to fd 2, past the test harness's capture, so a skip is
/// seen in a plain `cargo test`.
pub fn say(line: &str) {
    let l = format!("{line}\n");
    // SAFETY: writes a valid buffer to the process's stderr.
    unsafe {
        libc::write(2, l.as_ptr().cast(), l.len());
    }
}

/// `$env_var`, then PATH, then the CI install location.
pub fn find(kind: Kind) -> Option<PathBuf> {
    let name = kind.runtime();
    if let Some(p) = std::env::var_os(kind.bin_env()).map(PathBuf::from).filter(|p| p.is_file()) {
        return Some(p);
    }
    let on_path = std::env::var_os("PATH").and_then(|p| std::env::split_paths(&p).map(|d| d.join(name)).find(|c| c.is_file()));
    on_path.or_else(|| Some(PathBuf::from("/opt/agent-clis/node_modules/.bin").join(name)).filter(|p| p.is_file()))
}

pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

pub const API_KEY: &str = "sk-ant-api03-peerspool-test-key-0123456789abcdefghij";

/// One test's world: root, daemon, peers, the model server, and every
/// process the sessions started (found by their PEERSPOOL_HOME).
pub struct Real {
    pub e: Env,
    pub kind: Kind,
    pub server: Server,
    peers: Vec<String>,
}

impl Real {
    /// `None` (after saying so) where the CLI is missing outside CI.
    pub fn new(kind: Kind, test: &str) -> Option<Real> {
        let Some(bin) = find(kind) else {
            let msg = format!("SKIPPED {test}: {} not installed (npm install --prefix /opt/agent-clis; see .ci/run)", kind.runtime());
            assert!(std::env::var("CI").is_err(), "{msg}: CI must run the real-CLI tests");
            say(&msg);
            return None;
        };
        let server = match kind {
            Kind::Claude => models::anthropic::start(),
            Kind::Codex => models::openai::start(),
        };
        let mut e = Env::new();
        e.var(kind.bin_env(), &bin.display().to_string());
        Some(Real { e, kind, server, peers: vec![] })
    }

    pub fn home(&self, peer: &str) -> PathBuf {
        self.e.dir.path().join(format!("home-{peer}"))
    }

    /// A HOME where the CLI starts offline against the model server;
    /// `approved`: claude's custom key accepted, codex's provider set.
    pub fn seed_home(&self, peer: &str, approved: bool) -> PathBuf {
        let home = self.home(peer);
        std::fs::create_dir_all(&home).unwrap();
        match self.kind {
            Kind::Claude => {
                let mut seed = serde_json::json!({"hasCompletedOnboarding": true, "theme": "dark"});
                if approved {
                    seed["customApiKeyResponses"] = serde_json::json!({"approved": [&API_KEY[API_KEY.len() - 20..]], "rejected": []});
                }
                std::fs::write(home.join(".claude.json"), seed.to_string()).unwrap();
            }
            Kind::Codex => {
                let ch = home.join(".codex");
                std::fs::create_dir_all(&ch).unwrap();
                if approved {
                    let cfg = format!(
                        "model = \"gpt-fake\"\nmodel_provider = \"fake\"\n\n[model_providers.fake]\nname = \"fake\"\nbase_url = \"{}/v1\"\nwire_api = \"responses\"\nenv_key = \"FAKE_OPENAI_KEY\"\n",
                        self.server.url()
                    );
                    std::fs::write(ch.join("config.toml"), cfg).unwrap();
                }
            }
        }
        home
    }

    /// Adds a peer of this runtime with its own seeded HOME.
    pub fn add(&mut self, peer: &str, approved: bool, extra: &[&str]) {
        let home = self.seed_home(peer, approved);
        let work = self.e.work.clone();
        self.add_with_home(peer, &home, &work, extra);
    }

    /// Adds a peer with a given HOME and cwd.
    pub fn add_with_home(&mut self, peer: &str, home: &Path, cwd: &Path, extra: &[&str]) {
        let mut args: Vec<String> = ["peer", "add", peer, "--runtime", self.kind.runtime()].map(String::from).to_vec();
        args.extend(["--cwd".into(), cwd.display().to_string()]);
        let mut env = vec![format!("HOME={}", home.display())];
        match self.kind {
            Kind::Claude => {
                env.push(format!("ANTHROPIC_BASE_URL={}", self.server.url()));
                env.push(format!("ANTHROPIC_API_KEY={API_KEY}"));
                env.push("DISABLE_AUTOUPDATER=1".into());
                env.push("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1".into());
                if is_root() {
                    env.push("IS_SANDBOX=1".into());
                }
            }
            Kind::Codex => env.push("FAKE_OPENAI_KEY=sk-fake".into()),
        }
        for v in env {
            args.extend(["--env".into(), v]);
        }
        args.extend(extra.iter().map(|s| s.to_string()));
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        self.e.ok(&refs);
        self.e.track_peer(peer);
        self.peers.push(peer.into());
    }

    /// The reply in the `tester` inbox that answers `id`.
    pub fn reply_to(&self, id: &str) -> Option<serde_json::Value> {
        let dir = self.e.root.join("inbox/tester/new");
        std::fs::read_dir(dir).ok()?.filter_map(|f| f.ok()).find_map(|f| {
            let v: serde_json::Value = serde_json::from_str(&read(&f.path())).ok()?;
            (v["in_reply_to"] == id).then_some(v)
        })
    }

    /// Waits for the reply to `id` and returns its text.
    pub fn await_reply(&self, id: &str, limit: Duration) -> String {
        let start = std::time::Instant::now();
        loop {
            if let Some(v) = self.reply_to(id) {
                return v["text"].as_str().unwrap_or_default().to_string();
            }
            if start.elapsed() > limit {
                panic!("no reply to {id} within {limit:?}\n--- pane ---\n{}\n--- model requests ---\n{}", self.pane_all(), self.server.dump());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Every peer's screen, for failure messages.
    pub fn pane_all(&self) -> String {
        self.peers.iter().map(|p| format!("[{p}]\n{}", self.pane(p))).collect::<Vec<_>>().join("\n")
    }

    pub fn pane(&self, peer: &str) -> String {
        let out = Command::new("tmux").arg("-S").arg(self.e.socket(peer)).args(["capture-pane", "-p", "-J", "-t", "peer"]).output();
        out.map(|o| String::from_utf8_lossy(&o.stdout).into_owned()).unwrap_or_default()
    }

    /// The environment of the session's program.
    pub fn session_env(&self, peer: &str) -> Vec<String> {
        let out = Command::new("tmux").arg("-S").arg(self.e.socket(peer)).args(["list-panes", "-t", "peer", "-F", "#{pane_pid}"]).output();
        let pid = out.map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string()).unwrap_or_default();
        let environ = std::fs::read(format!("/proc/{pid}/environ")).unwrap_or_default();
        environ.split(|&b| b == 0).map(|v| String::from_utf8_lossy(v).into_owned()).collect()
    }

    /// The ack the scripted model sends for a text it received intact.
    pub fn ack(id: &str, text: &str, seen: usize) -> String {
        let t = text.trim_end();
        format!("ack id={id} len={} fnv={} seen={seen}", t.len(), models::fnv(t))
    }

    /// Pids of every process started for this test's root (sessions, the
    /// CLIs' helpers such as codex's app-server), by their environment.
    pub fn our_pids(root: &Path) -> Vec<i32> {
        let needle = format!("PEERSPOOL_HOME={}", std::fs::canonicalize(root).unwrap_or(root.to_path_buf()).display());
        let Ok(rd) = std::fs::read_dir("/proc") else { return vec![] };
        rd.filter_map(|d| d.ok()?.file_name().to_str()?.parse::<i32>().ok())
            .filter(|pid| *pid as u32 != std::process::id())
            .filter(|pid| std::fs::read(format!("/proc/{pid}/environ")).is_ok_and(|env| env.split(|&b| b == 0).any(|v| v == needle.as_bytes())))
            .collect()
    }
}

impl Drop for Real {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("--- panes ---\n{}\n--- model requests ---\n{}", self.pane_all(), self.server.dump());
        }
        self.e.kill_daemon();
        for p in &self.peers {
            peerspool::session::tmux::Tmux::new(self.e.socket(p)).kill_server_blocking();
        }
        for sig in [libc::SIGTERM, libc::SIGKILL] {
            let pids = Real::our_pids(&self.e.root);
            if pids.is_empty() {
                break;
            }
            for pid in pids {
                signal(pid as u32, sig);
            }
            std::thread::sleep(Duration::from_millis(300));
        }
    }
}
