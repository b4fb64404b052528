//! The CLI a user trusts (issue 15): what `send` says and how `--wait`
//! ends, usage errors that write nothing, the inbox verb, closed pipes,
//! errors before any root exists. The real binary, real tmux, temp roots.

mod common;
use common::*;
use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

const T: Duration = Duration::from_secs(30);

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).to_string()
}

/// Waits for a child with a bound; kills it (by its pid) past the bound.
/// Returns the exit status and the child's user+system CPU time.
fn wait_child(mut c: Child, limit: Duration) -> (std::process::ExitStatus, Duration) {
    let deadline = Instant::now() + limit;
    loop {
        let mut status = 0;
        // SAFETY: an all-zero rusage is a valid value; wait4 fills it.
        let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
        // SAFETY: waits (without blocking) for our own child only.
        let r = unsafe { libc::wait4(c.id() as i32, &mut status, libc::WNOHANG, &mut ru) };
        if r == c.id() as i32 {
            let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
            let st = std::os::unix::process::ExitStatusExt::from_raw(status);
            return (st, tv(ru.ru_utime) + tv(ru.ru_stime));
        }
        if Instant::now() > deadline {
            let _ = c.kill();
            let _ = c.wait();
            panic!("child did not exit within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn send_wait_on_an_empty_inbox_costs_no_cpu() {
    let mut e = Env::new();
    e.add_peer("idle", &PeerOpts::default());
    let c = e.cmd(&["send", "idle", "--wait", "--timeout", "3", "anyone?"]).stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
    let (st, cpu) = wait_child(c, T);
    assert_eq!(st.code(), Some(1), "a wait without a reply times out with 1");
    // A spinning waiter burns ~3 s here; a sleeping one a few milliseconds
    // (process start included). The bound is loose for a loaded machine.
    assert!(cpu < Duration::from_millis(500), "send --wait used {cpu:?} of CPU in a 3 s wait");
}

#[test]
fn usage_errors_enqueue_nothing() {
    let mut e = Env::new();
    e.add_peer("p", &PeerOpts::default());
    e.add_peer("other", &PeerOpts::default());
    let long_topic = "t".repeat(300);
    let cases: Vec<Vec<&str>> = vec![
        vec!["send", "p", "--wait", "--timeout", "-1", "x"],
        vec!["send", "p", "--wait", "--timeout", "0", "x"],
        vec!["send", "p", "--wait", "--timeout", "NaN", "x"],
        vec!["send", "p", "--wait", "--reply-to", "other", "x"],
        vec!["send", "p", "--wait", "--from", "other", "x"],
        vec!["send", "p", "--wait", "--reply-to", "Bad/Name", "x"],
        vec!["send", "p", "--topic", &long_topic, "x"],
        vec!["send", "p", "   "],
    ];
    for args in &cases {
        let o = e.run(args);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stderr(&o));
        let err = stderr(&o);
        assert_eq!(err.lines().count(), 1, "{args:?}: one line, got {err:?}");
        assert!(err.starts_with("peerspool: "), "{err}");
        assert_eq!(e.count("p", "spool/new"), 0, "{args:?} left a task behind");
    }
    // Still usable afterwards.
    e.send("p", "fine");
    assert_eq!(e.count("p", "spool/new"), 1);
}

#[test]
fn send_says_why_a_task_will_wait() {
    let mut e = Env::new();
    e.add_peer("p", &PeerOpts::default());
    let o = e.run(&["send", "p", "hello"]);
    assert!(o.status.success());
    let err = stderr(&o);
    assert!(err.contains("no daemon is running") && err.contains("peerspool daemon"), "{err}");
    e.ok(&["stop", "p"]);
    e.start_daemon();
    let o = e.run(&["send", "p", "hello again"]);
    let err = stderr(&o);
    assert!(o.status.success());
    assert!(!err.contains("no daemon"), "{err}");
    assert!(err.contains("peer p is stopped") && err.contains("peerspool start p"), "{err}");
    e.ok(&["start", "p"]);
    wait_for("both delivered", T, || e.count("p", "spool/done") == 2);
    // Nothing to say when the task will go straight through.
    let o = e.run(&["send", "p", "third"]);
    assert!(o.status.success() && o.stderr.is_empty(), "{}", stderr(&o));
}

#[test]
fn send_wait_ends_early_when_the_wake_fails() {
    let mut e = Env::new();
    let gone = e.work.join("gone");
    std::fs::create_dir(&gone).unwrap();
    e.ok(&["peer", "add", "w", "--runtime", "command", "--cwd", gone.to_str().unwrap(), "--", "sh"]);
    e.track_peer("w");
    std::fs::remove_dir(&gone).unwrap();
    e.start_daemon();
    let t0 = Instant::now();
    let o = e.run(&["send", "w", "--wait", "--timeout", "120", "hello"]);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(4), "{err}");
    assert!(t0.elapsed() < Duration::from_secs(60), "waited {:?}", t0.elapsed());
    assert!(err.contains("cannot be woken") && err.contains("does not exist") && err.contains("stays queued"), "{err}");
    assert_eq!(e.count("w", "spool/new") + e.count("w", "spool/cur"), 1, "the task stays queued");
    // A block that is already there ends a later wait too, once the daemon
    // tried again for it (or at once for a block it does not retry).
    let o = e.run(&["send", "w", "--wait", "--timeout", "120", "again"]);
    assert_eq!(o.status.code(), Some(4), "{}", stderr(&o));
    assert_eq!(e.stop_daemon(), Some(0));
}

#[test]
fn send_wait_ends_early_when_the_task_fails() {
    let mut e = Env::new();
    e.var("PEERSPOOL_MAX_BYTES", "200");
    e.add_peer("small", &PeerOpts::default());
    e.start_daemon();
    let text = "x".repeat(400);
    let o = e.run(&["send", "small", "--wait", "--timeout", "60", &text]);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(3), "{err}");
    assert!(err.contains("failed") && err.contains("too-large"), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert_eq!(e.stop_daemon(), Some(0));
}

#[test]
fn ctrl_c_of_send_wait_says_the_task_is_queued() {
    let mut e = Env::new();
    e.add_peer("p", &PeerOpts::default());
    let mut c = e.cmd(&["send", "p", "--wait", "--timeout", "60", "hi"]).stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
    let mut r = BufReader::new(c.stderr.take().unwrap());
    let mut note = String::new();
    r.read_line(&mut note).unwrap();
    assert!(note.contains("no daemon"), "{note}");
    // The handler is installed before the task is written.
    signal(c.id(), libc::SIGINT);
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut r, &mut rest).unwrap();
    let (st, _) = wait_child(c, T);
    assert_eq!(st.code(), Some(130), "{st:?} {rest}");
    assert!(rest.contains("still queued") && rest.contains("peerspool inbox read"), "{rest}");
    assert_eq!(e.count("p", "spool/new"), 1);
}

#[test]
fn orphaned_replies_are_listed_read_and_pruned() {
    let mut e = Env::new();
    e.var("PEERSPOOL_RESCAN_SECS", "0.3");
    e.add_peer("slow", &PeerOpts { reply: true, work_ms: 2500, ..Default::default() });
    e.start_daemon();
    let o = e.run(&["send", "slow", "--wait", "--timeout", "0.5", "what is 6*7?"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let err = stderr(&o);
    let id = err.split("task ").nth(1).and_then(|s| s.split_whitespace().next()).expect("task id in the message").to_string();
    assert!(err.contains(&format!("peerspool inbox read --addr tester {id}")), "{err}");
    let new = e.root.join("inbox/tester/new");
    wait_for("the late reply", T, || std::fs::read_dir(&new).map(|d| d.count() == 1).unwrap_or(false));
    let list: serde_json::Value = serde_json::from_str(&e.ok(&["inbox", "list", "--json"])).unwrap();
    assert_eq!(list.as_array().map(Vec::len), Some(1), "{list}");
    assert_eq!(list[0]["in_reply_to"], id.as_str());
    assert_eq!(list[0]["from"], "slow");
    let human = e.ok(&["inbox", "list"]);
    assert!(human.contains(&id), "{human}");
    let o = e.run(&["inbox", "read", "nosuch"]);
    assert_eq!(o.status.code(), Some(1));
    let text = e.ok(&["inbox", "read", &id]);
    assert!(!text.is_empty());
    assert_eq!(list[0]["text"].as_str().map(str::trim_end), Some(text.as_str()));
    assert_eq!(std::fs::read_dir(&new).unwrap().count(), 0, "read consumes");
    assert_eq!(e.ok(&["inbox", "list"]), "inbox tester: empty");
    let o = e.run(&["inbox", "rm"]);
    assert_eq!(o.status.code(), Some(2), "rm needs names or --all");
    e.stop_daemon();

    // Pruned like done/: by age here.
    e.var("PEERSPOOL_DONE_MAX_AGE_SECS", "1");
    e.start_daemon();
    let cur = e.root.join("inbox/tester/cur");
    assert_eq!(std::fs::read_dir(&cur).unwrap().count(), 1);
    wait_for("the consumed reply pruned", T, || std::fs::read_dir(&cur).map(|d| d.count() == 0).unwrap_or(false));
    // The line is written just after the files go.
    wait_for("the prune logged", T, || e.lifecycle().contains("inbox_pruned=1"));
    e.stop_daemon();
}

#[test]
fn inbox_rm_deletes_named_or_all() {
    let e = Env::new();
    let new = e.root.join("inbox/tester/new");
    std::fs::create_dir_all(&new).unwrap();
    for (n, irt) in [("a", "t1"), ("b", "t2"), ("c", "t3")] {
        std::fs::write(new.join(format!("{n}.json")), format!(r#"{{"v":1,"id":"{n}","from":"p","to":"tester","in_reply_to":"{irt}","text":"reply {n}"}}"#)).unwrap();
    }
    assert_eq!(e.ok(&["inbox", "rm", "t2"]), "removed 1 message(s) from inbox tester");
    let ids: Vec<String> = serde_json::from_str::<serde_json::Value>(&e.ok(&["inbox", "list", "--json"])).unwrap().as_array().unwrap().iter().map(|m| m["id"].as_str().unwrap().to_string()).collect();
    assert_eq!(ids, ["a", "c"]);
    assert_eq!(e.ok(&["inbox", "read", "--json", "a"]).matches("\"id\": \"a\"").count(), 1);
    assert_eq!(e.ok(&["inbox", "rm", "--all"]), "removed 1 message(s) from inbox tester");
    assert_eq!(std::fs::read_dir(&new).unwrap().count(), 0);
}

/// Runs a command with stdout on a pipe that is closed after one line.
fn closed_after_one_line(e: &Env, args: &[&str]) -> (std::process::ExitStatus, String) {
    let mut c = e.cmd(args).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let mut out = BufReader::new(c.stdout.take().unwrap());
    let mut first = String::new();
    out.read_line(&mut first).unwrap();
    assert!(!first.is_empty(), "{args:?} printed nothing");
    drop(out);
    let mut err = String::new();
    std::io::Read::read_to_string(&mut c.stderr.take().unwrap(), &mut err).unwrap();
    let (st, _) = wait_child(c, T);
    (st, err)
}

#[test]
fn a_closed_pipe_ends_the_cli_quietly() {
    let mut e = Env::new();
    e.add_peer("p", &PeerOpts::default());
    let files: Vec<String> = (0..3000)
        .map(|i| {
            let f = e.work.join(format!("task-with-a-longish-name-{i:05}.json"));
            std::fs::write(&f, r#"{"text":"x"}"#).unwrap();
            f.display().to_string()
        })
        .collect();
    let mut args = vec!["spool", "check"];
    args.extend(files.iter().map(String::as_str));
    let log = e.root.join("log/lifecycle.log");
    std::fs::write(&log, "ts=2026-01-01T00:00:00Z event=x peer=p padding=yyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyy\n".repeat(20_000)).unwrap();
    for args in [args, vec!["log"]] {
        let (st, err) = closed_after_one_line(&e, &args);
        assert!(!err.contains("panicked") && !err.contains("Broken pipe"), "{:?}: {err}", &args[..2.min(args.len())]);
        assert!(err.is_empty(), "nothing on stderr, got {err:?}");
        let quiet = st.code() == Some(0) || std::os::unix::process::ExitStatusExt::signal(&st) == Some(libc::SIGPIPE);
        assert!(quiet, "{:?} ended with {st:?}", &args[..1]);
    }
}

#[test]
fn errors_before_any_root_exist_are_one_line_with_the_next_step() {
    let e = Env::new();
    for args in [vec!["status"], vec!["status", "--json"], vec!["send", "p", "hello"]] {
        let o = e.run(&args);
        assert_eq!(o.status.code(), Some(1), "{args:?}");
        let err = stderr(&o);
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.contains("no root at") && err.contains("peerspool peer add"), "{err}");
        assert!(!err.contains("os error"), "{err}");
    }
    assert!(!e.root.exists(), "nothing was created");
}

#[test]
fn an_io_error_names_its_cause_once() {
    let e = Env::new();
    // A root that is a file: the cause must not be printed twice.
    std::fs::write(&e.root, "not a dir").unwrap();
    let o = e.run(&["peer", "add", "p", "--runtime", "command", "--cwd", "/tmp", "--", "sh"]);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    let cause = "File exists (os error 17)";
    let cause2 = "Not a directory (os error 20)";
    assert!(err.matches(cause).count() + err.matches(cause2).count() == 1, "the cause once: {err}");
}

#[test]
fn peer_rm_while_the_daemon_runs_is_whole_and_keeps_queued_tasks() {
    let mut e = Env::new();
    e.add_peer("a", &PeerOpts::default());
    e.add_peer("b", &PeerOpts::default());
    e.ok(&["stop", "b"]);
    e.start_daemon();
    e.send("a", "wake up");
    wait_for("a delivered", T, || e.count("a", "spool/done") == 1);
    assert!(e.session_alive("a"));
    e.send("b", "one");
    e.send("b", "two");

    let o = e.run(&["peer", "rm", "b"]);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("2 queued") && err.contains("--force") && err.contains("nothing was removed"), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert_eq!(e.count("b", "spool/new"), 2, "queued tasks kept");
    assert!(e.peer_dir("b").join("peer.json").is_file());

    assert_eq!(e.ok(&["peer", "rm", "a"]), "removed peer a");
    let state = e.root.join("state/peers/a");
    assert!(!e.peer_dir("a").exists() && !state.exists());
    assert!(!e.session_alive("a"));
    let life = e.lifecycle();
    assert!(life.contains("peer=a event=reap cause=peer-removed"), "{life}");
    assert!(!life.contains("peer=a event=death"), "a removal is not a death: {life}");
    // The daemon does not re-create any of it.
    std::thread::sleep(Duration::from_millis(1500));
    assert!(!e.peer_dir("a").exists() && !state.exists());
    let left: Vec<_> = std::fs::read_dir(e.root.join("peers")).unwrap().filter_map(|d| d.ok()).map(|d| d.file_name()).collect();
    assert_eq!(left, ["b"], "nothing else left in peers/");

    assert_eq!(e.ok(&["peer", "rm", "--force", "b"]), "removed peer b and 2 queued task(s)");
    assert!(!e.peer_dir("b").exists());
    assert!(e.daemon_running());
    // The name is free again, and the daemon serves the new peer.
    e.add_peer("a", &PeerOpts::default());
    e.send("a", "hello again");
    wait_for("new a delivered", T, || e.count("a", "spool/done") == 1);
    assert_eq!(e.stop_daemon(), Some(0));
}

#[test]
fn peer_rm_without_a_daemon_ends_the_session() {
    let mut e = Env::new();
    e.add_peer("a", &PeerOpts::default());
    e.start_daemon();
    e.send("a", "wake up");
    wait_for("a delivered", T, || e.count("a", "spool/done") == 1);
    // Sessions outlive the daemon (the next one adopts them).
    e.stop_daemon();
    assert!(e.session_alive("a"));
    assert_eq!(e.ok(&["peer", "rm", "a"]), "removed peer a");
    assert!(!e.session_alive("a") && !e.peer_dir("a").exists());
    let o = e.run(&["peer", "rm", "a"]);
    assert_eq!(o.status.code(), Some(2), "unknown peer: {}", stderr(&o));
}

#[test]
fn setup_errors_are_configuration_not_deaths() {
    let mut e = Env::new();
    // The daemon refuses to start without tmux, saying so.
    let o = e.cmd(&["daemon"]).env("PEERSPOOL_TMUX", "/no/such/tmux").stdin(Stdio::null()).output().unwrap();
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("/no/such/tmux") && err.contains("install tmux") && err.lines().count() == 1, "{err}");

    e.var("PEERSPOOL_CLAUDE_BIN", "/no/such/claude");
    let w = e.work.display().to_string();
    let o = e.run(&["peer", "add", "m", "--runtime", "command", "--cwd", &w, "--", "no-such-program-xyz", "--flag"]);
    assert!(stderr(&o).contains("not on PATH"), "{}", stderr(&o));
    e.track_peer("m");
    let o = e.run(&["peer", "add", "cl", "--runtime", "claude", "--cwd", &w]);
    assert!(stderr(&o).contains("/no/such/claude"), "{}", stderr(&o));
    e.track_peer("cl");
    e.start_daemon();
    for (peer, want) in [("m", "program \"no-such-program-xyz\" not found on the daemon's PATH"), ("cl", "program \"/no/such/claude\" not found")] {
        let o = e.run(&["send", peer, "--wait", "--timeout", "60", "hello"]);
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(4), "{peer}: {:?} {err}", o.status);
        assert!(err.contains(want), "{err}");
        let st: serde_json::Value = serde_json::from_str(&e.ok(&["status", "--json"])).unwrap();
        let p = st["peers"].as_array().unwrap().iter().find(|p| p["name"] == peer).unwrap().clone();
        assert!(p["blocked"].as_str().is_some_and(|b| b.starts_with("config: ") && b.contains(want)), "{p}");
        assert_eq!(p["recent_deaths"], 0, "a setup error is not a death: {p}");
        assert_eq!(p["session"], "asleep");
    }
    let life = e.lifecycle();
    assert!(!life.contains("event=death"), "{life}");
    assert_eq!(life.matches("peer=m event=wake-refused").count(), 1, "said once: {life}");
    assert_eq!(e.stop_daemon(), Some(0));
}

/// `send --wait` ending on a verdict at once, hundreds of times: none may
/// die of a signal. signal-hook's close() marks its pipe closed before it
/// writes the wake-up byte; the signal thread could drop the read end in
/// that gap, and the write killed the CLI with SIGPIPE (exit 141, nothing
/// on stderr), about once in 400 runs and in a clean-clone CI run.
#[test]
fn send_wait_never_dies_of_its_signal_pipe() {
    let mut e = Env::new();
    let w = e.work.display().to_string();
    let o = e.run(&["peer", "add", "m", "--runtime", "command", "--cwd", &w, "--", "no-such-program-xyz"]);
    assert!(stderr(&o).contains("not on PATH"), "{}", stderr(&o));
    e.track_peer("m");
    e.start_daemon();
    let first = e.run(&["send", "m", "--wait", "--timeout", "60", "hello"]);
    assert_eq!(first.status.code(), Some(4), "{}", stderr(&first));
    let mut deaths = vec![];
    for i in 0..400 {
        let o = e.run(&["send", "m", "--wait", "--timeout", "60", &format!("t{i}")]);
        if o.status.code() != Some(4) {
            deaths.push(format!("{:?} {}", o.status, stderr(&o)));
        }
    }
    assert!(deaths.is_empty(), "{} of 400 ended otherwise: {:?}", deaths.len(), &deaths[..deaths.len().min(3)]);
}
