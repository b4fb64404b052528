//! `peerspool top` driven in a real tmux pane (80×24, private socket):
//! keys sent, the screen captured.

mod common;
use common::*;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

/// A tmux server of the test's own, killed by its socket on drop.
struct Pane {
    sock: PathBuf,
}

impl Pane {
    fn tmux(&self, args: &[&str]) -> String {
        let out = Command::new("tmux").arg("-S").arg(&self.sock).args(args).output().expect("tmux");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// A new 80×24 session `name` running `script` with the test's root.
    fn open(&self, env: &Env, name: &str, script: &str) {
        let cmd = format!("env PEERSPOOL_HOME='{}' BIN='{}' sh -c '{script}; exec sleep 600'", env.root.display(), BIN);
        let out = Command::new("tmux").arg("-S").arg(&self.sock).args(["new-session", "-d", "-s", name, "-x", "80", "-y", "24", &cmd]).output().expect("tmux");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }

    fn screen(&self, name: &str) -> String {
        self.tmux(&["capture-pane", "-p", "-t", name])
    }

    fn keys(&self, name: &str, keys: &[&str]) {
        let mut a = vec!["send-keys", "-t", name];
        a.extend_from_slice(keys);
        self.tmux(&a);
    }

    fn wait(&self, name: &str, what: &str, cond: impl Fn(&str) -> bool) -> String {
        let mut last = String::new();
        let ok = (0..500).any(|_| {
            last = self.screen(name);
            cond(&last) || {
                std::thread::sleep(Duration::from_millis(20));
                false
            }
        });
        assert!(ok, "timed out waiting for {what}; screen:\n{last}");
        last
    }
}

impl Drop for Pane {
    fn drop(&mut self) {
        let _ = Command::new("tmux").arg("-S").arg(&self.sock).arg("kill-server").output();
    }
}

/// The row of `peer` on the screen.
fn row<'a>(screen: &'a str, peer: &str) -> &'a str {
    screen.lines().find(|l| l.trim_start_matches(['│', '>', ' ']).starts_with(&format!("{peer} "))).unwrap_or("")
}

/// What the shell prints after top: its exit status and the tty modes.
const AFTER: &str = "echo TOP-EXIT=$?; stty -a | tr \" ;\" \"\\n\\n\" | grep -xE -- \"-?(icanon|echo)\"";

fn restored(screen: &str) -> bool {
    screen.contains("TOP-EXIT=0") && screen.lines().any(|l| l.trim() == "icanon") && screen.lines().any(|l| l.trim() == "echo")
}

#[test]
fn top_shows_peers_stops_and_starts_them_and_restores_the_terminal() {
    let mut env = Env::new();
    env.var("PEERSPOOL_SETTLE_SECS", "0.2");
    env.add_peer("alice", &PeerOpts { reply: true, work_ms: 20_000, ..Default::default() });
    env.add_peer("bob", &PeerOpts::default());
    env.start_daemon();
    let task = env.ok(&["send", "alice", "think hard"]);
    wait_for("alice at work", Duration::from_secs(20), || env.bodies("alice").len() == 1);
    // A second task waits: the daemon watches alice's turn for it.
    env.ok(&["send", "alice", "then this"]);
    let pane = Pane { sock: env.dir.path().join("top.sock") };
    pane.open(&env, "t", &format!("\"$BIN\" top --interval 0.2; {AFTER}"));
    let s = pane.wait("t", "both peers and their states", |s| row(s, "alice").contains("working") && row(s, "bob").contains("asleep"));
    assert!(row(&s, "alice").contains("working  1 "), "one task waits: {s}");
    assert!(s.contains("daemon running"), "{s}");
    assert!(s.lines().count() <= 24 && s.lines().all(|l| l.chars().count() <= 80), "{s}");
    assert!(row(&s, "alice").contains(&task[task.len() - 8..]), "the task in flight: {s}");

    // s on bob: the same as `peerspool stop bob`, and again: start.
    pane.keys("t", &["Down", "s"]);
    pane.wait("t", "bob stopped", |s| row(s, "bob").contains("stopped"));
    assert!(env.ok(&["status"]).lines().any(|l| l.starts_with("bob ") && l.contains("STOPPED")));
    pane.keys("t", &["s"]);
    pane.wait("t", "bob started", |s| row(s, "bob").contains("asleep"));
    assert!(!env.ok(&["status"]).contains("STOPPED"));

    // Enter on alice: the story of her task.
    pane.keys("t", &["Up", "Enter"]);
    let s = pane.wait("t", "the show overlay", |s| s.contains(" show ") && s.contains("delivered"));
    assert!(s.contains(&task[..20]), "{s}");
    pane.keys("t", &["Escape"]);
    pane.wait("t", "the overlay closed", |s| !s.contains("delivered") && s.contains(" peers "));

    pane.keys("t", &["q"]);
    let s = pane.wait("t", "top gone and the terminal restored", restored);
    assert!(!s.contains(" peers "), "the alternate screen is left: {s}");

    // Ctrl-C ends it the same way.
    pane.open(&env, "c", &format!("\"$BIN\" top; {AFTER}"));
    pane.wait("c", "top up", |s| s.contains(" peers "));
    pane.keys("c", &["C-c"]);
    pane.wait("c", "restored after Ctrl-C", restored);

    // Into a pipe: refused before touching the terminal.
    pane.open(&env, "p", &format!("(\"$BIN\" top; echo TOP-STATUS=$? >&2) | cat; {AFTER}"));
    let s = pane.wait("p", "the refusal", |s| s.contains("TOP-STATUS=2") && restored(s));
    assert!(s.contains("peerspool: top needs a terminal"), "{s}");

    // The terminal goes away (ssh dropped: the pane is killed): top ends.
    let pidfile = env.dir.path().join("top.pid");
    pane.open(&env, "h", &format!("echo $$ > {}; exec \"$BIN\" top", pidfile.display()));
    pane.wait("h", "top up", |s| s.contains(" peers "));
    let pid: i32 = read(&pidfile).trim().parse().expect("top's pid");
    pane.tmux(&["kill-session", "-t", "h"]);
    // SAFETY: signal 0 only asks whether the process (ours, via tmux) exists.
    wait_for("top gone after the hang-up", Duration::from_secs(10), || unsafe { libc::kill(pid, 0) } != 0);
}
