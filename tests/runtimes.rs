//! The real Claude Code and Codex CLIs started by the daemon, with a temp
//! HOME so they are not logged in: the wake must fail at once with
//! `not-logged-in` (after the boot dialogs are answered), not wait out the
//! boot deadline. Skipped, with a message, where a CLI is not installed.

mod common;
use common::*;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

/// `$env_var`, then PATH, then the CI install location.
fn find(name: &str, env_var: &str) -> Option<PathBuf> {
    if let Some(p) = std::env::var_os(env_var).map(PathBuf::from).filter(|p| p.is_file()) {
        return Some(p);
    }
    let on_path = std::env::var_os("PATH").and_then(|p| std::env::split_paths(&p).map(|d| d.join(name)).find(|c| c.is_file()));
    on_path.or_else(|| Some(PathBuf::from("/opt/agent-clis/node_modules/.bin").join(name)).filter(|p| p.is_file()))
}

/// Codex starts a detached app-server daemon per CODEX_HOME that outlives
/// the tmux session. Stops every process whose program lives under the
/// test's own HOME (found by path under that temp dir, killed by pid).
#[derive(Default)]
struct Reaper {
    home: Option<PathBuf>,
    /// The session's tmux server, stopped first so nothing respawns.
    socket: Option<PathBuf>,
}

impl Drop for Reaper {
    fn drop(&mut self) {
        if let Some(s) = &self.socket {
            peerspool::tmux::Tmux::new(s.clone()).kill_server_blocking();
        }
        let Some(home) = self.home.as_ref().map(|h| h.display().to_string()) else { return };
        for sig in [libc::SIGTERM, libc::SIGKILL] {
            let Ok(rd) = std::fs::read_dir("/proc") else { return };
            let pids: Vec<u32> = rd
                .filter_map(|d| d.ok()?.file_name().to_str()?.parse().ok())
                .filter(|pid: &u32| std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| c.starts_with(home.as_bytes())))
                .collect();
            if pids.is_empty() {
                return;
            }
            for pid in pids {
                signal(pid, sig);
            }
            std::thread::sleep(Duration::from_millis(300));
        }
    }
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// Starts the daemon with one peer of `runtime`, sends a task, and waits
/// for the failed wake. Returns (seconds to the failure, lifecycle log).
fn wake_fails(runtime: &str, bin: &std::path::Path, bin_env: &str, seed: impl FnOnce(&std::path::Path)) -> (f64, Env, Reaper) {
    let mut reaper = Reaper::default();
    let mut e = Env::new();
    let home = e.dir.path().join("home");
    reaper.home = Some(home.clone());
    std::fs::create_dir_all(&home).unwrap();
    seed(&home);
    e.var(bin_env, &bin.display().to_string());
    let mut args = vec!["peer".to_string(), "add".into(), "agent".into(), "--runtime".into(), runtime.into()];
    args.extend(["--cwd".into(), e.work.display().to_string(), "--env".into(), format!("HOME={}", home.display())]);
    if is_root() {
        // claude refuses --dangerously-skip-permissions as root outside a sandbox.
        args.extend(["--env".into(), "IS_SANDBOX=1".into()]);
    }
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    e.ok(&refs);
    e.track_peer("agent");
    reaper.socket = Some(e.socket("agent"));
    e.start_daemon();
    let start = Instant::now();
    let id = e.send("agent", "hello");
    wait_for("the wake to fail", Duration::from_secs(150), || e.delivery().contains("outcome=wake-failed"));
    let secs = start.elapsed().as_secs_f64();
    let d = e.delivery();
    let line = d.lines().find(|l| l.contains("outcome=wake-failed")).unwrap().to_string();
    assert!(line.contains(&format!("task={id}")), "{line}");
    assert!(line.contains("error=\"not-logged-in"), "the wake must fail as not-logged-in: {line}");
    let lc = e.lifecycle();
    assert!(lc.lines().any(|l| l.contains("event=wake-failed") && l.contains("reason=\"not-logged-in")), "lifecycle shows the reason:\n{lc}");
    // The task is kept for a later wake, never lost.
    wait_for("task back in the spool", Duration::from_secs(5), || e.count("agent", "spool/new") == 1);
    let status: serde_json::Value = serde_json::from_str(&e.ok(&["status", "--json"])).unwrap();
    let blocked = status["peers"][0]["blocked"].as_str().unwrap_or_default().to_string();
    assert!(blocked.starts_with("wake failed: not-logged-in"), "status shows why: {status}");
    for l in lc.lines().filter(|l| l.contains("event=dialog") || l.contains("event=wake-failed")) {
        println!("  {l}");
    }
    (secs, e, reaper)
}

#[test]
fn claude_not_logged_in_fails_fast_after_answering_dialogs() {
    let Some(bin) = find("claude", "PEERSPOOL_CLAUDE_BIN") else {
        eprintln!("SKIPPED: claude not installed (set PEERSPOOL_CLAUDE_BIN or run: npm install --prefix /opt/agent-clis @anthropic-ai/claude-code)");
        return;
    };
    // Onboarding done (it needs the network), no credentials: claude shows
    // the folder-trust and bypass dialogs, then "Not logged in".
    let (secs, mut e, _reaper) = wake_fails("claude", &bin, "PEERSPOOL_CLAUDE_BIN", |home| {
        std::fs::write(home.join(".claude.json"), r#"{"hasCompletedOnboarding":true,"theme":"dark"}"#).unwrap();
    });
    println!("claude ({}): not-logged-in after {secs:.1} s (boot deadline 240 s)", bin.display());
    let lc = e.lifecycle();
    assert!(lc.contains("dialog=trust-folder"), "{lc}");
    assert!(lc.contains("dialog=bypass-permissions"), "{lc}");
    e.stop_daemon();
}

#[test]
fn codex_not_logged_in_fails_fast() {
    let Some(bin) = find("codex", "PEERSPOOL_CODEX_BIN") else {
        eprintln!("SKIPPED: codex not installed (set PEERSPOOL_CODEX_BIN or run: npm install --prefix /opt/agent-clis @openai/codex)");
        return;
    };
    let (secs, mut e, _reaper) = wake_fails("codex", &bin, "PEERSPOOL_CODEX_BIN", |_| {});
    println!("codex ({}): not-logged-in after {secs:.1} s (boot deadline 240 s)", bin.display());
    e.stop_daemon();
}

#[test]
fn hooks_install_and_turn_end_with_codex_event_argument() {
    let e = Env::new();
    let codex_home = e.dir.path().join("codex");
    std::fs::create_dir_all(&codex_home).unwrap();
    std::fs::write(codex_home.join("config.toml"), "model = \"o3\" # mine\n").unwrap();
    e.ok(&["peer", "add", "cl", "--runtime", "claude", "--cwd", &e.work.display().to_string()]);
    let mut c = e.cmd(&["hooks", "install", "codex"]);
    let out = c.env("CODEX_HOME", &codex_home).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let cfg = read(&codex_home.join("config.toml"));
    assert!(cfg.starts_with("model = \"o3\" # mine\nnotify = [") && cfg.contains("\"hook\", \"turn-end\""), "{cfg}");
    e.ok(&["hooks", "install", "claude", "--peer", "cl"]);
    e.ok(&["hooks", "install", "claude", "--peer", "cl"]);
    let settings: serde_json::Value = serde_json::from_str(&read(&e.work.join(".claude/settings.local.json"))).unwrap();
    assert_eq!(settings["hooks"]["Stop"].as_array().unwrap().len(), 1, "installed once");
    // What Codex runs: the notify argv plus one JSON argument.
    let notify: Vec<String> = cfg.lines().find(|l| l.starts_with("notify")).map(|l| serde_json::from_str(l.split_once('=').unwrap().1.trim()).unwrap()).unwrap();
    let out = Command::new(&notify[0]).args(&notify[1..]).arg(r#"{"type":"agent-turn-complete","turn-id":"1"}"#)
        .env("PEERSPOOL_HOME", &e.root).env("PEERSPOOL_PEER", "cl").output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(e.peer_dir("cl").join("outbox/new/.turn-end").exists());
    // Outside a peerspool session the hook stays quiet.
    let out = Command::new(&notify[0]).args(&notify[1..]).arg("{}").env("PEERSPOOL_HOME", &e.root).env_remove("PEERSPOOL_PEER").output().unwrap();
    assert!(out.status.success());
    e.ok(&["hooks", "uninstall", "claude", "--peer", "cl"]);
    let out = e.cmd(&["hooks", "uninstall", "codex"]).env("CODEX_HOME", &codex_home).output().unwrap();
    assert!(out.status.success());
    assert_eq!(read(&codex_home.join("config.toml")), "model = \"o3\" # mine\n");
}

#[test]
fn doctor_reports_binary_version_and_login() {
    let (Some(claude), Some(codex)) = (find("claude", "PEERSPOOL_CLAUDE_BIN"), find("codex", "PEERSPOOL_CODEX_BIN")) else {
        eprintln!("SKIPPED: claude or codex not installed");
        return;
    };
    let e = Env::new();
    let home = e.dir.path().join("home");
    std::fs::create_dir_all(&home).unwrap();
    let doctor = || {
        let out = e.cmd(&["doctor"]).env("HOME", &home).env("PEERSPOOL_CLAUDE_BIN", &claude).env("PEERSPOOL_CODEX_BIN", &codex)
            .env_remove("CLAUDE_CONFIG_DIR").env_remove("CODEX_HOME").env_remove("ANTHROPIC_API_KEY").env_remove("ANTHROPIC_AUTH_TOKEN")
            .env_remove("CLAUDE_CODE_OAUTH_TOKEN").env_remove("OPENAI_API_KEY").output().unwrap();
        String::from_utf8_lossy(&out.stdout).to_string()
    };
    let out = doctor();
    println!("{out}");
    let line = |out: &str, what: &str| out.lines().find(|l| l.get(5..).is_some_and(|r| r.starts_with(what))).map(str::to_string).unwrap_or_default();
    assert!(line(&out, "claude ").starts_with("ok") && line(&out, "claude ").contains("Claude Code"), "{out}");
    assert!(line(&out, "codex ").starts_with("ok") && line(&out, "codex ").contains("codex-cli"), "{out}");
    assert!(line(&out, "claude login").starts_with("warn") && line(&out, "claude login").contains("not logged in"), "{out}");
    assert!(line(&out, "codex login").starts_with("warn"), "{out}");
    std::fs::create_dir_all(home.join(".claude")).unwrap();
    std::fs::write(home.join(".claude/.credentials.json"), "{}").unwrap();
    std::fs::create_dir_all(home.join(".codex")).unwrap();
    std::fs::write(home.join(".codex/auth.json"), "{}").unwrap();
    let out = doctor();
    assert!(line(&out, "claude login").starts_with("ok"), "{out}");
    assert!(line(&out, "codex login").starts_with("ok"), "{out}");
}

/// Adds peer `agent` of `runtime` with its own HOME and extra env.
fn add_agent(e: &mut Env, runtime: &str, home: &std::path::Path, env: &[(&str, &str)]) {
    let mut args = vec!["peer".to_string(), "add".into(), "agent".into(), "--runtime".into(), runtime.into()];
    args.extend(["--cwd".into(), e.work.display().to_string(), "--env".into(), format!("HOME={}", home.display())]);
    for (k, v) in env {
        args.extend(["--env".into(), format!("{k}={v}")]);
    }
    if is_root() {
        args.extend(["--env".into(), "IS_SANDBOX=1".into()]);
    }
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    e.ok(&refs);
    e.track_peer("agent");
}

fn delivered_line(e: &Env, id: &str) -> String {
    e.delivery().lines().find(|l| l.contains(&format!("task={id}")) && l.contains("outcome=delivered")).unwrap_or_default().to_string()
}

/// With a dummy API key (approved in ~/.claude.json) claude reaches its
/// prompt offline and records the prompt in its transcript before the API
/// call fails: a delivery confirmed by the transcript echo.
#[test]
fn claude_delivery_confirmed_by_transcript_echo() {
    let Some(bin) = find("claude", "PEERSPOOL_CLAUDE_BIN") else {
        eprintln!("SKIPPED: claude not installed");
        return;
    };
    let mut reaper = Reaper::default();
    let mut e = Env::new();
    let home = e.dir.path().join("home");
    reaper.home = Some(home.clone());
    std::fs::create_dir_all(&home).unwrap();
    let key = "sk-ant-api03-peerspool-test-key-0123456789abcdefghij";
    let seed = serde_json::json!({"hasCompletedOnboarding": true, "theme": "dark",
        "customApiKeyResponses": {"approved": [&key[key.len() - 20..]], "rejected": []}});
    std::fs::write(home.join(".claude.json"), seed.to_string()).unwrap();
    e.var("PEERSPOOL_CLAUDE_BIN", &bin.display().to_string());
    // As if the daemon were started from inside a Claude Code session: such
    // variables must not reach the peer's claude (they can suppress its
    // transcript).
    e.var("CLAUDECODE", "1").var("CLAUDE_CODE_ENTRYPOINT", "cli");
    add_agent(&mut e, "claude", &home, &[("ANTHROPIC_API_KEY", key)]);
    reaper.socket = Some(e.socket("agent"));
    e.start_daemon();
    let id = e.send("agent", "please list the files\nsecond line of the task");
    wait_for("delivered", Duration::from_secs(90), || !delivered_line(&e, &id).is_empty() || e.delivery().contains("outcome=wake-failed"));
    let line = delivered_line(&e, &id);
    assert!(!line.is_empty(), "not delivered:\n{}\n{}", e.lifecycle(), e.delivery());
    println!("claude delivery: {line}");
    let out = Command::new("tmux").arg("-S").arg(e.socket("agent")).args(["list-panes", "-t", "peer", "-F", "#{pane_pid}"]).output().unwrap();
    let pid = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let environ = std::fs::read(format!("/proc/{pid}/environ")).unwrap_or_default();
    let vars: Vec<String> = environ.split(|&b| b == 0).map(|v| String::from_utf8_lossy(v).to_string()).collect();
    assert!(vars.iter().any(|v| v == "PEERSPOOL_PEER=agent"), "read the session's environment (pid {pid})");
    let leaked: Vec<&String> = vars.iter().filter(|v| v.starts_with("CLAUDECODE=") || v.starts_with("CLAUDE_CODE_")).collect();
    assert!(leaked.is_empty(), "inherited claude variables reached the session: {leaked:?}");
    for l in e.lifecycle().lines().filter(|l| l.contains("event=dialog") || l.contains("event=wake")) {
        println!("  {l}");
    }
    let proj = home.join(".claude/projects").join(peerspool::runtime::transcript::slug(&e.work));
    let transcript: String = std::fs::read_dir(&proj).unwrap().filter_map(|f| std::fs::read_to_string(f.unwrap().path()).ok()).collect();
    assert!(transcript.contains("please list the files\\nsecond line of the task"), "the transcript holds the delivered text");
    wait_for("task done", Duration::from_secs(30), || e.count("agent", "spool/done") == 1);
    e.stop_daemon();
}

/// With a dummy ~/.codex/auth.json codex reaches its input row offline:
/// a delivery confirmed on the screen, then the session file (matched by
/// cwd) shows activity.
#[test]
fn codex_delivery_confirmed_on_screen() {
    let Some(bin) = find("codex", "PEERSPOOL_CODEX_BIN") else {
        eprintln!("SKIPPED: codex not installed");
        return;
    };
    let mut reaper = Reaper::default();
    let mut e = Env::new();
    let home = e.dir.path().join("home");
    reaper.home = Some(home.clone());
    std::fs::create_dir_all(home.join(".codex")).unwrap();
    std::fs::write(home.join(".codex/auth.json"), r#"{"OPENAI_API_KEY":"sk-peerspool-test-dummy"}"#).unwrap();
    e.var("PEERSPOOL_CODEX_BIN", &bin.display().to_string());
    add_agent(&mut e, "codex", &home, &[]);
    reaper.socket = Some(e.socket("agent"));
    e.start_daemon();
    let id = e.send("agent", "please list the files");
    wait_for("delivered", Duration::from_secs(90), || !delivered_line(&e, &id).is_empty() || e.delivery().contains("outcome=wake-failed"));
    let line = delivered_line(&e, &id);
    assert!(!line.is_empty(), "not delivered:\n{}\n{}", e.lifecycle(), e.delivery());
    println!("codex delivery: {line}");
    wait_for("task done (session file shows activity)", Duration::from_secs(60), || e.count("agent", "spool/done") == 1);
    let sessions = home.join(".codex/sessions");
    let mut seen = Default::default();
    let (file, _) = peerspool::runtime::transcript::codex_session_for(&sessions, &e.work, &mut seen).expect("a session file for the cwd");
    // The session file starts with its metadata; the prompt follows shortly.
    let start = Instant::now();
    while !read(&file).contains("please list the files") && start.elapsed() < Duration::from_secs(20) {
        std::thread::sleep(Duration::from_millis(100));
    }
    if !read(&file).contains("please list the files") {
        for (p, t) in peerspool::runtime::transcript::jsonl_files(&sessions, true) {
            let c = read(&p);
            eprintln!("session file {} {:?} len={} has-prompt={} head={}", p.display(), t, c.len(), c.contains("please list the files"), c.chars().take(300).collect::<String>());
        }
        eprintln!("chosen session file {}", file.display());
        let out = std::process::Command::new("tmux").arg("-S").arg(e.socket("agent")).args(["capture-pane", "-p", "-J", "-t", "peer"]).output().unwrap();
        eprintln!("pane:\n{}", String::from_utf8_lossy(&out.stdout));
        panic!("prompt not in the session file");
    }
    e.stop_daemon();
}
