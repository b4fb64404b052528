//! Agent-runtime plumbing that needs no model: hook installation and the
//! turn-end hook as Codex calls it, and `doctor`'s view of the installed
//! CLIs. The real CLIs as peers are in tests/real_agents.rs.

mod common;
use common::*;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

/// `$env_var`, then PATH, then the CI install location.
fn find(name: &str, env_var: &str) -> Option<PathBuf> {
    if let Some(p) = std::env::var_os(env_var).map(PathBuf::from).filter(|p| p.is_file()) {
        return Some(p);
    }
    let on_path = std::env::var_os("PATH").and_then(|p| std::env::split_paths(&p).map(|d| d.join(name)).find(|c| c.is_file()));
    on_path.or_else(|| Some(PathBuf::from("/opt/agent-clis/node_modules/.bin").join(name)).filter(|p| p.is_file()))
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

/// `doctor` judges each peer's login as its session will see it: the
/// peer's HOME, its env keys, an API key's approval, a custom provider.
#[test]
fn doctor_checks_each_peers_own_login() {
    let e = Env::new();
    let home = |n: &str| {
        let h = e.dir.path().join(format!("home-{n}"));
        std::fs::create_dir_all(h.join(".codex")).unwrap();
        h
    };
    let key = "sk-ant-api03-peerspool-doctor-0123456789abcdefghij";
    let approved = home("ok");
    std::fs::write(approved.join(".claude.json"), serde_json::json!({"customApiKeyResponses": {"approved": [&key[key.len() - 20..]]}}).to_string()).unwrap();
    let unapproved = home("ask");
    let provider = home("prov");
    std::fs::write(provider.join(".codex/config.toml"), "model_provider = \"fake\"\n[model_providers.fake]\nbase_url = \"http://127.0.0.1:9/v1\"\nenv_key = \"FAKE_KEY\"\n").unwrap();
    let work = e.work.display().to_string();
    let add = |name: &str, rt: &str, env: &[String]| {
        let mut a: Vec<String> = ["peer", "add", name, "--runtime", rt, "--cwd", &work].map(String::from).to_vec();
        for v in env {
            a.extend(["--env".into(), v.clone()]);
        }
        e.ok(&a.iter().map(String::as_str).collect::<Vec<_>>());
    };
    add("c-ok", "claude", &[format!("HOME={}", approved.display()), format!("ANTHROPIC_API_KEY={key}")]);
    add("c-ask", "claude", &[format!("HOME={}", unapproved.display()), format!("ANTHROPIC_API_KEY={key}")]);
    add("x-ok", "codex", &[format!("HOME={}", provider.display()), "FAKE_KEY=x".into()]);
    add("x-nokey", "codex", &[format!("HOME={}", provider.display())]);
    let out = e.cmd(&["doctor"]).env("PEERSPOOL_CLAUDE_BIN", "/bin/true").env("PEERSPOOL_CODEX_BIN", "/bin/true")
        .env_remove("ANTHROPIC_API_KEY").env_remove("FAKE_KEY").env_remove("CODEX_HOME").env_remove("CLAUDE_CONFIG_DIR").output().unwrap();
    let out = String::from_utf8_lossy(&out.stdout).to_string();
    let line = |peer: &str| out.lines().find(|l| l.contains(&format!("peer {peer}:"))).unwrap_or_default().to_string();
    assert!(line("c-ok").starts_with("ok") && line("c-ok").contains("ANTHROPIC_API_KEY is set"), "{out}");
    assert!(line("c-ask").starts_with("warn") && line("c-ask").contains("not approved"), "{out}");
    assert!(line("x-ok").starts_with("ok") && line("x-ok").contains("\"fake\""), "{out}");
    assert!(line("x-nokey").starts_with("warn") && line("x-nokey").contains("FAKE_KEY"), "{out}");
}

/// A program slow to redraw after a dialog answer (as claude is under
/// load) must not get the answer twice: the second Enter would land on
/// the next dialog, whose default quits. A claude stand-in shows the
/// folder-trust dialog, takes one key, keeps it on screen (and redraws it
/// once) for 1.6 s, then shows the bypass dialog, which exits on Enter
/// unless Down came first.
#[test]
fn a_dialog_is_answered_once_until_its_screen_changes() {
    let mut e = Env::new();
    let fake = e.dir.path().join("slow-claude");
    std::fs::write(&fake, r#"#!/bin/bash
printf '\e[2J\e[H Accessing workspace:\n\n ❯ 1. Yes, I trust this folder\n   2. No, exit\n\n Enter to confirm · Esc to cancel\n'
IFS= read -rsn1 k
sleep 0.6
printf '\e[2J\e[H Accessing workspace: (redrawn)\n\n ❯ 1. Yes, I trust this folder\n   2. No, exit\n\n Enter to confirm · Esc to cancel\n'
sleep 1
printf '\e[2J\e[H WARNING: Claude Code running in Bypass Permissions mode\n\n ❯ 1. No, exit\n   2. Yes, I accept\n\n Enter to confirm · Esc to cancel\n'
sel=1
while IFS= read -rsn1 k; do
  if [ "$k" = $'\e' ]; then read -rsn2 rest; sel=2
    printf '\e[2J\e[H WARNING: Claude Code running in Bypass Permissions mode\n\n   1. No, exit\n ❯ 2. Yes, I accept\n\n Enter to confirm · Esc to cancel\n'
  elif [ -z "$k" ]; then [ $sel = 1 ] && exit 1; break; fi
done
printf '\e[2J\e[H───────────\n❯ \n───────────\n  ⏵⏵ bypass permissions on (shift+tab to cycle)\n'
exec cat >/dev/null
"#).unwrap();
    std::fs::set_permissions(&fake, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    e.var("PEERSPOOL_CLAUDE_BIN", &fake.display().to_string());
    e.ok(&["peer", "add", "c", "--runtime", "claude", "--cwd", &e.work.display().to_string()]);
    e.track_peer("c");
    e.start_daemon();
    e.send("c", "hello");
    wait_for("the wake", Duration::from_secs(30), || e.lifecycle().contains("event=wake ") || e.lifecycle().contains("event=wake-failed"));
    let l = e.lifecycle();
    assert!(l.contains("event=wake mode=fresh"), "the stand-in booted:\n{l}");
    assert!(!l.contains("event=death") && !l.contains("wake-failed"), "{l}");
    assert!(l.contains("dialog=trust-folder") && l.contains("dialog=bypass-permissions"), "{l}");
}
