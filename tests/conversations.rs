//! Conversations you can bound and see: the loop guard (hop limit, pair
//! rate), `peerspool show`, `status --watch`. Real binary, real tmux, the
//! built-in test agent as both peers.

mod common;
use common::*;
use std::time::{Duration, Instant};

/// `key=value` of one logfmt line (values without spaces only).
fn field<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    line.split(' ').find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))
}

fn route_lines(env: &Env) -> Vec<String> {
    env.delivery().lines().filter(|l| field(l, "event") == Some("route")).map(str::to_string).collect()
}

fn json_files(dir: &std::path::Path) -> Vec<serde_json::Value> {
    let mut names: Vec<_> = std::fs::read_dir(dir)
        .map(|rd| rd.filter_map(|e| e.ok()).map(|e| e.path()).filter(|p| p.extension().is_some_and(|x| x == "json")).collect())
        .unwrap_or_default();
    names.sort();
    names.iter().filter_map(|p| serde_json::from_slice(&std::fs::read(p).ok()?).ok()).collect()
}

/// CPU seconds (user + system) the process has used so far.
fn cpu_secs(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the `(comm)`: state is field 3, utime 14, stime 15.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    (ticks(11) + ticks(12)) / hz
}

fn two_chatty_peers(max_hops: &str) -> Env {
    let mut env = Env::new();
    env.var("PEERSPOOL_MAX_HOPS", max_hops).var("PEERSPOOL_SETTLE_SECS", "0.2");
    let o = PeerOpts { reply: true, ..Default::default() };
    env.add_peer("a", &o);
    env.add_peer("b", &o);
    env.start_daemon();
    env
}

#[test]
fn a_reply_loop_stops_at_max_hops_and_a_forged_count_changes_nothing() {
    let env = two_chatty_peers("6");
    // a answers b, b answers a: every answer is a reply, so the chain grows.
    env.ok(&["send", "a", "ping", "--from", "tester", "--reply-to", "b"]);
    let cut = |n: usize| route_lines(&env).iter().filter(|l| field(l, "outcome") == Some("loop-limit")).count() >= n;
    wait_for("the conversation cut at hop 7", Duration::from_secs(60), || cut(1));
    let pid = env.daemon.as_ref().map(|c| c.id()).unwrap_or(0);
    let (c0, t0) = (cpu_secs(pid), Instant::now());
    std::thread::sleep(Duration::from_secs(1));
    let cpu = (cpu_secs(pid) - c0) / t0.elapsed().as_secs_f64();
    eprintln!("daemon CPU in the second after the stop: {:.1} %", cpu * 100.0);
    assert!(cpu < 0.25, "daemon not idle after the loop stopped: {:.0} % CPU", cpu * 100.0);

    let lines = route_lines(&env);
    let routed: Vec<&String> = lines.iter().filter(|l| field(l, "outcome") == Some("routed")).collect();
    let hops: Vec<&str> = routed.iter().filter_map(|l| field(l, "hops")).collect();
    assert_eq!(hops, ["1", "2", "3", "4", "5", "6"], "{lines:#?}");
    assert!(routed.iter().all(|l| field(l, "origin") == Some("tester")), "{routed:#?}");
    let limit = lines.iter().find(|l| field(l, "outcome") == Some("loop-limit")).unwrap();
    assert_eq!((field(limit, "peer"), field(limit, "hops"), field(limit, "origin")), (Some("a"), Some("7"), Some("tester")));
    // The routed tasks carry the daemon's count and the originator.
    let in_b = json_files(&env.peer_dir("b").join("spool/done"));
    assert_eq!(in_b.iter().map(|t| t["hops"].as_u64().unwrap_or(99)).collect::<Vec<_>>(), [1, 3, 5]);
    assert!(in_b.iter().all(|t| t["origin"] == "tester"));
    // In failed/ once, with the reason; the originator's inbox has the notice.
    let failed = env.peer_dir("a").join("outbox/failed");
    assert_eq!(env.count("a", "outbox/failed"), 1);
    let errs: Vec<String> = std::fs::read_dir(&failed).unwrap().filter_map(|e| e.ok()).map(|e| read(&e.path())).filter(|t| !t.starts_with('{')).collect();
    assert!(errs.len() == 1 && errs[0].starts_with("loop-limit: hop 7"), "{errs:?}");
    let notices = json_files(&env.root.join("inbox/tester/new"));
    assert_eq!(notices.len(), 1, "{notices:?}");
    assert_eq!((notices[0]["notice"].as_str(), notices[0]["hops"].as_u64(), notices[0]["max_hops"].as_u64()), (Some("loop-limit"), Some(7), Some(6)));
    assert!(notices[0]["in_reply_to"].is_null(), "a notice is not the reply a `send --wait` waits for");
    // Nothing moves any more.
    let n = route_lines(&env).len();
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(route_lines(&env).len(), n);

    // Forged counts: a reply to a's last task claiming hop 0 is still hop
    // 7; a fresh message claiming hop 99 is still hop 0.
    let last_to_a = routed.iter().rev().find(|l| field(l, "to") == Some("a")).and_then(|l| field(l, "id")).unwrap().to_string();
    env.drop_outbox("a", "forged-low.json", format!(r#"{{"to":"b","text":"again","in_reply_to":"{last_to_a}","hops":0}}"#).as_bytes());
    env.drop_outbox("b", "forged-high.json", br#"{"to":"a","text":"bounce 0","hops":99,"origin":"mallory"}"#);
    wait_for("both forged files judged", Duration::from_secs(20), || {
        let l = route_lines(&env);
        l.iter().any(|l| field(l, "id") == Some("forged-low")) && l.iter().any(|l| field(l, "id") == Some("forged-high"))
    });
    let lines = route_lines(&env);
    let low = lines.iter().find(|l| field(l, "id") == Some("forged-low")).unwrap();
    assert_eq!((field(low, "outcome"), field(low, "hops")), (Some("loop-limit"), Some("7")), "{low}");
    let high = lines.iter().find(|l| field(l, "id") == Some("forged-high")).unwrap();
    assert_eq!((field(high, "outcome"), field(high, "hops"), field(high, "origin")), (Some("routed"), Some("0"), Some("b")), "{high}");
    wait_for("the forged-high task delivered", Duration::from_secs(20), || env.bodies("a").iter().any(|b| b == "bounce 0"));
    assert_eq!(json_files(&env.root.join("inbox/tester/new")).len(), 2);
}

/// A script waiting on a task whose conversation the guard stopped hears
/// so at once (exit 5, the notice on stderr), not at its timeout.
#[test]
fn send_wait_ends_with_the_notice_when_its_conversation_is_stopped() {
    let mut env = Env::new();
    env.var("PEERSPOOL_MAX_HOPS", "3").var("PEERSPOOL_SETTLE_SECS", "0.2");
    env.add_peer("a", &PeerOpts { forward_to: Some("b".into()), ..Default::default() });
    env.add_peer("b", &PeerOpts { forward_to: Some("a".into()), ..Default::default() });
    env.start_daemon();
    let t0 = Instant::now();
    let out = env.run(&["send", "a", "--wait", "--timeout", "120", "--from", "tester", "ping"]);
    let secs = t0.elapsed().as_secs_f64();
    let err = String::from_utf8_lossy(&out.stderr);
    eprintln!("send --wait ended after {secs:.1} s: {err}");
    assert_eq!(out.status.code(), Some(5), "stderr: {err}");
    assert!(err.contains("was stopped at hop 4 (max_hops 3)"), "{err}");
    assert!(String::from_utf8_lossy(&out.stdout).is_empty(), "a notice is not a reply");
    assert!(secs < 100.0, "the wait sat out its timeout");
    // The notice was consumed by the waiter, like a reply.
    assert_eq!(json_files(&env.root.join("inbox/tester/new")).len(), 0);
    assert_eq!(json_files(&env.root.join("inbox/tester/cur")).len(), 1);
}

#[test]
fn the_pair_rate_holds_messages_with_a_reason_and_releases_them() {
    let mut env = Env::new();
    // A window long enough that a loaded machine still sees the hold.
    env.var("PEERSPOOL_PAIR_RATE", "3").var("PEERSPOOL_PAIR_WINDOW_SECS", "8").var("PEERSPOOL_SETTLE_SECS", "0.2");
    env.add_peer("a", &PeerOpts::default());
    env.add_peer("b", &PeerOpts::default());
    env.start_daemon();
    for i in 0..5 {
        env.drop_outbox("a", &format!("m{i}.json"), format!(r#"{{"to":"b","text":"bounce 0 #{i}"}}"#).as_bytes());
    }
    wait_for("three routed, two held", Duration::from_secs(10), || {
        let l = route_lines(&env);
        l.iter().filter(|l| field(l, "outcome") == Some("routed")).count() == 3 && l.iter().any(|l| field(l, "outcome") == Some("held"))
    });
    let status = env.ok(&["status"]);
    assert!(status.contains("outbox held: pair-rate: 3 messages between a and b within 8 s"), "{status}");
    assert_eq!(env.count("a", "outbox/new"), 2);
    wait_for("the held messages released", Duration::from_secs(30), || env.count("a", "outbox/new") == 0);
    let routed = route_lines(&env).iter().filter(|l| field(l, "outcome") == Some("routed")).count();
    assert_eq!(routed, 5);
    wait_for("status clear", Duration::from_secs(5), || !env.ok(&["status"]).contains("outbox held"));
}

fn show_json(env: &Env, id: &str) -> serde_json::Value {
    let out = env.ok(&["show", id, "--json"]);
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("show --json: {e}: {out}"))
}

fn stages(story: &serde_json::Value) -> Vec<String> {
    story["events"].as_array().map(|a| a.iter().filter_map(|e| e["stage"].as_str().map(str::to_string)).collect()).unwrap_or_default()
}

/// The event times never go backwards (a route line is written after its
/// batch, so it may trail the recipient's claim by a few ms: not compared).
fn assert_in_order(story: &serde_json::Value) {
    let ts: Vec<&str> = story["events"].as_array().unwrap().iter().filter(|e| e["stage"] != "routed").filter_map(|e| e["ts"].as_str()).collect();
    let mut sorted = ts.clone();
    sorted.sort();
    assert_eq!(ts, sorted, "{story:#}");
}

#[test]
fn show_tells_a_two_hop_conversation_even_after_pruning_and_rotation() {
    let env = two_chatty_peers("16");
    // a answers "bounce 1" to b, b answers "bounce 0" to a, a stops.
    let t0 = env.ok(&["send", "a", "bounce 2", "--from", "tester", "--reply-to", "b"]);
    wait_for("two hops delivered", Duration::from_secs(30), || env.bodies("a").iter().any(|b| b == "bounce 0") && env.count("a", "spool/done") == 2);
    let s = show_json(&env, &t0);
    assert_eq!(stages(&s), ["written", "claimed", "woke", "delivered", "done", "replied"], "{s:#}");
    assert_eq!(s["places"][0]["state"], "done");
    let r1 = &s["replies"][0];
    assert_eq!(stages(r1), ["written", "routed", "claimed", "woke", "delivered", "done", "replied"], "{r1:#}");
    assert!(r1["events"][1]["detail"].as_str().unwrap().contains("to b (peer), hop 1"), "{r1:#}");
    let r2 = &r1["replies"][0];
    assert_eq!(stages(r2), ["written", "routed", "claimed", "delivered", "done"], "{r2:#}");
    assert!(r2["events"][1]["detail"].as_str().unwrap().contains("to a (peer), hop 2"), "{r2:#}");
    for x in [&s, r1, r2] {
        assert_in_order(x);
    }
    // The same story from the middle: a reply id works too.
    let mid = show_json(&env, r1["id"].as_str().unwrap());
    assert_eq!(stages(&mid), stages(r1));
    let text = env.ok(&["show", &t0]);
    assert!(text.lines().count() >= 17 && text.contains("  now: done"), "{text}");

    // Pruned from done/ and sent/, the log rotated: the story stays.
    let mut env = env;
    env.stop_daemon();
    for p in ["a", "b"] {
        for sub in ["spool/done", "outbox/sent"] {
            let d = env.peer_dir(p).join(sub);
            for e in std::fs::read_dir(&d).unwrap().flatten() {
                std::fs::remove_file(e.path()).unwrap();
            }
        }
    }
    let log = env.root.join("log/delivery.log");
    std::fs::rename(&log, env.root.join("log/delivery.log.1")).unwrap();
    let again = show_json(&env, &t0);
    assert_eq!(stages(&again), ["written", "claimed", "woke", "delivered", "done", "replied"], "{again:#}");
    assert_eq!(again["events"][0]["detail"], "file since pruned");
    assert_eq!(stages(&again["replies"][0]["replies"][0]), ["written", "routed", "claimed", "delivered", "done"]);
    assert!(again["places"].as_array().unwrap().is_empty());
    let o = env.run(&["show", "nosuch-id"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).starts_with("peerspool: no task, outbox message or inbox reply nosuch-id"));
}

#[test]
fn show_tells_a_wait_for_a_busy_peer_and_a_failure() {
    let mut env = Env::new();
    env.var("PEERSPOOL_SETTLE_SECS", "0.2");
    env.add_peer("slow", &PeerOpts { reply: true, work_ms: 2500, ..Default::default() });
    env.start_daemon();
    let first = env.ok(&["send", "slow", "first"]);
    wait_for("the first task delivered", Duration::from_secs(20), || env.bodies("slow").len() == 1);
    let second = env.ok(&["send", "slow", "second"]);
    wait_for("the second task done", Duration::from_secs(30), || env.delivery().contains(&format!("event=done task={second}")));
    let s = show_json(&env, &second);
    let st = stages(&s);
    assert_eq!(st.first().map(String::as_str), Some("written"), "{s:#}");
    let w = st.iter().position(|x| x == "waited").unwrap_or_else(|| panic!("no wait: {s:#}"));
    assert_eq!(st[w + 1..st.len()].iter().filter(|x| *x != "waited").take(3).collect::<Vec<_>>(), ["claimed", "delivered", "done"], "{s:#}");
    let wait = &s["events"][w];
    assert!(wait["detail"].as_str().unwrap().contains("mid-turn"), "{wait}");
    assert!(wait["for_ms"].as_u64().is_some_and(|ms| ms >= 300), "{wait}");
    assert_in_order(&s);
    let f = show_json(&env, &first);
    assert!(stages(&f).contains(&"replied".to_string()), "{f:#}");

    // A task the daemon refuses: failed, with the reason.
    env.drop_raw("slow", "broken.json", br#"{"text":"   "}"#);
    wait_for("the broken task failed", Duration::from_secs(20), || env.count("slow", "spool/failed") == 1);
    let b = show_json(&env, "broken");
    assert_eq!(stages(&b).last().map(String::as_str), Some("failed"), "{b:#}");
    assert_eq!(b["places"][0]["state"], "failed");
    assert!(b["places"][0]["error"].as_str().unwrap().starts_with("empty-text"), "{b:#}");
    let text = env.ok(&["show", "broken"]);
    assert!(text.contains("failed") && text.contains("empty-text"), "{text}");
}

#[test]
fn status_watch_refreshes_and_ends_on_a_closed_pipe_and_on_sigint() {
    use std::io::Read;
    use std::process::Stdio;
    let mut env = Env::new();
    env.add_peer("a", &PeerOpts::default());
    let wait_exit = |c: &mut std::process::Child| {
        let t = Instant::now();
        loop {
            if let Ok(Some(st)) = c.try_wait() {
                return st;
            }
            if t.elapsed() > Duration::from_secs(10) {
                let _ = c.kill();
                let _ = c.wait();
                panic!("status --watch did not end");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    let mut c = env.cmd(&["status", "--watch", "--interval", "0.1"]).stdout(Stdio::piped()).stdin(Stdio::null()).spawn().unwrap();
    let mut out = c.stdout.take().unwrap();
    let mut buf = vec![0u8; 4096];
    let mut got = String::new();
    while got.matches("daemon: not running").count() < 3 {
        let n = out.read(&mut buf).unwrap();
        assert!(n > 0, "ended early: {got}");
        got.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    assert!(got.contains("\na "), "{got}");
    drop(out);
    let st = wait_exit(&mut c);
    use std::os::unix::process::ExitStatusExt;
    assert!(st.signal() == Some(libc::SIGPIPE) || st.code() == Some(0), "{st:?}");

    let mut c = env.cmd(&["status", "--watch", "--interval", "0.1"]).stdout(Stdio::null()).stdin(Stdio::null()).spawn().unwrap();
    std::thread::sleep(Duration::from_millis(400));
    signal(c.id(), libc::SIGINT);
    assert_eq!(wait_exit(&mut c).code(), Some(0));
    let o = env.run(&["status", "--watch", "--interval", "0"]);
    assert_eq!(o.status.code(), Some(2));
}
