//! The README's quick start, run as written (issue 15, defect 4): each
//! command line of the block goes through bash with the built binary first
//! on PATH, on a temp root and HOME. Exceptions, each said when it happens:
//! `cargo install` (the test runs the binary cargo just built), `daemon &`
//! (started by the harness on the same root, so it is stopped even when the
//! test fails), `log --follow` (bounded: read for a second, then stopped by
//! its pid), and the `send alice` lines when no `claude` is on PATH.

mod common;
mod nats;
use common::*;
use std::process::{Command, Stdio};
use std::time::Duration;

const T: Duration = Duration::from_secs(30);

fn quick_start() -> Vec<String> {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let block = readme.split("## Quick start").nth(1).and_then(|s| s.split("```sh\n").nth(1)).and_then(|s| s.split("```").next()).expect("a sh block under ## Quick start");
    let comment = regex::Regex::new(r"\s{2,}#\s.*$").unwrap();
    block.lines().map(|l| comment.replace(l, "").trim().to_string()).filter(|l| !l.is_empty()).collect()
}

fn on_path(prog: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(prog).is_file()))
}

#[test]
fn readme_quick_start_runs_as_written() {
    run_quick_start(&mut Env::new());
}

/// The same lines as a normal user (`nobody`), when the suite runs as root
/// (as CI does); run as a normal user, the test above already is this one.
#[test]
fn readme_quick_start_runs_as_written_as_a_normal_user() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("readme: already a normal user; readme_quick_start_runs_as_written covers it");
        return;
    }
    let mut e = Env::new();
    e.as_user(65534, 65534);
    run_quick_start(&mut e);
}

fn run_quick_start(e: &mut Env) {
    let home = e.dir.path().join("home");
    std::fs::create_dir_all(home.join("src/project")).unwrap();
    let bin = e.dir.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    std::os::unix::fs::symlink(BIN, bin.join("peerspool")).unwrap();
    e.chown_all();
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap_or_default());
    let root = e.root.clone();
    let user = e.user;
    let bash = |line: &str| {
        let mut c = Command::new("bash");
        c.args(["-c", line]).env("HOME", &home).env("PATH", &path).env("PEERSPOOL_HOME", &root).env("USER", "tester").env_remove("PEERSPOOL_PEER").env_remove("TMUX").env_remove("SHELL");
        if let Some((uid, gid)) = user {
            use std::os::unix::process::CommandExt;
            c.uid(uid).gid(gid);
        }
        c
    };
    let claude = on_path("claude");
    let lines = quick_start();
    assert!(lines.iter().any(|l| l.contains("peer add sh1")), "{lines:?}");
    let mut ran = 0;
    for line in &lines {
        if line.starts_with("cargo install") {
            eprintln!("readme: skipped (the test uses the binary cargo built): {line}");
            continue;
        }
        if line.starts_with("peerspool daemon &") {
            eprintln!("readme: the harness starts the daemon on the same root: {line}");
            e.track_peer("alice");
            e.track_peer("sh1");
            // As after `cargo install`: the daemon and its sessions find
            // `peerspool` on PATH.
            e.var("PATH", &path);
            // As under systemd (and CI): no `$SHELL`. tmux then took the
            // account's login shell, `nologin` for `nobody`, and `-- bash`
            // died at boot with status 1.
            e.unset_var("SHELL");
            e.start_daemon();
            continue;
        }
        if line.starts_with("peerspool send alice") && !claude {
            eprintln!("readme: skipped, no `claude` on PATH: {line}");
            continue;
        }
        if line.starts_with("peerspool log --follow") {
            let c = bash(&format!("exec {line}")).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::null()).spawn().unwrap();
            std::thread::sleep(Duration::from_secs(1));
            signal(c.id(), libc::SIGTERM);
            let out = c.wait_with_output().unwrap();
            assert!(String::from_utf8_lossy(&out.stdout).contains("event=daemon-start"), "{line}");
            ran += 1;
            continue;
        }
        // Bounded: a --wait that never ends must fail the test, not hang it.
        let out = bash(&format!("timeout 60 {line}")).stdin(Stdio::null()).output().unwrap();
        assert!(out.status.success(), "README line failed: {line}\n{}", String::from_utf8_lossy(&out.stderr));
        if line.contains("peerspool reply") {
            let uname = Command::new("uname").arg("-a").output().unwrap();
            assert_eq!(String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&uname.stdout), "{line}");
        }
        ran += 1;
    }
    assert!(ran >= 4, "ran {ran} lines of {lines:?}");
    // The `command` peer of the quick start must become ready, whoever
    // runs it (root's prompt ends in `# `, a user's in `$ `).
    let id = e.send("sh1", "echo quick-start-$((6*7))");
    wait_for("sh1 took the task", T, || e.count("sh1", "spool/done") == 2);
    assert!(e.lifecycle().contains("peer=sh1 event=wake "), "{}", e.lifecycle());
    assert!(e.delivery().contains(&format!("task={id} from=tester outcome=delivered")), "{}", e.delivery());
    // `--envelope text`: the shell got the command alone, no header to run.
    let screen = || {
        let o = Command::new("tmux").arg("-S").arg(e.socket("sh1")).args(["capture-pane", "-p", "-t", peerspool::session::tmux::SESSION]).output().unwrap();
        String::from_utf8_lossy(&o.stdout).to_string()
    };
    wait_for("the shell ran it", T, || screen().contains("quick-start-42"));
    assert!(!screen().contains("[peerspool task"), "{}", screen());
    if let Some((uid, _)) = e.user {
        use std::os::unix::fs::MetadataExt;
        let owner = |p: &std::path::Path| std::fs::metadata(p).map(|m| m.uid()).unwrap_or(u32::MAX);
        assert_eq!(owner(&e.root.join("peers/sh1/peer.json")), uid, "the README's lines ran as uid {uid}");
        assert_eq!(owner(&e.socket("sh1")), uid, "the session is the user's");
    }
    assert_eq!(e.stop_daemon(), Some(0));
}

#[test]
fn quick_start_ready_pattern_matches_root_and_user_prompts() {
    let line = quick_start().into_iter().find(|l| l.contains("peer add sh1")).unwrap();
    let pat = line.split("--ready-pattern '").nth(1).and_then(|s| s.split('\'').next()).expect("a quoted --ready-pattern");
    let re = regex::RegexBuilder::new(pat).multi_line(true).build().unwrap();
    for prompt in ["bash-5.2$ ", "bash-5.2# ", "user@host:~$ ", "root@host:/tmp# "] {
        assert!(re.is_match(&format!("some output\n{prompt}")), "{pat:?} does not match {prompt:?}");
    }
    assert!(!re.is_match("bash-5.2$ echo running"), "not ready while a command line is typed");
}

/// The block under `## Several machines` that starts with ```` ```lang ````.
fn several_machines_block(lang: &str) -> String {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let section = readme.split("## Several machines").nth(1).and_then(|s| s.split("\n## ").next()).expect("a ## Several machines section");
    section.split(&format!("```{lang}\n")).nth(1).and_then(|s| s.split("```").next()).unwrap_or_else(|| panic!("a {lang} block under ## Several machines")).to_string()
}

/// The README's nats.conf is one nats-server accepts, and it grants each
/// host exactly the permissions the multi-host tests run with (which
/// MULTIHOST.md documents); its nats.toml is one the bridge accepts.
#[test]
fn several_machines_configs_are_the_tested_ones() {
    let conf = several_machines_block("conf");
    let flat: String = conf.split_whitespace().collect();
    for h in ["h1", "h2"] {
        let want: String = nats::host_permissions(h).split_whitespace().collect();
        let want = want.trim_start_matches('{').trim_end_matches('}');
        assert!(flat.contains(want), "README's permissions for {h} differ from tests/nats/mod.rs:\n{want}\n{flat}");
    }
    if on_path("nats-server") {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("nats.conf");
        std::fs::write(&f, conf.replace("/var/lib/nats/peerspool", &d.path().join("store").display().to_string())).unwrap();
        let out = Command::new("nats-server").arg("-t").arg("-c").arg(&f).output().unwrap();
        assert!(out.status.success(), "nats-server -t: {}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    } else {
        eprintln!("readme: nats-server not on PATH; the README's nats.conf was compared, not loaded");
    }
    let d = tempfile::tempdir().unwrap();
    let f = d.path().join("nats.toml");
    std::fs::write(&f, several_machines_block("toml")).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o600)).unwrap();
    let c = peerspool::bridge::config::parse_file(&f, "h1").unwrap_or_else(|e| panic!("README's nats.toml: {e}"));
    assert_eq!(c.url_redacted(), "nats://nats.example:4222");
}
