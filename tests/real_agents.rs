//! The real Claude Code and Codex CLIs as peers, against scripted model
//! servers on loopback: the whole loop (task → real TUI → shell tool call
//! → `peerspool reply` → inbox) and the adapter defects only the real
//! programs show. Run alone: `cargo test --test real_agents`.

mod common;
mod models;
mod real;

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
    r.e.start_daemon();
    let id = r.e.send("agent", "What is 6*7?");
    let reply = r.await_reply(&id, Duration::from_secs(120));
    assert_eq!(reply, Real::ack(&id, "What is 6*7?", 1));
    assert!(delivered(&r, &id).contains("woke=fresh"), "{}", r.e.delivery());

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
