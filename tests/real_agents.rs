//! The real Claude Code and Codex CLIs as peers, against scripted model
//! servers on loopback: the whole loop (task → real TUI → shell tool call
//! → `peerspool reply` → inbox) and the adapter defects only the real
//! programs show. Run alone: `cargo test --test real_agents`.

mod common;
mod models;
mod real;

use common::wait_for;
use real::{Kind, Real};
use std::time::Duration;

const TURN: Duration = Duration::from_secs(60);

fn delivered(r: &Real, id: &str) -> String {
    r.e.delivery().lines().find(|l| l.contains(&format!("task={id}")) && l.contains("outcome=delivered")).unwrap_or_default().to_string()
}

/// Cold wake, then warm deliveries of awkward texts, each answered by the
/// model with the length and hash of what it received.
fn round_trip(kind: Kind, test: &str) {
    let Some(mut r) = Real::new(kind, test) else { return };
    r.add("agent", true, &[]);
    // As if the daemon were started from inside an agent's session: such
    // variables must not reach the peer (they can suppress its transcript).
    r.e.var("CLAUDECODE", "1").var("CLAUDE_CODE_ENTRYPOINT", "cli");
    r.e.start_daemon();
    let id = r.e.send("agent", "What is 6*7?");
    let reply = r.await_reply(&id, Duration::from_secs(120));
    assert_eq!(reply, Real::ack(&id, "What is 6*7?", 1));
    assert!(delivered(&r, &id).contains("woke=fresh"), "{}", r.e.delivery());
    let env = r.session_env("agent");
    assert!(env.iter().any(|v| v == "PEERSPOOL_PEER=agent"), "read the session's environment: {env:?}");
    assert!(env.iter().any(|v| v.starts_with("PEERSPOOL_BIN=/")), "an absolute path to reply with: {env:?}");
    if kind == Kind::Claude {
        let leaked: Vec<&String> = env.iter().filter(|v| v.starts_with("CLAUDECODE=") || v.starts_with("CLAUDE_CODE_ENTRYPOINT")).collect();
        assert!(leaked.is_empty(), "inherited claude variables reached the session: {leaked:?}");
    }

    let awkward = "-n starts with a dash\nsay \"quoted\" and 'single' $(echo no) `no` \\ end\n  indented line";
    let id2 = r.e.send("agent", awkward);
    assert_eq!(r.await_reply(&id2, TURN), Real::ack(&id2, awkward, 2));
    assert!(delivered(&r, &id2).contains("woke=no"), "warm delivery: {}", r.e.delivery());

    let big: String = (0..400).map(|i| format!("line {i:04} of a twenty kilobyte task: {}\n", "x".repeat(40))).collect();
    assert!(big.len() > 20 * 1024);
    let id3 = r.e.send("agent", &big);
    assert_eq!(r.await_reply(&id3, TURN), Real::ack(&id3, &big, 3), "20 KiB arrived intact");

    let tabbed = "col1\tcol2\tcol3";
    let id4 = r.e.send("agent", tabbed);
    // Claude Code turns a TAB into spaces before the model sees it.
    let seen = if kind == Kind::Claude { tabbed.replace('\t', "    ") } else { tabbed.to_string() };
    let got = r.await_reply(&id4, TURN);
    assert!(got == Real::ack(&id4, &seen, 4) || got == Real::ack(&id4, tabbed, 4), "{got}");
    assert!(!r.e.delivery().contains("outcome=unconfirmed"), "no retries: {}", r.e.delivery());
    println!("{}\nmodel requests: {}\ntab reply: {got}", r.e.delivery(), r.server.log.lock().unwrap().len());
    r.e.stop_daemon();
}

#[test]
fn claude_round_trip() {
    round_trip(Kind::Claude, "claude_round_trip");
}

#[test]
fn codex_round_trip() {
    round_trip(Kind::Codex, "codex_round_trip");
}

fn woke(r: &Real, id: &str) -> String {
    let l = delivered(r, id);
    l.split_whitespace().find_map(|f| f.strip_prefix("woke=")).unwrap_or("?").to_string()
}

/// A session's life: a daemon restart adopts it, an idle reap parks it
/// and the next task resumes the conversation (the model sees the earlier
/// turns), a session killed from outside is woken again.
fn lifecycle(kind: Kind, test: &str) {
    let Some(mut r) = Real::new(kind, test) else { return };
    r.add("agent", true, &["--idle-secs", "5"]);
    r.e.start_daemon();
    // Words of login screens and dialogs in the history must not be taken
    // for the live screen when the session is resumed.
    let first = "first: Invalid API key · Please run /login · Sign in with ChatGPT · Enter to confirm · Esc to cancel";
    let id1 = r.e.send("agent", first);
    assert_eq!(r.await_reply(&id1, Duration::from_secs(120)), Real::ack(&id1, first, 1));

    r.e.stop_daemon();
    assert!(r.e.session_alive("agent"), "the session outlives a daemon stop");
    r.e.start_daemon();
    let id2 = r.e.send("agent", "second, after a restart");
    assert_eq!(r.await_reply(&id2, TURN), Real::ack(&id2, "second, after a restart", 2));
    assert_eq!(woke(&r, &id2), "no", "the live session was adopted: {}", r.e.delivery());

    wait_for("idle reap", Duration::from_secs(30), || r.e.lifecycle().contains("event=reap cause=idle"));
    assert!(!r.e.session_alive("agent"));
    let id3 = r.e.send("agent", "third, resumed");
    assert_eq!(r.await_reply(&id3, TURN), Real::ack(&id3, "third, resumed", 3), "the resumed model saw the earlier turns");
    assert_eq!(woke(&r, &id3), "resume");

    let sock = r.e.socket("agent");
    peerspool::session::tmux::Tmux::new(sock).kill_server_blocking();
    wait_for("the death noticed", Duration::from_secs(20), || r.e.lifecycle().contains("event=death"));
    let id4 = r.e.send("agent", "fourth, after a kill");
    let got = r.await_reply(&id4, TURN);
    assert!(got.starts_with(&format!("ack id={id4} len=20 ")), "{got}");
    assert_ne!(woke(&r, &id4), "no");
    println!("{}", r.e.lifecycle());
    r.e.stop_daemon();
}

#[test]
fn claude_lifecycle() {
    lifecycle(Kind::Claude, "claude_lifecycle");
}

#[test]
fn codex_lifecycle() {
    lifecycle(Kind::Codex, "codex_lifecycle");
}

/// An ephemeral worker: three queued tasks, three fresh sessions, each
/// reaped by the installed turn-end hook (not by the quiet timer).
fn ephemeral(kind: Kind, test: &str) {
    let Some(mut r) = Real::new(kind, test) else { return };
    r.add("worker", true, &["--ephemeral", "--quiet-secs", "120"]);
    let hooks = match kind {
        Kind::Claude => r.e.ok(&["hooks", "install", "claude", "--peer", "worker"]),
        Kind::Codex => r.e.ok(&["hooks", "install", "codex", "--peer", "worker"]),
    };
    assert!(hooks.starts_with("installed"), "{hooks}");
    let ids: Vec<String> = (1..=3).map(|i| r.e.send("worker", &format!("job {i}"))).collect();
    r.e.start_daemon();
    for (i, id) in ids.iter().enumerate() {
        assert_eq!(r.await_reply(id, Duration::from_secs(120)), Real::ack(id, &format!("job {}", i + 1), 1), "a fresh session per task");
    }
    wait_for("three reaps", Duration::from_secs(30), || r.e.lifecycle().matches("event=reap").count() == 3);
    let l = r.e.lifecycle();
    assert_eq!(l.matches("event=reap cause=turn-end").count(), 3, "each reaped by the hook:\n{l}");
    assert_eq!(l.matches("event=wake mode=fresh").count(), 3, "{l}");
    let order: Vec<&str> = l.lines().filter(|x| x.contains("event=wake ")).filter_map(|x| x.split("task=").nth(1)?.split_whitespace().next()).collect();
    assert_eq!(order, ids.iter().map(String::as_str).collect::<Vec<_>>(), "in order");
    assert!(!l.contains("event=death"), "{l}");
    r.e.stop_daemon();
}

#[test]
fn claude_ephemeral_reaped_by_turn_end_hook() {
    ephemeral(Kind::Claude, "claude_ephemeral_reaped_by_turn_end_hook");
}

#[test]
fn codex_ephemeral_reaped_by_turn_end_hook() {
    ephemeral(Kind::Codex, "codex_ephemeral_reaped_by_turn_end_hook");
}

/// A login screen (claude without its key approved, codex without a
/// provider): the wake fails once, the peer is blocked with the reason at
/// once, nothing is retried or counted as a death until the operator acts.
fn not_logged_in(kind: Kind, test: &str) {
    let Some(mut r) = Real::new(kind, test) else { return };
    r.add("agent", false, &[]);
    r.e.start_daemon();
    let id = r.e.send("agent", "hello");
    wait_for("the wake to fail", Duration::from_secs(90), || r.e.delivery().contains("outcome=wake-failed"));
    let line = r.e.delivery().lines().find(|l| l.contains("outcome=wake-failed")).unwrap_or_default().to_string();
    assert!(line.contains(&format!("task={id}")) && line.contains("error=\"not-logged-in"), "{line}");
    wait_for("task back in the spool", Duration::from_secs(5), || r.e.count("agent", "spool/new") == 1);
    let status: serde_json::Value = serde_json::from_str(&r.e.ok(&["status", "--json"])).unwrap();
    let blocked = status["peers"][0]["blocked"].as_str().unwrap_or_default().to_string();
    assert!(blocked.starts_with("wake failed: not-logged-in") && blocked.contains("peerspool start agent"), "status shows why and the way out: {status}");
    // No retry, no crash-loop count: the verdict cannot change by itself.
    std::thread::sleep(Duration::from_secs(3));
    let l = r.e.lifecycle();
    assert_eq!(l.matches("event=wake-failed").count(), 1, "{l}");
    assert!(!l.contains("event=death"), "not a death: {l}");
    if kind == Kind::Claude {
        assert!(l.contains("dialog=trust-folder"), "the safe dialogs before it are answered: {l}");
    }
    // A waiter ends at once with the reason, instead of timing out.
    let t0 = std::time::Instant::now();
    let o = r.e.run(&["send", "agent", "--wait", "--timeout", "60", "are you there"]);
    assert_eq!(o.status.code(), Some(4), "{:?}: {}", o.status, String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stderr).contains("not-logged-in"), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(t0.elapsed() < Duration::from_secs(10), "ended early: {:?}", t0.elapsed());
    // The operator's `start` lets it try again.
    r.e.ok(&["start", "agent"]);
    r.e.send("agent", "poke");
    wait_for("a second attempt", Duration::from_secs(90), || r.e.lifecycle().matches("event=wake-failed").count() == 2);
    r.e.stop_daemon();
}

#[test]
fn claude_not_logged_in_blocks_at_once() {
    not_logged_in(Kind::Claude, "claude_not_logged_in_blocks_at_once");
}

#[test]
fn codex_not_logged_in_blocks_at_once() {
    not_logged_in(Kind::Codex, "codex_not_logged_in_blocks_at_once");
}

/// Two codex peers with one HOME (one ~/.codex, as anyone with two codex
/// peers has): each reply comes from the peer whose turn produced it.
#[test]
fn codex_peers_sharing_a_home_answer_as_themselves() {
    let Some(mut r) = Real::new(Kind::Codex, "codex_peers_sharing_a_home_answer_as_themselves") else { return };
    r.add("a", true, &[]);
    let home = r.home("a");
    let b_work = r.e.dir.path().join("work-b");
    std::fs::create_dir_all(&b_work).unwrap();
    r.add_with_home("b", &home, &b_work, &[]);
    r.e.start_daemon();
    let ida = r.e.send("a", "to a");
    assert_eq!(r.await_reply(&ida, Duration::from_secs(120)), Real::ack(&ida, "to a", 1));
    let idb = r.e.send("b", "to b");
    assert_eq!(r.await_reply(&idb, Duration::from_secs(120)), Real::ack(&idb, "to b", 1));
    assert_eq!(r.reply_to(&ida).unwrap()["from"], "a");
    assert_eq!(r.reply_to(&idb).unwrap()["from"], "b", "b's turn answered as b");
    let ida2 = r.e.send("a", "to a again");
    assert_eq!(r.await_reply(&ida2, TURN), Real::ack(&ida2, "to a again", 2));
    assert_eq!(r.reply_to(&ida2).unwrap()["from"], "a");
    r.e.stop_daemon();
}

fn type_into(r: &Real, peer: &str, keys: &[&str]) {
    let ok = std::process::Command::new("tmux").arg("-S").arg(r.e.socket(peer)).args(["send-keys", "-t", "peer"]).args(keys).status().unwrap();
    assert!(ok.success());
}

/// The user texts of every model request, for counting what the model saw.
fn requests_with(r: &Real, needle: &str) -> Vec<serde_json::Value> {
    let path = if r.kind == Kind::Claude { "/v1/messages" } else { "/v1/responses" };
    r.server.bodies(path).into_iter().filter(|b| b.to_string().contains(needle)).collect()
}

/// Task B sent while task A's turn runs: each reaches the model once, as
/// its own turn, in order; `send --wait` for each prints its own answer;
/// nothing is retried or failed.
fn busy(kind: Kind, test: &str) {
    let Some(mut r) = Real::new(kind, test) else { return };
    r.add("agent", true, &[]);
    r.e.start_daemon();
    let warm = r.e.send("agent", "warm up");
    r.await_reply(&warm, Duration::from_secs(120));
    let (ta, tb) = ("task A [[slow:8]]", "task B");
    let wait = |text: &str| r.e.cmd(&["send", "agent", "--wait", "--timeout", "90", text]).stdout(std::process::Stdio::piped()).spawn().unwrap();
    let a = wait(ta);
    std::thread::sleep(Duration::from_secs(3));
    let b = wait(tb);
    wait_for("B waits for A's turn", Duration::from_secs(20), || r.e.delivery().contains("event=wait") && r.e.delivery().contains("state=working"));
    let (oa, ob) = (a.wait_with_output().unwrap(), b.wait_with_output().unwrap());
    let (oa, ob) = (String::from_utf8_lossy(&oa.stdout).to_string(), String::from_utf8_lossy(&ob.stdout).to_string());
    let id_of = |out: &str| out.split("ack id=").nth(1).and_then(|r| r.split_whitespace().next()).unwrap_or_default().to_string();
    let (ida, idb) = (id_of(&oa), id_of(&ob));
    assert_eq!(oa.trim(), Real::ack(&ida, ta, 2), "A's wait prints A's answer, from a turn without B");
    assert_eq!(ob.trim(), Real::ack(&idb, tb, 3), "B's wait prints B's answer");
    for id in [&ida, &idb] {
        let last = requests_with(&r, id).pop().expect("the model saw the task");
        assert_eq!(last.to_string().matches(&format!("[peerspool task {id}")).count(), 1, "{id} reached the model once");
    }
    let d = r.e.delivery();
    let delivered_b = d.lines().find(|l| l.contains(&format!("task={idb}")) && l.contains("outcome=delivered")).unwrap_or_default();
    assert!(delivered_b.contains("waited_ms="), "B waited: {delivered_b}");
    assert!(!d.contains("outcome=unconfirmed") && !d.contains("outcome=failed"), "{d}");
    r.e.stop_daemon();
}

#[test]
fn claude_task_for_a_busy_agent_waits_for_its_turn() {
    busy(Kind::Claude, "claude_task_for_a_busy_agent_waits_for_its_turn");
}

#[test]
fn codex_task_for_a_busy_agent_waits_for_its_turn() {
    busy(Kind::Codex, "codex_task_for_a_busy_agent_waits_for_its_turn");
}

/// A person's half-typed line: the task waits (status says so), the draft
/// is untouched; once the person sends it, the task goes alone.
fn draft(kind: Kind, test: &str) {
    let Some(mut r) = Real::new(kind, test) else { return };
    r.add("agent", true, &[]);
    r.e.start_daemon();
    let warm = r.e.send("agent", "warm up");
    r.await_reply(&warm, Duration::from_secs(120));
    std::thread::sleep(Duration::from_millis(500));
    type_into(&r, "agent", &["-l", "half typed draft"]);
    std::thread::sleep(Duration::from_millis(700));
    let id = r.e.send("agent", "the task");
    wait_for("the task waits on the draft", Duration::from_secs(20), || r.e.delivery().contains(&format!("event=wait task={id} state=draft")));
    std::thread::sleep(Duration::from_secs(2));
    let st: serde_json::Value = serde_json::from_str(&r.e.ok(&["status", "--json"])).unwrap();
    assert_eq!(st["peers"][0]["turn"]["waiting"]["task"], id.as_str(), "{st}");
    assert!(r.pane("agent").contains("half typed draft"), "the draft is untouched:\n{}", r.pane("agent"));
    assert!(requests_with(&r, &id).is_empty(), "nothing reached the model");
    type_into(&r, "agent", &["Enter"]);
    assert_eq!(r.await_reply(&id, TURN), Real::ack(&id, "the task", 2), "delivered alone after the draft was sent");
    let first = requests_with(&r, &id).into_iter().next().unwrap().to_string();
    let block = first.split(&format!("[peerspool task {id}")).nth(1).unwrap_or_default().split("\"}").next().unwrap_or_default().to_string();
    assert!(!block.contains("half typed draft"), "not merged with the draft: {block}");
    r.e.stop_daemon();
}

#[test]
fn claude_human_draft_holds_the_task() {
    draft(Kind::Claude, "claude_human_draft_holds_the_task");
}

#[test]
fn codex_human_draft_holds_the_task() {
    draft(Kind::Codex, "codex_human_draft_holds_the_task");
}

/// A silent tool run longer than idle_secs is not reaped; the reap comes
/// once the turn is over and idle_secs have passed.
fn silent_tool(kind: Kind, test: &str) {
    let Some(mut r) = Real::new(kind, test) else { return };
    r.add("agent", true, &["--idle-secs", "4"]);
    r.e.start_daemon();
    let text = "long tool run [[tool:14]]";
    let id = r.e.send("agent", text);
    assert_eq!(r.await_reply(&id, Duration::from_secs(120)), Real::ack(&id, text, 1));
    let l = r.e.lifecycle();
    assert!(!l.contains("event=reap "), "reaped during the tool run:\n{l}");
    assert!(l.contains("event=reap-deferred cause=idle"), "{l}");
    wait_for("reaped after the turn", Duration::from_secs(30), || r.e.lifecycle().contains("event=reap cause=idle"));
    r.e.stop_daemon();
}

#[test]
fn claude_silent_tool_run_is_not_reaped() {
    silent_tool(Kind::Claude, "claude_silent_tool_run_is_not_reaped");
}

#[test]
fn codex_silent_tool_run_is_not_reaped() {
    silent_tool(Kind::Codex, "codex_silent_tool_run_is_not_reaped");
}

/// The daemon SIGKILLed while a task waits for a busy agent: after the
/// restart the task is delivered once, when the agent is ready.
fn killed_while_waiting(kind: Kind, test: &str) {
    let Some(mut r) = Real::new(kind, test) else { return };
    r.add("agent", true, &[]);
    r.e.start_daemon();
    let ta = "task A [[slow:6]]";
    let a = r.e.send("agent", ta);
    wait_for("A's turn runs", Duration::from_secs(120), || delivered(&r, &a).contains("outcome=delivered"));
    let b = r.e.send("agent", "task B");
    wait_for("B waits", Duration::from_secs(20), || r.e.delivery().contains(&format!("event=wait task={b}")));
    r.e.kill_daemon();
    r.e.start_daemon();
    assert_eq!(r.await_reply(&a, TURN), Real::ack(&a, ta, 1));
    assert_eq!(r.await_reply(&b, TURN), Real::ack(&b, "task B", 2), "B in a turn of its own");
    let last = requests_with(&r, &b).pop().unwrap();
    assert_eq!(last.to_string().matches(&format!("[peerspool task {b}")).count(), 1, "B reached the model once");
    assert_eq!(r.e.delivery().matches(&format!("task={b} from=tester outcome=delivered")).count(), 1);
    r.e.stop_daemon();
}

#[test]
fn claude_waiting_task_survives_a_daemon_kill() {
    killed_while_waiting(Kind::Claude, "claude_waiting_task_survives_a_daemon_kill");
}

#[test]
fn codex_waiting_task_survives_a_daemon_kill() {
    killed_while_waiting(Kind::Codex, "codex_waiting_task_survives_a_daemon_kill");
}
