//! Turn-aware delivery against the built-in test agent, which models what
//! matters of a real one: a working turn (`--work-ms`: no prompt until it
//! answers, no activity while it "runs a tool") and a composer that can
//! hold a person's draft. The same cases against Claude Code and Codex are
//! in tests/real_agents.rs.

mod common;
use common::*;
use std::time::Duration;

const T: Duration = Duration::from_secs(30);

fn line_for<'a>(log: &'a str, what: &str, id: &str) -> Option<&'a str> {
    log.lines().find(|l| l.contains(what) && l.contains(&format!("task={id}")))
}

fn ts(line: &str) -> String {
    line.split_whitespace().next().unwrap_or_default().to_string()
}

fn type_into(e: &Env, peer: &str, keys: &[&str]) {
    let ok = std::process::Command::new("tmux").arg("-S").arg(e.socket(peer)).args(["send-keys", "-t", "peer"]).args(keys).status().unwrap();
    assert!(ok.success());
}

/// B is sent while A's turn runs: B waits, unclaimed, and is pasted alone
/// once A's turn is over; each reply (through `peerspool reply`, which
/// answers the current task) names its own task.
#[test]
fn a_task_for_a_working_peer_waits_for_the_turn_and_replies_are_attributed() {
    let mut e = Env::new();
    e.add_peer("w", &PeerOpts { reply: true, reply_cli: true, work_ms: 1500, ..Default::default() });
    e.start_daemon();
    let a = e.send("w", "task A");
    wait_for("A delivered", T, || line_for(&e.delivery(), "outcome=delivered", &a).is_some());
    let b = e.send("w", "task B");
    wait_for("B waits", T, || line_for(&e.delivery(), "event=wait", &b).is_some());
    assert!(line_for(&e.delivery(), "event=wait", &b).unwrap().contains("state=working"), "{}", e.delivery());
    assert_eq!(e.count("w", "spool/new"), 1, "B stays in new/, unclaimed, while it waits");
    let st: serde_json::Value = serde_json::from_str(&e.ok(&["status", "--json"])).unwrap();
    assert_eq!(st["peers"][0]["turn"]["waiting"]["task"], b.as_str(), "status shows the wait: {st}");
    wait_for("B delivered", T, || line_for(&e.delivery(), "outcome=delivered", &b).is_some());
    let d = e.delivery();
    let routed_a = d.lines().find(|l| l.contains("event=route") && l.contains(&format!("in_reply_to={a}"))).expect("A's reply routed");
    let delivered_b = line_for(&d, "outcome=delivered", &b).unwrap();
    assert!(ts(delivered_b) >= ts(routed_a), "B pasted only after A's turn ended:\n{d}");
    assert!(delivered_b.contains("waited_ms="), "{delivered_b}");
    wait_for("B answered", T, || d.contains("x") && e.delivery().contains(&format!("in_reply_to={b}")));
    let bodies = e.bodies("w");
    assert_eq!(bodies, vec!["task A".to_string(), "task B".to_string()], "each alone, in order");
    assert!(!e.delivery().contains("outcome=unconfirmed"));
}

/// A person's half-typed line is never merged, cleared or submitted: the
/// task waits until the input is empty again, then goes alone.
#[test]
fn a_draft_in_the_input_holds_the_task_and_is_left_alone() {
    let mut e = Env::new();
    e.add_peer("h", &PeerOpts::default());
    e.start_daemon();
    let first = e.send("h", "wake up");
    wait_for("first delivered", T, || line_for(&e.delivery(), "outcome=delivered", &first).is_some());
    type_into(&e, "h", &["-l", "half typed by a person"]);
    std::thread::sleep(Duration::from_millis(300));
    let id = e.send("h", "the task");
    wait_for("the task waits on the draft", T, || line_for(&e.delivery(), "event=wait", &id).is_some_and(|l| l.contains("state=draft")));
    std::thread::sleep(Duration::from_millis(800));
    assert!(line_for(&e.delivery(), "outcome=delivered", &id).is_none(), "not pasted onto the draft");
    assert_eq!(e.received("h").len(), 1, "nothing submitted");
    let st: serde_json::Value = serde_json::from_str(&e.ok(&["status", "--json"])).unwrap();
    assert_eq!(st["peers"][0]["turn"]["state"], "draft", "{st}");
    // The person sends their line; then the task goes, alone.
    type_into(&e, "h", &["Enter"]);
    wait_for("delivered after the draft", T, || line_for(&e.delivery(), "outcome=delivered", &id).is_some());
    wait_for("two more messages", T, || e.received("h").len() == 3);
    let got: Vec<String> = e.received("h").iter().map(|m| m["text"].as_str().unwrap_or_default().to_string()).collect();
    assert_eq!(got[1], "half typed by a person");
    assert!(got[2].ends_with("\nthe task") && !got[2].contains("half typed"), "{got:?}");
}

/// A silent tool run (no activity, no prompt) outlasting idle_secs is not
/// reaped; the reap comes once the turn is over and idle_secs have passed.
#[test]
fn a_long_silent_turn_is_not_reaped_as_idle() {
    let mut e = Env::new();
    e.add_peer("s", &PeerOpts { reply: true, work_ms: 3000, idle_secs: Some(1.0), ..Default::default() });
    e.start_daemon();
    let id = e.send("s", "long job");
    wait_for("answered", T, || e.delivery().contains(&format!("in_reply_to={id}")));
    let l = e.lifecycle();
    assert!(!l.contains("event=reap "), "reaped mid-turn:\n{l}");
    assert!(l.contains("event=reap-deferred cause=idle state=working"), "{l}");
    wait_for("reaped after the turn", T, || e.lifecycle().contains("event=reap cause=idle"));
    let l = e.lifecycle();
    let reap = l.lines().find(|x| x.contains("event=reap cause=idle")).unwrap();
    let d = e.delivery();
    let ended = line_for(&d, "event=turn-end", &id).expect("the turn's end is logged");
    let ms = |l: &str| ts(l).strip_prefix("ts=").and_then(peerspool::session::runtime::transcript::parse_rfc3339).map(peerspool::daemon::state::ms).unwrap_or(0);
    assert!(ms(reap) >= ms(ended) + 1000, "idle counts from the end of the turn:\n{ended}\n{reap}");
}

/// A task waiting for a busy peer survives a SIGKILL of the daemon and is
/// delivered once, when the peer is ready.
#[test]
fn a_waiting_task_survives_a_daemon_kill_and_goes_once() {
    let mut e = Env::new();
    e.add_peer("k", &PeerOpts { reply: true, work_ms: 2500, ..Default::default() });
    e.start_daemon();
    let a = e.send("k", "busy turn");
    wait_for("A delivered", T, || line_for(&e.delivery(), "outcome=delivered", &a).is_some());
    let b = e.send("k", "waits");
    wait_for("B waits", T, || line_for(&e.delivery(), "event=wait", &b).is_some());
    e.kill_daemon();
    e.start_daemon();
    wait_for("B answered", T, || e.delivery().contains(&format!("in_reply_to={b}")));
    assert_eq!(e.bodies("k"), vec!["busy turn".to_string(), "waits".to_string()], "each once");
    assert_eq!(e.delivery().matches(&format!("task={b} from=tester outcome=delivered")).count(), 1);
}

/// `reply --task ID` answers a specific earlier task, whatever the task
/// being worked on now; an id the peer never received is refused.
#[test]
fn reply_to_an_earlier_task_by_id() {
    let mut e = Env::new();
    e.add_peer("r", &PeerOpts::default());
    e.start_daemon();
    let first = e.send("r", "first");
    let second = e.send("r", "second");
    wait_for("both done", T, || e.count("r", "spool/done") == 2);
    let reply = |args: &[&str]| e.cmd(&[&["reply"], args].concat()).env("PEERSPOOL_PEER", "r").output().unwrap();
    let out = reply(&["--task", &first, "late answer to the first"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    wait_for("routed", T, || e.delivery().contains(&format!("in_reply_to={first}")));
    let inbox = e.root.join("inbox/tester/new");
    let msgs: Vec<serde_json::Value> = std::fs::read_dir(&inbox).unwrap().filter_map(|f| serde_json::from_str(&read(&f.unwrap().path())).ok()).collect();
    assert_eq!(msgs.len(), 1);
    assert_eq!(msgs[0]["in_reply_to"], first.as_str(), "not the current task ({second})");
    let out = reply(&["--task", "never-received", "x"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no task never-received"));
}
