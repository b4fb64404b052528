//! A boot that never becomes ready (issue 15, defect 3): status says what
//! it waits for; stop, a changed profile and a reload cut it short at once,
//! none of them a death.

mod common;
use common::*;
use std::time::{Duration, Instant};

const T: Duration = Duration::from_secs(30);

fn add(e: &mut Env, pattern: &str, force: bool) {
    let log = e.agent_log("b").display().to_string();
    let w = e.work.display().to_string();
    let mut args = vec!["peer", "add", "b", "--runtime", "command", "--cwd", &w, "--activity", &log, "--ready-pattern", pattern];
    if force {
        args.push("--force");
    }
    args.extend(["--", BIN, "agent", "--log", &log]);
    e.ok(&args);
}

fn booting(e: &Env) -> Option<String> {
    let v: serde_json::Value = serde_json::from_str(&e.ok(&["status", "--json"])).ok()?;
    v["peers"][0]["booting"].as_str().map(str::to_string)
}

/// Waits for `what` in the lifecycle log after `from` bytes; returns how long it took.
fn logged_within(e: &Env, from: usize, what: &str) -> Duration {
    let t = Instant::now();
    wait_for(what, T, || e.lifecycle().get(from..).is_some_and(|l| l.contains(what)));
    t.elapsed()
}

#[test]
fn stuck_boots_are_shown_and_cut_short() {
    let mut e = Env::new();
    add(&mut e, "^never-ready$", false);
    e.track_peer("b");
    e.start_daemon();
    e.send("b", "hello");
    wait_for("status shows the boot", T, || booting(&e).is_some_and(|b| b.contains("screen: agent>")));
    let b = booting(&e).unwrap();
    assert!(b.starts_with("booting: waiting for ready pattern `^never-ready$` (") && b.contains(" s of 240)"), "{b}");
    let human = e.ok(&["status"]);
    assert!(human.contains("booting: waiting for ready pattern"), "{human}");

    // Stop: the session ends now, not at the deadline.
    let mark = e.lifecycle().len();
    e.ok(&["stop", "b"]);
    let took = logged_within(&e, mark, "event=wake-interrupted");
    assert!(took < Duration::from_secs(5), "stop took {took:?}");
    assert!(e.lifecycle()[mark..].contains("reason=operator-stop"));
    wait_for("session gone", T, || !e.session_alive("b"));
    assert!(booting(&e).is_none());

    // A changed profile: the boot restarts with it.
    e.ok(&["start", "b"]);
    wait_for("booting again", T, || booting(&e).is_some());
    let mark = e.lifecycle().len();
    add(&mut e, "^agent> ", true);
    logged_within(&e, mark, "reason=profile-changed");
    wait_for("delivered with the fixed profile", T, || e.count("b", "spool/done") == 1);

    // A reload (SIGHUP) cuts a stuck boot short too.
    e.ok(&["stop", "b"]);
    wait_for("session closed", T, || !e.session_alive("b"));
    add(&mut e, "^never-ready$", true);
    e.send("b", "again");
    e.ok(&["start", "b"]);
    wait_for("booting once more", T, || booting(&e).is_some());
    let mark = e.lifecycle().len();
    signal(e.daemon.as_ref().unwrap().id(), libc::SIGHUP);
    logged_within(&e, mark, "reason=reload");

    let life = e.lifecycle();
    assert!(!life.contains("event=death") && !life.contains("event=wake-failed"), "none of it is a failure: {life}");
    assert_eq!(e.stop_daemon(), Some(0));
}
