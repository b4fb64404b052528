//! The conventions of issue 15: one error style, help and man pages that
//! say everything, options refused where they do not apply, NO_COLOR.

mod common;
use common::*;
use std::time::Duration;

const T: Duration = Duration::from_secs(30);

fn err(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).to_string()
}

/// Exit code 2, one `peerspool: ` line containing every `want`.
fn usage(e: &Env, args: &[&str], want: &[&str]) {
    let o = e.run(args);
    let s = err(&o);
    assert_eq!(o.status.code(), Some(2), "{args:?}: {s}");
    assert_eq!(s.lines().count(), 1, "{args:?}: {s}");
    assert!(s.starts_with("peerspool: "), "{s}");
    for w in want {
        assert!(s.contains(w), "{args:?}: want {w:?} in {s}");
    }
}

#[test]
fn peer_add_refuses_what_does_not_apply_and_says_the_fix() {
    let mut e = Env::new();
    let w = e.work.display().to_string();
    usage(&e, &["peer", "add", "c", "--runtime", "command", "--cwd", &w], &["put it after `--`"]);
    usage(&e, &["peer", "add", "c", "--runtime", "claude", "--cwd", &w, "--ready-pattern", "x"], &["--ready-pattern", "--runtime command only"]);
    usage(&e, &["peer", "add", "c", "--runtime", "codex", "--cwd", &w, "--activity", "/tmp/x"], &["--activity"]);
    usage(&e, &["peer", "add", "c", "--runtime", "command", "--cwd=~nosuchuser/x", "--", "sh"], &["~user"]);
    assert!(!e.peer_dir("c").exists(), "nothing written");
    e.add_peer("p", &PeerOpts::default());
    let o = e.run(&["peer", "add", "p", "--runtime", "command", "--cwd", &w, "--", "sh"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(err(&o).contains("already exists") && err(&o).contains("--force"), "{}", err(&o));
    // `--cwd=~/x` reaches the program unexpanded: it means the home.
    let home = e.dir.path().join("home");
    std::fs::create_dir_all(home.join("proj")).unwrap();
    let o = e.cmd(&["peer", "add", "h", "--runtime", "command", "--cwd=~/proj", "--", "sh"]).env("HOME", &home).output().unwrap();
    assert!(o.status.success(), "{}", err(&o));
    e.track_peer("h");
    let list: serde_json::Value = serde_json::from_str(&e.ok(&["peer", "list", "--json"])).unwrap();
    let h = list.as_array().unwrap().iter().find(|p| p["name"] == "h").expect("h listed");
    assert_eq!(h["cwd"].as_str(), home.join("proj").to_str());
    assert_eq!(h["runtime"], "command");
    assert_eq!(list.as_array().unwrap().len(), 2);
    // A program that is not on PATH is worth a warning at add time.
    let o = e.run(&["peer", "add", "m", "--runtime", "command", "--cwd", &w, "--", "no-such-program-here"]);
    assert!(o.status.success());
    assert!(err(&o).contains("\"no-such-program-here\" is not on PATH"), "{}", err(&o));
    e.track_peer("m");
    let o = e.run(&["peer", "add", "s", "--runtime", "command", "--cwd", &w, "--", "sh"]);
    assert!(o.status.success() && !err(&o).contains("PATH"), "{}", err(&o));
    e.track_peer("s");
}

#[test]
fn verbs_agree_on_unknown_peers_and_ttys() {
    let mut e = Env::new();
    e.add_peer("p", &PeerOpts::default());
    usage(&e, &["log", "--peer", "nosuch"], &["unknown peer \"nosuch\""]);
    usage(&e, &["stop", "nosuch"], &["unknown peer"]);
    let w = e.work.display().to_string();
    e.ok(&["peer", "add", "cl", "--runtime", "claude", "--cwd", &w]);
    e.track_peer("cl");
    usage(&e, &["hooks", "install", "codex", "--peer", "cl"], &["runs claude", "hooks install claude --peer cl"]);
    e.start_daemon();
    e.send("p", "wake");
    wait_for("p delivered", T, || e.count("p", "spool/done") == 1);
    usage(&e, &["attach", "p"], &["needs a terminal", "capture-pane"]);
    assert_eq!(e.stop_daemon(), Some(0));
}

#[test]
fn man_page_has_exit_status_environment_files_examples() {
    let e = Env::new();
    let man = e.ok(&["generate", "man"]);
    for sec in [".SH \"EXIT STATUS\"", ".SH ENVIRONMENT", ".SH FILES", ".SH EXAMPLES"] {
        assert!(man.contains(sec), "missing {sec}");
    }
    // Every PEERSPOOL_* variable the code reads is documented there.
    let mut vars = std::collections::BTreeSet::new();
    let re = regex::Regex::new(r"PEERSPOOL_[A-Z_]*[A-Z]").unwrap();
    for f in walk(&std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src")) {
        let text = std::fs::read_to_string(&f).unwrap_or_default();
        vars.extend(re.find_iter(&text).map(|m| m.as_str().to_string()));
    }
    assert!(vars.len() > 10, "{vars:?}");
    let missing: Vec<_> = vars.iter().filter(|v| !man.contains(v.as_str())).collect();
    assert!(missing.is_empty(), "not in the man page: {missing:?}");
    for code in ["3", "4", "130"] {
        assert!(man.contains(&format!(".TP\n{code}\n")), "exit {code}");
    }
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut v = vec![];
    for e in std::fs::read_dir(dir).unwrap().filter_map(|e| e.ok()) {
        let p = e.path();
        if p.is_dir() {
            v.extend(walk(&p));
        } else if p.extension().is_some_and(|x| x == "rs") {
            v.push(p);
        }
    }
    v
}

/// The daemon on a terminal (a tmux pane, its raw output recorded with
/// pipe-pane): colour unless NO_COLOR says otherwise.
fn daemon_output_on_a_tty(no_color: bool) -> String {
    let e = Env::new();
    std::fs::create_dir_all(&e.root).unwrap();
    let sock = e.dir.path().join("tty.sock");
    let raw = e.dir.path().join("raw.out");
    let tmux = |args: &[&str]| std::process::Command::new("tmux").arg("-S").arg(&sock).args(args).output().unwrap();
    let env = if no_color { "NO_COLOR=1 " } else { "" };
    let cmd = format!("PEERSPOOL_HOME={} {env}exec {BIN} daemon", e.root.display());
    // The pane's shell must not exit before pipe-pane is set: start it
    // held, then respawn with the daemon.
    assert!(tmux(&["new-session", "-d", "-x", "200", "-y", "50", "sleep 60"]).status.success());
    struct Kill<'a>(&'a std::path::Path, &'a Env);
    impl Drop for Kill<'_> {
        fn drop(&mut self) {
            if let Some(pid) = serde_json::from_slice::<serde_json::Value>(&self.1.run(&["status", "--json"]).stdout).ok().and_then(|v| v["daemon"]["pid"].as_u64()) {
                signal(pid as u32, libc::SIGTERM);
                std::thread::sleep(Duration::from_millis(300));
            }
            let _ = std::process::Command::new("tmux").arg("-S").arg(self.0).arg("kill-server").output();
        }
    }
    let _k = Kill(&sock, &e);
    assert!(tmux(&["pipe-pane", "-o", &format!("cat >> {}", raw.display())]).status.success());
    assert!(tmux(&["respawn-pane", "-k", &cmd]).status.success());
    wait_for("daemon ready on the tty", T, || read(&raw).contains("daemon ready"));
    read(&raw)
}

#[test]
fn no_color_turns_off_ansi_in_the_daemon_log() {
    assert!(daemon_output_on_a_tty(false).contains("\x1b["), "a terminal gets colour by default");
    assert!(!daemon_output_on_a_tty(true).contains("\x1b["), "NO_COLOR: no escape sequences");
}

#[test]
fn clap_usage_errors_are_one_short_line() {
    let e = Env::new();
    for (args, want) in [
        (vec!["send"], "<PEER>"),
        (vec!["bogus"], "unrecognized subcommand 'bogus'"),
        (vec!["send", "p", "--wait", "--timeout", "soon", "x"], "--timeout"),
        (vec!["peer", "add", "x", "--runtime", "nope", "--cwd", "/tmp"], "nope"),
    ] {
        usage(&e, &args, &[want, "--help"]);
    }
    usage(&e, &["send"], &["(usage: peerspool send <PEER> [TEXT]; see --help)"]);
    // Help itself is not an error.
    let o = e.run(&["send", "--help"]);
    assert_eq!(o.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&o.stdout).contains("Exit status"));
}

#[test]
fn hooks_uninstall_removes_a_settings_file_it_left_empty() {
    let e = Env::new();
    let w = e.work.display().to_string();
    e.ok(&["peer", "add", "cl", "--runtime", "claude", "--cwd", &w]);
    let settings = e.work.join(".claude/settings.local.json");
    e.ok(&["hooks", "install", "claude", "--peer", "cl"]);
    assert!(settings.is_file());
    e.ok(&["hooks", "uninstall", "claude", "--peer", "cl"]);
    assert!(!settings.exists() && !e.work.join(".claude").exists(), "install left nothing behind");
    let codex = e.dir.path().join("codex");
    std::fs::create_dir_all(&codex).unwrap();
    let run = |verb: &str| e.cmd(&["hooks", verb, "codex"]).env("CODEX_HOME", &codex).output().unwrap();
    assert!(run("install").status.success());
    assert!(codex.join("config.toml").is_file());
    assert!(run("uninstall").status.success());
    assert!(!codex.join("config.toml").exists());
    // A file with the user's own settings stays.
    std::fs::create_dir_all(e.work.join(".claude")).unwrap();
    std::fs::write(&settings, r#"{"permissions": {"allow": ["Bash(ls)"]}}"#).unwrap();
    e.ok(&["hooks", "install", "claude", "--peer", "cl"]);
    e.ok(&["hooks", "uninstall", "claude", "--peer", "cl"]);
    let v: serde_json::Value = serde_json::from_str(&read(&settings)).unwrap();
    assert_eq!(v, serde_json::json!({"permissions": {"allow": ["Bash(ls)"]}}));
}
