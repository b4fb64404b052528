//! The daemon against a real tmux with the built-in fake agent.

mod common;
use common::*;
use std::process::Stdio;
use std::time::{Duration, Instant};

const T: Duration = Duration::from_secs(30);

#[test]
fn wakes_asleep_peer_and_delivers_text_intact() {
    let mut e = Env::new();
    e.add_peer("alice", &PeerOpts::default());
    e.start_daemon();
    assert!(!e.session_alive("alice"));
    let big: String = (0..1400).map(|i| format!("line {i:04} of a long task with some padding text\n")).collect::<String>();
    let big = &big[..64 * 1024];
    let mid = big[..30 * 1024].replace("padding", "it's \"quoted\" $x ~ #{y};");
    let texts = [
        "plain hello",
        "-dash leading --flag",
        "multi\nline\n\n  indented\ttab",
        "quotes \"double\" 'single' `back` $(rm -rf /tmp/nothing) ${HOME} \\ backslash",
        "unicode: héllo ❯ 日本語 🚀",
        // tmux's own command language must not act on any of it.
        "tmux words: ~ ~root #comment {brace} }; %1 #{pane_id} $TMUX \\n \"\\\"'\\'; kill-server ;",
        "trailing semicolon;",
        mid.trim_end(),
        big.trim_end(),
    ];
    for t in &texts {
        e.send("alice", t);
    }
    // done/ is the daemon's last step, after the agent got the text.
    wait_for("all texts done", T, || e.count("alice", "spool/done") == texts.len());
    let got = e.bodies("alice");
    for (g, want) in got.iter().zip(texts.iter()) {
        if g != want {
            let at = g.chars().zip(want.chars()).take_while(|(a, b)| a == b).count();
            let near = |s: &str| s.chars().skip(at.saturating_sub(20)).take(60).collect::<String>();
            panic!("text arrived changed at char {at} (got {} chars, want {}): got {:?}, want {:?}", g.chars().count(), want.chars().count(), near(g), near(want));
        }
    }
    // One wake served every task; the session stays live.
    assert_eq!(e.lifecycle().matches("event=wake ").count(), 1);
    assert!(e.session_alive("alice"));
    assert_eq!(e.count("alice", "spool/done"), texts.len());
    assert_eq!(e.count("alice", "spool/new") + e.count("alice", "spool/cur"), 0);
    let d = e.delivery();
    assert!(d.contains("woke=fresh") && d.contains("outcome=delivered"));
    assert!(!d.contains("plain hello"), "the delivery log never holds message text");
    assert_eq!(e.stop_daemon(), Some(0));
}

#[test]
fn burst_of_500_arrives_exactly_once_in_order() {
    let mut e = Env::new();
    e.add_peer("bulk", &PeerOpts::default());
    // Written while the daemon is down: the start-up reconcile must find them.
    for i in 0..250 {
        e.drop_raw("bulk", &format!("{i:05}-pre.json"), format!(r#"{{"text":"task {i:05}"}}"#).as_bytes());
    }
    e.start_daemon();
    for i in 250..500 {
        e.drop_raw("bulk", &format!("{i:05}-live.json"), format!(r#"{{"text":"task {i:05}"}}"#).as_bytes());
    }
    wait_for("500 deliveries", Duration::from_secs(120), || e.bodies("bulk").len() >= 500);
    std::thread::sleep(Duration::from_millis(300));
    let got = e.bodies("bulk");
    let want: Vec<String> = (0..500).map(|i| format!("task {i:05}")).collect();
    assert_eq!(got, want, "exactly once, in name order");
    assert_eq!(e.count("bulk", "spool/done"), 500);
}

#[test]
fn escape_sequences_arrive_as_inert_text() {
    let mut e = Env::new();
    e.add_peer("safe", &PeerOpts::default());
    e.start_daemon();
    let evil = "start\x1b[201~\x1b[2J\x1b]0;title\x07\r\nafter\u{9b}31m\x03\x04end";
    e.drop_raw("safe", "evil.json", serde_json::json!({"text": evil}).to_string().as_bytes());
    e.send("safe", "next one");
    wait_for("both delivered", T, || e.bodies("safe").len() == 2);
    let got = e.bodies("safe");
    assert_eq!(got[0], "start[201~[2J]0;title\nafter31mend");
    assert!(!got[0].contains('\x1b'));
    assert_eq!(got[1], "next one", "the paste did not end early or swallow the next task");
}

#[test]
fn idle_reap_parks_and_next_wake_resumes() {
    let mut e = Env::new();
    e.add_peer("sleepy", &PeerOpts { idle_secs: Some(0.5), resume: true, ..Default::default() });
    e.start_daemon();
    e.send("sleepy", "first");
    wait_for("first delivered", T, || e.bodies("sleepy").len() == 1);
    wait_for("idle reap", T, || e.lifecycle().contains("event=reap cause=idle park=yes"));
    assert!(!e.session_alive("sleepy"));
    assert!(e.root.join("state/peers/sleepy/park.json").exists(), "resume-eligible mark");
    e.send("sleepy", "second");
    wait_for("second delivered", T, || e.bodies("sleepy").len() == 2);
    let l = e.lifecycle();
    assert!(l.contains("mode=fresh cause=not-parked"), "{l}");
    assert!(l.contains("mode=resume cause=parked-by-idle-reap"), "{l}");
    assert!(!e.root.join("state/peers/sleepy/park.json").exists(), "mark consumed");
    // A reap is not a death.
    assert!(!l.contains("event=death"));
}

#[test]
fn crash_loop_guard_trips_and_tasks_stay_queued() {
    let mut e = Env::new();
    e.var("PEERSPOOL_CRASHLOOP_MAX", "3");
    e.add_peer("crashy", &PeerOpts { argv: Some(vec!["sh".into(), "-c".into(), "echo boom; exit 3".into()]), ..Default::default() });
    e.start_daemon();
    let id = e.send("crashy", "will never land");
    wait_for("crash-loop refusal", T, || e.lifecycle().contains("event=wake-refused"));
    let l = e.lifecycle();
    assert_eq!(l.matches("event=death").count(), 3, "{l}");
    assert!(l.contains("crash-loop"), "{l}");
    assert!(e.peer_dir("crashy").join("spool/new").join(format!("{id}.json")).exists(), "task still queued");
    let st = e.ok(&["status", "--json"]);
    assert!(st.contains("crash-loop"), "{st}");
    // No storm: nothing more happens while blocked.
    std::thread::sleep(Duration::from_millis(700));
    assert_eq!(e.lifecycle().matches("event=death").count(), 3);
    // Seen in boot ("status 3") or after it ("status=3"), by timing.
    let l = e.lifecycle();
    assert!(l.contains("status 3") || l.contains("status=3"), "exit status recorded: {l}");
}

#[test]
fn a_program_killed_by_a_signal_is_logged_with_the_signal() {
    let mut e = Env::new();
    // tmux 3.3a leaves a few percent of exits unrecorded (`status=unknown`):
    // four deaths, and the signal must be named in every recorded one.
    e.var("PEERSPOOL_CRASHLOOP_MAX", "4");
    e.add_peer("sig", &PeerOpts { argv: Some(vec!["sh".into(), "-c".into(), "kill -KILL $$".into()]), ..Default::default() });
    e.start_daemon();
    e.send("sig", "x");
    wait_for("the crash-loop guard", T, || e.lifecycle().contains("event=wake-refused"));
    let l = e.lifecycle();
    let deaths: Vec<&str> = l.lines().filter(|l| l.contains("event=death")).collect();
    assert_eq!(deaths.len(), 4, "{l}");
    assert!(deaths.iter().all(|d| d.contains("signal=SIGKILL") || d.contains("status=unknown")), "a signal death says the signal: {l}");
    assert!(deaths.iter().any(|d| d.contains("signal=SIGKILL")), "the signal is named: {l}");
    assert!(!l.contains("status=1") && !l.contains("status=137"), "no status for a signal death: {l}");
}

#[test]
fn missing_command_fails_wake_with_reason() {
    let mut e = Env::new();
    e.add_peer("ghost", &PeerOpts { argv: Some(vec!["/nonexistent/agent-binary".into(), "--x".into()]), ..Default::default() });
    e.start_daemon();
    e.send("ghost", "hello");
    wait_for("wake refused", T, || e.lifecycle().contains("event=wake-refused"));
    wait_for("wake failure logged", T, || e.delivery().contains("outcome=wake-failed"));
    assert_eq!(e.count("ghost", "spool/new"), 1);
}

#[test]
fn stop_holds_tasks_and_start_releases_them() {
    let mut e = Env::new();
    e.add_peer("ops", &PeerOpts::default());
    e.start_daemon();
    e.send("ops", "one");
    wait_for("one", T, || e.bodies("ops").len() == 1);
    e.ok(&["stop", "ops"]);
    wait_for("session closed by stop", T, || !e.session_alive("ops") && e.lifecycle().contains("cause=operator-stop"));
    e.send("ops", "two");
    std::thread::sleep(Duration::from_millis(800));
    assert_eq!(e.bodies("ops").len(), 1, "a stopped peer is not woken");
    assert_eq!(e.count("ops", "spool/new"), 1);
    e.ok(&["start", "ops"]);
    wait_for("two after start", T, || e.bodies("ops").len() == 2);
    assert!(!e.lifecycle().contains("event=death"), "a stop is not a death");
}

#[test]
fn restart_delivers_leftovers_in_cur_and_new() {
    let mut e = Env::new();
    e.add_peer("r", &PeerOpts::default());
    let cur = e.peer_dir("r").join("spool/cur/00001-inflight.json");
    std::fs::write(&cur, r#"{"text":"was in flight"}"#).unwrap();
    e.drop_raw("r", "00002-queued.json", br#"{"text":"was queued"}"#);
    e.start_daemon();
    wait_for("both", T, || e.bodies("r").len() == 2);
    assert_eq!(e.bodies("r"), vec!["was in flight", "was queued"]);
    // A clean stop leaves every task in exactly one final place.
    assert_eq!(e.stop_daemon(), Some(0));
    assert_eq!(e.count("r", "spool/done"), 2);
    assert_eq!(e.count("r", "spool/cur"), 0);
    // Sessions outlive a daemon restart and are adopted.
    assert!(e.session_alive("r"));
    e.start_daemon();
    e.send("r", "after restart");
    wait_for("third", T, || e.bodies("r").len() == 3);
    assert_eq!(e.lifecycle().matches("event=wake ").count(), 1, "the live session was reused");
}

/// A daemon killed right after starting a paste can leave its tmux client
/// running: the paste lands after the next daemon has looked at the screen.
/// The next daemon must see it and press Enter, not paste a second copy
/// that would merge with it (or with the task after it).
#[test]
fn late_paste_from_a_dead_daemon_is_submitted_once() {
    let mut e = Env::new();
    e.add_peer("r", &PeerOpts::default());
    e.start_daemon();
    e.send("r", "warm up");
    wait_for("warm", T, || e.bodies("r").len() == 1);
    assert_eq!(e.stop_daemon(), Some(0));
    std::fs::write(e.peer_dir("r").join("spool/cur/00001-late.json"), r#"{"id":"late1","from":"tester","text":"late paste"}"#).unwrap();
    e.drop_raw("r", "00002-next.json", br#"{"text":"next"}"#);
    let socket = e.socket("r");
    // The dead daemon's paste, arriving just after the new daemon attaches.
    let late = std::thread::spawn(move || {
        let tmux = |args: &[&str], input: Option<&[u8]>| {
            let mut c = std::process::Command::new("tmux");
            c.arg("-S").arg(&socket).args(args).stdin(std::process::Stdio::piped()).stdout(std::process::Stdio::piped());
            let mut ch = c.spawn().expect("tmux");
            if let (Some(b), Some(mut i)) = (input, ch.stdin.take()) {
                std::io::Write::write_all(&mut i, b).expect("stdin");
            }
            ch.wait_with_output().expect("tmux")
        };
        let start = Instant::now();
        while start.elapsed() < T && tmux(&["list-clients"], None).stdout.is_empty() {
            std::thread::sleep(Duration::from_millis(2));
        }
        std::thread::sleep(Duration::from_millis(40));
        let text = b"[peerspool task late1 from tester]\nlate paste";
        tmux(&["load-buffer", "-b", "t", "-", ";", "paste-buffer", "-p", "-d", "-b", "t", "-t", "peer:0.0"], Some(text));
    });
    e.start_daemon();
    late.join().expect("late paste thread");
    wait_for("late and next", T, || e.bodies("r").len() == 3);
    std::thread::sleep(Duration::from_millis(300));
    e.send("r", "final");
    wait_for("final", T, || e.bodies("r").len() >= 4);
    assert_eq!(e.bodies("r"), vec!["warm up", "late paste", "next", "final"]);
}

#[test]
fn second_daemon_refuses() {
    let mut e = Env::new();
    e.start_daemon();
    let out = e.run(&["daemon"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("already running"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "one clear line: {err}");
}

#[test]
fn bad_files_are_failed_with_reasons_and_good_ones_keep_flowing() {
    let mut e = Env::new();
    e.add_peer("p", &PeerOpts::default());
    e.start_daemon();
    e.drop_raw("p", "a-bad.json", b"{not json");
    e.drop_raw("p", "b-empty.json", br#"{"text":""}"#);
    std::os::unix::fs::symlink("/etc/passwd", e.peer_dir("p").join("spool/new/c-link.json")).unwrap();
    let fifo = e.peer_dir("p").join("spool/new/d-fifo.json");
    let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: mkfifo on a path we own.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    e.drop_raw("p", "e-good.json", br#"{"text":"still served"}"#);
    wait_for("good one delivered", T, || e.bodies("p").len() == 1);
    let failed = e.peer_dir("p").join("spool/failed");
    for (name, code) in [("a-bad.json", "invalid-json"), ("b-empty.json", "empty-text"), ("c-link.json", "not-regular-file"), ("d-fifo.json", "not-regular-file")] {
        let err = read(&failed.join(format!("{name}.error")));
        assert!(err.starts_with(code), "{name}: {err}");
        assert!(std::fs::symlink_metadata(failed.join(name)).is_ok(), "{name} kept in failed/");
    }
}

#[test]
fn sigterm_exits_zero_and_profile_reload_applies() {
    let mut e = Env::new();
    e.add_peer("x", &PeerOpts::default());
    e.start_daemon();
    e.send("x", "one");
    wait_for("one", T, || e.bodies("x").len() == 1);
    // Edit the profile while running: an invalid one is reported, not fatal.
    let pj = e.peer_dir("x").join("peer.json");
    let good = read(&pj);
    std::fs::write(&pj, r#"{"runtime":"command","cwd":"relative"}"#).unwrap();
    wait_for("invalid profile logged", T, || e.lifecycle().contains("event=profile-invalid"));
    std::fs::write(&pj, good).unwrap();
    wait_for("reloaded", T, || e.lifecycle().contains("event=profile-reloaded"));
    assert_eq!(e.stop_daemon(), Some(0));
}

/// A daemon killed by SIGKILL leaves its control client attached, with no
/// reader for its output. When the next daemon reaped that session, tmux's
/// server waited for the orphan forever, refusing every new client with
/// "server exited unexpectedly", so the peer could never be woken again;
/// now the reap ends the wedged server and the orphan (`wedge`).
#[test]
fn a_reap_after_a_daemon_sigkill_leaves_the_peer_wakeable() {
    let mut e = Env::new();
    // `cat` echoes the paste: output the orphan could never hand on.
    e.add_peer("w", &PeerOpts { idle_secs: Some(5.0), argv: Some(vec!["cat".into()]), ..Default::default() });
    e.start_daemon();
    e.send("w", "first");
    wait_for("first delivered", T, || e.delivery().contains("outcome=delivered"));
    std::thread::sleep(Duration::from_secs(3));
    e.kill_daemon();
    e.start_daemon();
    wait_for("idle reap", T, || e.lifecycle().contains("peer=w event=reap"));
    e.send("w", "second");
    wait_for("second delivered", T, || e.delivery().matches("outcome=delivered").count() == 2);
    assert!(!e.lifecycle().contains("event=wake-failed"), "{}", e.lifecycle());
}

/// A server already wedged when the daemon comes (an orphaned client from
/// an older daemon, here a stopped one): told to exit, it waits for that
/// client forever and refuses everyone else. The wake ends it and its
/// clients, found by the peer's socket in their argv, and starts afresh.
#[test]
fn a_wedged_tmux_server_is_ended_and_the_peer_woken() {
    let mut e = Env::new();
    e.add_peer("w", &PeerOpts { argv: Some(vec!["cat".into()]), ..Default::default() });
    let sock = e.socket("w");
    std::fs::create_dir_all(sock.parent().unwrap()).unwrap();
    let tmux = |args: &[&str]| std::process::Command::new("tmux").arg("-S").arg(&sock).args(args).output().unwrap();
    assert!(tmux(&["-f", "/dev/null", "new-session", "-d", "-s", "peer", "cat"]).status.success());
    // Ended by its pid even when the test fails (a stopped client keeps
    // the server it wedged).
    struct Orphan(std::process::Child);
    impl Drop for Orphan {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let mut orphan = Orphan(
        std::process::Command::new("tmux")
            .arg("-S").arg(&sock).args(["-C", "attach-session", "-t", "peer"])
            .stdin(Stdio::piped()).stdout(Stdio::null()).stderr(Stdio::null())
            .spawn().unwrap(),
    );
    wait_for("the client attached", T, || String::from_utf8_lossy(&tmux(&["list-clients"]).stdout).lines().count() == 1);
    signal(orphan.0.id(), libc::SIGSTOP);
    tmux(&["kill-server"]);
    wait_for("the server wedged", T, || String::from_utf8_lossy(&tmux(&["list-sessions"]).stderr).contains("server exited unexpectedly"));
    e.start_daemon();
    e.send("w", "hello");
    wait_for("delivered", T, || e.delivery().contains("outcome=delivered"));
    assert!(!e.delivery().contains("outcome=wake-failed"), "{}", e.delivery());
    let st = orphan.0.wait().unwrap();
    assert_eq!(std::os::unix::process::ExitStatusExt::signal(&st), Some(libc::SIGKILL), "the orphan was ended");
    assert!(e.daemon_stderr().contains("ended it and its clients"), "{}", e.daemon_stderr());
}
