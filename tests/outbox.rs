//! The other half of the loop: outbox routing, replies, `send --wait`,
//! and ephemeral workers, against real tmux with the fake agent.

mod common;
use common::*;
use std::collections::HashMap;
use std::time::Duration;

const T: Duration = Duration::from_secs(60);

fn header_field(text: &str, key: &str) -> Option<String> {
    let head = text.lines().find(|l| l.starts_with("[peerspool task "))?;
    let words: Vec<&str> = head.trim_end_matches(']').split_whitespace().collect();
    words.windows(2).find(|w| w[0] == key).map(|w| w[1].to_string())
}

#[test]
fn peer_to_peer_ping_pong_of_100() {
    let mut e = Env::new();
    // A deliberate 100-hop conversation: above the loop guard's defaults.
    e.var("PEERSPOOL_MAX_HOPS", "100").var("PEERSPOOL_PAIR_RATE", "1000");
    let o = PeerOpts { reply: true, ..Default::default() };
    e.add_peer("a", &o);
    e.add_peer("b", &o);
    e.start_daemon();
    e.ok(&["send", "a", "bounce 100", "--from", "b"]);
    wait_for("101 receptions", Duration::from_secs(120), || e.received("a").len() + e.received("b").len() >= 101);
    std::thread::sleep(Duration::from_millis(300));
    let a = e.received("a");
    let b = e.received("b");
    assert_eq!((a.len(), b.len()), (51, 50));
    // Interleave by counter: a got 100, 98, ..., 0; b got 99, ..., 1.
    let mut all: Vec<(u64, String, String)> = a.iter().chain(b.iter()).map(|v| {
        let t = v["text"].as_str().unwrap().to_string();
        let n = t.lines().last().unwrap().trim_start_matches("bounce ").parse::<u64>().unwrap();
        let who = if a.contains(v) { "a" } else { "b" };
        (n, who.to_string(), t)
    }).collect();
    all.sort_by_key(|x| std::cmp::Reverse(x.0));
    for (i, (n, who, text)) in all.iter().enumerate() {
        assert_eq!(*n, 100 - i as u64);
        assert_eq!(who, if n % 2 == 0 { "a" } else { "b" });
        if i > 0 {
            let sender = if who == "a" { "b" } else { "a" };
            assert_eq!(header_field(text, "from").as_deref(), Some(sender), "from is the outbox owner");
            let prev_id = header_field(&all[i - 1].2, "task").unwrap();
            assert_eq!(header_field(text, "in-reply-to"), Some(prev_id), "in_reply_to kept");
        }
    }
    assert_eq!(e.delivery().matches("event=route ").count(), 100);
    assert_eq!(e.count("a", "outbox/sent") + e.count("b", "outbox/sent"), 100);
}

#[test]
fn send_wait_returns_the_reply_via_peerspool_reply() {
    let mut e = Env::new();
    e.add_peer("oracle", &PeerOpts { reply: true, reply_cli: true, ..Default::default() });
    e.start_daemon();
    let out = e.run(&["send", "oracle", "what is 6*7?", "--wait", "--timeout", "30"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "echo: what is 6*7?\n");
    // The reply was consumed from the inbox.
    assert_eq!(std::fs::read_dir(e.root.join("inbox/tester/new")).unwrap().count(), 0);
    // Without a reply, --wait times out with one line and exit 1.
    e.add_peer("mute", &PeerOpts::default());
    let out = e.run(&["send", "mute", "anyone?", "--wait", "--timeout", "1"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no reply to task") && err.trim().lines().count() == 1, "{err}");
}

#[test]
fn forged_from_is_ignored_and_garbage_fails_with_reasons() {
    let mut e = Env::new();
    e.add_peer("a", &PeerOpts::default());
    e.add_peer("b", &PeerOpts::default());
    e.start_daemon();
    e.drop_outbox("a", "1-forged.json", br#"{"to":"b","text":"who am i","from":"mallory"}"#);
    e.drop_outbox("a", "2-garbage.json", b"\xff\xfe not json");
    e.drop_outbox("a", "3-self.json", br#"{"to":"a","text":"me"}"#);
    e.drop_outbox("a", "4-noto.json", br#"{"text":"nowhere"}"#);
    e.drop_outbox("a", "5-badto.json", br#"{"to":"../../etc","text":"x"}"#);
    e.drop_outbox("a", "6-script.json", br#"{"to":"cron-job","text":"for a script","in_reply_to":"t-1"}"#);
    e.drop_outbox("a", "7-valid.json", br#"{"to":"b","text":"still flowing"}"#);
    wait_for("b got two", T, || e.received("b").len() == 2);
    let b = e.received("b");
    let t0 = b[0]["text"].as_str().unwrap();
    assert_eq!(header_field(t0, "from").as_deref(), Some("a"), "{t0}");
    assert!(!t0.contains("mallory"));
    assert!(b[1]["text"].as_str().unwrap().ends_with("still flowing"));
    let failed = e.peer_dir("a").join("outbox/failed");
    for (n, code) in [("2-garbage.json", "not-utf8"), ("3-self.json", "self-send"), ("4-noto.json", "missing-field"), ("5-badto.json", "bad-name")] {
        let err = read(&failed.join(format!("{n}.error")));
        assert!(err.starts_with(code), "{n}: {err}");
    }
    let inbox = read(&e.root.join("inbox/cron-job/new/6-script.json"));
    let m = peerspool::queue::format::parse_inbox(inbox.as_bytes()).unwrap();
    assert_eq!((m.from.as_str(), m.in_reply_to.as_deref(), m.text.as_str()), ("a", Some("t-1"), "for a script"));
}

fn ids_received(e: &Env, peer: &str) -> Vec<(String, u64)> {
    e.received(peer)
        .iter()
        .map(|v| (header_field(v["text"].as_str().unwrap(), "task").unwrap(), v["pid"].as_u64().unwrap()))
        .collect()
}

#[test]
fn ephemeral_worker_runs_one_fresh_session_per_task() {
    let mut e = Env::new();
    e.var("PEERSPOOL_QUIET_SECS", "0.3");
    e.add_peer("w", &PeerOpts { ephemeral: true, reply: true, work_ms: 30, resume: true, ..Default::default() });
    let ids: Vec<String> = (0..20).map(|i| e.ok(&["send", "w", &format!("job {i:02}"), "--from", "ci"])).collect();
    e.start_daemon();
    wait_for("20 jobs", Duration::from_secs(120), || e.received("w").len() >= 20);
    wait_for("20 reaps", T, || e.lifecycle().matches("cause=quiet-after-reply").count() >= 20);
    let got = ids_received(&e, "w");
    assert_eq!(got.iter().map(|g| g.0.clone()).collect::<Vec<_>>(), ids, "each task once, in order");
    let pids: std::collections::HashSet<u64> = got.iter().map(|g| g.1).collect();
    assert_eq!(pids.len(), 20, "every task had its own session (process)");
    let l = e.lifecycle();
    assert_eq!(l.matches("event=wake mode=fresh cause=ephemeral").count(), 20, "never resumed");
    assert_eq!(l.matches("event=armed").count(), 20);
    assert!(!l.contains("event=death"), "a policy reap is not a death");
    assert_eq!(std::fs::read_dir(e.root.join("inbox/ci/new")).unwrap().count(), 20, "20 replies");
}

#[test]
fn ephemeral_survives_daemon_kill_midway_without_loss() {
    let mut e = Env::new();
    e.var("PEERSPOOL_QUIET_SECS", "0.3");
    e.add_peer("w", &PeerOpts { ephemeral: true, reply: true, work_ms: 50, ..Default::default() });
    let ids: Vec<String> = (0..12).map(|i| e.ok(&["send", "w", &format!("job {i:02}"), "--from", "ci"])).collect();
    e.start_daemon();
    wait_for("some jobs", T, || e.received("w").len() >= 5);
    e.kill_daemon(); // SIGKILL: no chance to tidy up
    e.start_daemon();
    wait_for("all jobs", Duration::from_secs(120), || {
        let got: std::collections::HashSet<String> = ids_received(&e, "w").into_iter().map(|g| g.0).collect();
        ids.iter().all(|i| got.contains(i))
    });
    std::thread::sleep(Duration::from_millis(500));
    let mut seen: HashMap<String, usize> = HashMap::new();
    for (id, _) in ids_received(&e, "w") {
        *seen.entry(id).or_default() += 1;
    }
    assert!(seen.keys().all(|k| ids.contains(k)), "nothing foreign");
    let dups: Vec<_> = seen.iter().filter(|(_, &n)| n > 1).collect();
    assert!(dups.len() <= 1 && dups.iter().all(|(_, &n)| n == 2), "at most the in-flight task re-runs, with its id: {dups:?}");
    wait_for("spool drained", T, || e.count("w", "spool/new") + e.count("w", "spool/cur") == 0);
    assert_eq!(e.count("w", "spool/done"), 12);
}
