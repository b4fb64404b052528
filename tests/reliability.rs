//! Fault injection and hostile input against the real daemon: kills at
//! random moments, a frozen daemon overflowing the kernel's event queue,
//! lost watches, exhausted watches, and files built to hurt. Each test
//! prints its figures. The heavy variants are `#[ignore]`d and run by
//! `.ci/run` with `--ignored`.

mod common;
use common::*;
use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::time::{Duration, Instant};

const T: Duration = Duration::from_secs(30);

/// A small deterministic generator: the seed is printed, so a failing
/// schedule of kills can be replayed with `PEERSPOOL_TEST_SEED`.
struct Rng(u64);

impl Rng {
    fn from_env() -> Rng {
        let seed = std::env::var("PEERSPOOL_TEST_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(|| {
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(1)
        });
        println!("seed {seed}");
        Rng(seed | 1)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

fn names_in(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .map(|rd| rd.filter_map(|e| e.ok()).map(|e| e.file_name().to_string_lossy().into_owned()).collect())
        .unwrap_or_default();
    v.sort();
    v
}

fn rss_kb(pid: u32) -> u64 {
    read(Path::new(&format!("/proc/{pid}/status")))
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:").and_then(|v| v.split_whitespace().next()?.parse().ok()))
        .unwrap_or(0)
}

/// Tasks go in as a burst while the daemon is SIGKILLed and restarted at
/// random moments. Afterwards each task was delivered, intact, at least
/// once; a second delivery only for a task in flight at a kill, with the
/// same id; nothing is left in `tmp/`, `cur/` or `failed/`.
fn crash_burst(tasks: usize, kills: usize) {
    let mut rng = Rng::from_env();
    let mut e = Env::new();
    e.var("PEERSPOOL_SETTLE_SECS", "0.2");
    e.add_peer("w", &PeerOpts::default());
    e.start_daemon();
    let text = |i: usize| format!("crash task {i:05}\n-- second line with 'quotes' and $VARS {i}");
    for i in 0..tasks {
        e.drop_raw("w", &format!("{i:06}.json"), serde_json::json!({ "text": text(i), "from": "tester" }).to_string().as_bytes());
    }
    let start = Instant::now();
    let mut done_kills = 0;
    while done_kills < kills {
        std::thread::sleep(Duration::from_millis(50 + rng.below(700)));
        if e.count("w", "spool/done") >= tasks {
            break;
        }
        e.kill_daemon();
        done_kills += 1;
        e.start_daemon();
    }
    wait_for("every task done", Duration::from_secs(60 + tasks as u64 / 10), || e.count("w", "spool/done") == tasks);
    let secs = start.elapsed().as_secs_f64();
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    let mut order = vec![];
    let mut mangled = 0;
    for m in e.received("w") {
        let msg = m["text"].as_str().unwrap_or_default();
        let Some((h, body)) = peerspool::demo::agent::parse_header(msg) else {
            mangled += 1;
            continue;
        };
        let i: usize = h.id.parse().unwrap_or(usize::MAX);
        if i >= tasks || body != text(i) || msg.matches("[peerspool task").count() != 1 {
            mangled += 1;
            eprintln!("mangled delivery: {msg:?}");
        }
        let n = seen.entry(h.id.clone()).or_default();
        *n += 1;
        if *n == 1 {
            order.push(i);
        }
    }
    let lost = (0..tasks).filter(|i| !seen.contains_key(&format!("{i:06}"))).count();
    let dup: usize = seen.values().map(|n| n - 1).sum();
    println!(
        "crash burst: tasks={tasks} kills={done_kills} delivered={} lost={lost} duplicated={dup} mangled={mangled} secs={secs:.1}",
        seen.len()
    );
    assert_eq!(lost, 0, "lost tasks");
    assert_eq!(mangled, 0, "mangled deliveries");
    // At most one repeat per kill (SPEC: only a task in flight at a kill
    // repeats): a task still in flight when the next daemon is killed too
    // (its recovery paste, 250 ms after the start, in the kill window) is
    // pasted once per kill, so a per-task bound of 2 is not the contract.
    let worst = seen.values().copied().max().unwrap_or(0);
    assert!(worst <= 1 + done_kills, "a task delivered {worst} times for {done_kills} kills");
    assert!(dup <= done_kills, "{dup} duplicates for {done_kills} kills: only in-flight tasks may repeat");
    println!("crash burst: most deliveries of one task: {worst}");
    assert!(order.windows(2).all(|w| w[0] < w[1]), "first deliveries out of order");
    for sub in ["spool/tmp", "spool/cur", "spool/failed", "spool/new"] {
        assert_eq!(names_in(&e.peer_dir("w").join(sub)), Vec::<String>::new(), "{sub} not empty");
    }
}

#[test]
fn crash_burst_small() {
    crash_burst(150, 6);
}

#[test]
#[ignore = "heavy: 2,000 tasks and 25 kills (run by .ci/run)"]
fn crash_burst_2000_tasks_25_kills() {
    crash_burst(2000, 25);
}

/// A frozen daemon misses more events than the kernel queues; on thaw the
/// overflow forces a rescan and every file is still routed.
#[test]
#[ignore = "heavy: more files than the inotify queue holds (run by .ci/run)"]
fn frozen_daemon_overflow_loses_nothing() {
    let max: usize = read(Path::new("/proc/sys/fs/inotify/max_queued_events")).trim().parse().unwrap_or(16384);
    let n = max + 2000;
    let mut e = Env::new();
    e.var("PEERSPOOL_RESCAN_SECS", "3600").var("PEERSPOOL_SETTLE_SECS", "0.2");
    e.add_peer("a", &PeerOpts::default());
    e.start_daemon();
    let pid = e.daemon.as_ref().map(|c| c.id()).unwrap_or(0);
    signal(pid, libc::SIGSTOP);
    let body = br#"{"to":"sink","text":"flood"}"#;
    let (tmp, new) = (e.peer_dir("a").join("outbox/tmp"), e.peer_dir("a").join("outbox/new"));
    for i in 0..n {
        let name = format!("{i:07}.json");
        std::fs::write(tmp.join(&name), body).unwrap();
        std::fs::rename(tmp.join(&name), new.join(&name)).unwrap();
    }
    let start = Instant::now();
    signal(pid, libc::SIGCONT);
    let inbox = e.root.join("inbox/sink/new");
    let count = |d: &Path| std::fs::read_dir(d).map(|rd| rd.count()).unwrap_or(0);
    wait_for("all routed", Duration::from_secs(180), || {
        std::thread::sleep(Duration::from_millis(200));
        count(&inbox) == n
    });
    let secs = start.elapsed().as_secs_f64();
    println!("overflow: queue={max} files={n} routed={} secs={secs:.1} files_per_s={:.0}", names_in(&inbox).len(), n as f64 / secs);
    assert!(e.lifecycle().contains("event=rescan reason=\"watcher overflow\""), "overflow must be seen and logged");
    assert_eq!(e.count("a", "outbox/new"), 0);
    assert_eq!(e.count("a", "outbox/failed"), 0);
}

/// A queue directory deleted and re-created takes its inotify watch with
/// it; the daemon notices, re-watches, and keeps delivering without
/// waiting for the periodic rescan.
#[test]
fn lost_watch_is_recovered() {
    let mut e = Env::new();
    e.var("PEERSPOOL_RESCAN_SECS", "3600");
    e.add_peer("p", &PeerOpts::default());
    e.start_daemon();
    e.send("p", "before");
    wait_for("first", T, || e.bodies("p").len() == 1);
    let new = e.peer_dir("p").join("spool/new");
    std::fs::remove_dir_all(&new).unwrap();
    std::fs::create_dir_all(&new).unwrap();
    wait_for("watch-lost logged", T, || e.lifecycle().contains("event=watch-lost"));
    e.send("p", "after");
    wait_for("delivered after the directory came back", T, || e.bodies("p").len() == 2);
    // And the daemon re-creates a deleted queue directory by itself.
    std::fs::remove_dir_all(&new).unwrap();
    wait_for("re-created", T, || new.is_dir());
    e.send("p", "again");
    wait_for("third", T, || e.bodies("p").len() == 3);
    assert_eq!(e.bodies("p"), ["before", "after", "again"]);
}

/// With the inotify watch limit lowered inside a user namespace (the real
/// kernel limit, not a mock), the peer that gets no watches is polled: the
/// log and `doctor` say so, and its tasks are still delivered.
#[test]
fn exhausted_watches_fall_back_to_polling() {
    let probe = std::process::Command::new("unshare").args(["-Ur", "sh", "-c", "echo 9 > /proc/sys/user/max_inotify_watches"]).output();
    if !probe.is_ok_and(|o| o.status.success()) {
        println!("SKIPPED exhausted_watches_fall_back_to_polling: cannot lower the watch limit in a user namespace here");
        return;
    }
    let mut e = Env::new();
    e.var("PEERSPOOL_RESCAN_SECS", "3600");
    for p in ["a", "b", "c"] {
        e.add_peer(p, &PeerOpts::default());
    }
    // 2 root watches + 4 per peer: a and b fit in 10, c gets none.
    let err = std::fs::File::create(e.dir.path().join("daemon.err")).unwrap();
    let mut cmd = std::process::Command::new("unshare");
    cmd.args(["-Ur", "sh", "-c", "echo 10 > /proc/sys/user/max_inotify_watches && exec \"$0\" daemon", BIN])
        .env("PEERSPOOL_HOME", &e.root)
        .env("PEERSPOOL_LOG", "debug")
        .env_remove("PEERSPOOL_PEER")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(err);
    for (k, v) in &e.vars {
        cmd.env(k, v);
    }
    e.daemon = Some(cmd.spawn().expect("spawn daemon in a user namespace"));
    wait_for("watch failure logged", T, || e.lifecycle().contains("event=watch-failed"));
    let log = e.lifecycle();
    assert!(log.contains("peer=c event=watch-failed"), "{log}");
    assert!(!log.contains("peer=a event=watch-failed"), "{log}");
    let doc = e.run(&["doctor"]);
    let doc_out = String::from_utf8_lossy(&doc.stdout);
    println!("{doc_out}");
    assert!(doc_out.lines().any(|l| l.starts_with("FAIL") && l.contains("out of inotify watches") && l.contains('c')), "{doc_out}");
    e.send("c", "polled delivery");
    e.send("a", "watched delivery");
    wait_for("both delivered", T, || e.bodies("c").len() == 1 && e.bodies("a").len() == 1);
    assert!(e.daemon_stderr().contains("polling this peer"), "the daemon's own log names the fallback");
}

fn mkfifo(p: &Path) {
    let c = std::ffi::CString::new(p.to_str().unwrap()).unwrap();
    // SAFETY: mkfifo on a path this test owns.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
}

/// Every hostile file from the threat list is failed with its specific
/// reason while a good file behind them is still delivered.
#[test]
fn hostile_files_are_failed_with_specific_reasons() {
    let mut e = Env::new();
    e.var("PEERSPOOL_SETTLE_SECS", "0.2");
    e.add_peer("p", &PeerOpts::default());
    let new = e.peer_dir("p").join("spool/new");
    let outside = e.dir.path().join("secret.txt");
    std::fs::write(&outside, r#"{"text":"secret"}"#).unwrap();
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    let mut cases: Vec<(&str, &str)> = vec![];
    let mut put = |name: &'static str, code: &'static str, bytes: &[u8]| {
        e.drop_raw("p", name, bytes);
        cases.push((name, code));
    };
    put("01-invalid.json", "invalid-json", b"{\"text\": oops}");
    put("02-truncated.json", "invalid-json", br#"{"text":"cut he"#);
    put("03-types.json", "wrong-type", br#"{"text":"x","from":42}"#);
    put("04-empty.json", "empty-text", br#"{"text":"   "}"#);
    put("05-garbage.json", "not-utf8", &[0xde, 0xad, 0xbe, 0xef, 0x00, 0xff, 0xfe]);
    put("06-latin1.json", "not-utf8", b"{\"text\":\"caf\xe9\"}");
    put("07-deep.json", "too-deep", deep.as_bytes());
    put("08-array.json", "not-an-object", b"[1,2]");
    put("09-version.json", "bad-version", br#"{"text":"x","v":2}"#);
    put("10-from.json", "bad-name", br#"{"text":"x","from":"../etc"}"#);
    let big = vec![b' '; 10 * 1024 * 1024 + 1];
    put("11-big.json", "too-large", &big);
    std::os::unix::fs::symlink("/etc/shadow", new.join("12-symlink.json")).unwrap();
    cases.push(("12-symlink.json", "not-regular-file"));
    std::fs::hard_link(&outside, new.join("13-hardlink.json")).unwrap();
    cases.push(("13-hardlink.json", "multiple-links"));
    mkfifo(&new.join("14-fifo.json"));
    cases.push(("14-fifo.json", "not-regular-file"));
    let sock = std::os::unix::net::UnixListener::bind(new.join("15-socket.json")).unwrap();
    cases.push(("15-socket.json", "not-regular-file"));
    std::fs::create_dir(new.join("16-dir.json")).unwrap();
    cases.push(("16-dir.json", "not-regular-file"));
    // 0666 written by another process (a shell with umask 0).
    let status = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!("umask 0; printf '{{\"text\":\"x\"}}' > {}", new.join("17-mode666.json").display()))
        .status()
        .unwrap();
    assert!(status.success());
    cases.push(("17-mode666.json", "writable-by-others"));
    let nl = "18-new\nline.json";
    std::fs::write(new.join(nl), r#"{"text":"x"}"#).unwrap();
    cases.push((nl, "bad-file-name"));
    let dots = "19-..x.json";
    std::fs::write(new.join(dots), r#"{"text":"x"}"#).unwrap();
    cases.push((dots, "bad-file-name"));
    let foreign = if unsafe { libc::geteuid() } == 0 {
        let p = new.join("20-foreign.json");
        std::fs::write(&p, r#"{"text":"x"}"#).unwrap();
        std::os::unix::fs::chown(&p, Some(65534), Some(65534)).unwrap();
        cases.push(("20-foreign.json", "foreign-owner"));
        true
    } else {
        println!("not root: the foreign-owner case is covered by tests/spec_examples/ only");
        false
    };
    e.drop_raw("p", "99-good.json", br#"{"text":"still served"}"#);
    e.start_daemon();
    wait_for("good one delivered", T, || e.bodies("p") == ["still served"]);
    let failed = e.peer_dir("p").join("spool/failed");
    wait_for("all failed", T, || names_in(&new).is_empty());
    let errors: Vec<(String, String)> = names_in(&failed)
        .into_iter()
        .filter(|n| n.ends_with(".error"))
        .map(|n| (n.clone(), read(&failed.join(&n))))
        .collect();
    let mut by_code: BTreeMap<String, usize> = BTreeMap::new();
    for (name, code) in &cases {
        let stem = if peerspool::queue::format::safe_file_name(name) { name.to_string() } else { name.replace(['\n', '/'], "_").replace("..", "__") };
        let stem = stem.trim_end_matches(".json");
        let (_, err) = errors.iter().find(|(n, _)| n.starts_with(stem)).unwrap_or_else(|| panic!("no .error for {name:?}: {errors:?}"));
        assert!(err.starts_with(&format!("{code}: ")), "{name:?}: expected {code}, got {err:?}");
        assert_eq!(err.lines().count(), 1, "one-line reason: {err:?}");
        *by_code.entry(code.to_string()).or_default() += 1;
    }
    println!("hostile files: {} rejected by reason {by_code:?} (foreign-owner case: {foreign})", cases.len());
    drop(sock);
    assert_eq!(read(&outside), r#"{"text":"secret"}"#, "a hard-linked file is never modified");
}

/// A relative `cwd` is refused at `peer add` and, written by hand, keeps
/// the peer asleep with the reason; a missing program is refused as a
/// configuration error with the reason, once (no storm, no deaths).
#[test]
fn bad_profiles_fail_with_reasons_and_no_storm() {
    let mut e = Env::new();
    // The CLI resolves a relative --cwd against where it runs...
    e.ok(&["peer", "add", "cli", "--runtime", "command", "--cwd", "relative/dir", "--", "true"]);
    let stored: serde_json::Value = serde_json::from_str(&read(&e.peer_dir("cli").join("peer.json"))).unwrap();
    assert!(stored["cwd"].as_str().is_some_and(|c| c.starts_with('/') && c.ends_with("/relative/dir")), "{stored}");
    e.ok(&["peer", "rm", "cli"]);
    // ...but a hand-written relative cwd is refused, with the reason.
    e.add_peer("rel", &PeerOpts::default());
    let pj = e.peer_dir("rel").join("peer.json");
    let mut v: serde_json::Value = serde_json::from_str(&read(&pj)).unwrap();
    v["cwd"] = "relative/dir".into();
    std::fs::write(&pj, v.to_string()).unwrap();
    e.add_peer("ghost", &PeerOpts { argv: Some(vec!["/nonexistent/agent".into()]), ..Default::default() });
    e.var("PEERSPOOL_CRASHLOOP_WINDOW_SECS", "3600");
    e.start_daemon();
    e.send("rel", "never");
    for i in 0..5 {
        e.send("ghost", &format!("boo {i}"));
    }
    wait_for("relative cwd reported", T, || e.lifecycle().contains("peer=rel event=profile-invalid"));
    // A missing program is a configuration error (issue 15): refused
    // before tmux is asked, said once, never a death.
    wait_for("configuration refusal", T, || e.lifecycle().contains("peer=ghost event=wake-refused"));
    std::thread::sleep(Duration::from_secs(2));
    let life = e.lifecycle();
    let deaths = life.matches("peer=ghost event=death").count();
    println!("missing program: deaths={deaths}, refused; tasks still queued={}", e.count("ghost", "spool/new"));
    assert!(life.contains("peer=ghost event=wake-refused task=") && life.contains("reason=\"config: program \\\"/nonexistent/agent\\\" not found"), "{life}");
    assert_eq!(life.matches("peer=ghost event=wake-refused").count(), 1, "no storm: {life}");
    assert_eq!(deaths, 0, "a missing program is not a death");
    assert_eq!(e.count("ghost", "spool/new"), 5, "tasks stay queued");
    assert_eq!(e.count("rel", "spool/new"), 1);
    let status = e.ok(&["status"]);
    assert!(status.contains("config: program"), "status shows why: {status}");
}

/// Directory and file modes follow the contract; a world-writable root is
/// refused by the daemon with the path and the fix.
#[test]
fn modes_and_refused_root() {
    use std::os::unix::fs::PermissionsExt;
    let mut e = Env::new();
    e.add_peer("m", &PeerOpts::default());
    e.start_daemon();
    e.send("m", "hello");
    // done/ is written after the delivery line, so the log exists by then.
    wait_for("delivered", T, || e.count("m", "spool/done") == 1);
    let mode = |p: &Path| std::fs::metadata(p).unwrap_or_else(|err| panic!("{}: {err}", p.display())).permissions().mode() & 0o777;
    for d in ["", "peers", "peers/m", "peers/m/spool/new", "peers/m/spool/done", "peers/m/outbox/new", "log", "state"] {
        assert_eq!(mode(&e.root.join(d)), 0o700, "{d}");
    }
    for f in names_in(&e.peer_dir("m").join("spool/done")) {
        assert_eq!(mode(&e.peer_dir("m").join("spool/done").join(&f)), 0o600, "{f}");
    }
    assert_eq!(mode(&e.root.join("log/delivery.log")) & 0o077, 0, "logs are private");
    assert_eq!(e.stop_daemon(), Some(0));
    std::fs::set_permissions(&e.root, std::fs::Permissions::from_mode(0o777)).unwrap();
    let out = e.run(&["daemon"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_ne!(out.status.code(), Some(0));
    assert!(err.contains(&e.root.display().to_string()) && err.contains("chmod"), "{err}");
    std::fs::set_permissions(&e.root, std::fs::Permissions::from_mode(0o700)).unwrap();
}

/// Inside a session, `send --from` cannot borrow another identity: the
/// message goes through the sender's own outbox and arrives from it.
#[test]
fn a_session_cannot_send_as_another_peer() {
    let mut e = Env::new();
    e.add_peer("a", &PeerOpts::default());
    e.add_peer("b", &PeerOpts::default());
    e.add_peer("c", &PeerOpts::default());
    e.start_daemon();
    let out = e.cmd(&["send", "c", "who am i", "--from", "b"]).env("PEERSPOOL_PEER", "a").output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    wait_for("delivered", T, || e.received("c").len() == 1);
    let (h, _) = peerspool::demo::agent::parse_header(e.received("c")[0]["text"].as_str().unwrap()).unwrap();
    assert_eq!(h.from, "a", "the outbox owner, not --from");
}

/// Pruning keeps `done/` bounded; rotation keeps logs bounded; a 1 GB
/// activity file does not hold deliveries up.
#[test]
fn done_and_logs_stay_bounded_and_big_transcripts_are_cheap() {
    let mut e = Env::new();
    e.var("PEERSPOOL_DONE_KEEP", "10").var("PEERSPOOL_LOG_MAX_BYTES", "4000").var("PEERSPOOL_LOG_KEEP", "2").var("PEERSPOOL_RESCAN_SECS", "0.5");
    e.add_peer("b", &PeerOpts::default());
    // The agent's activity file is its log; make it a 1 GB (sparse) file.
    let log = e.agent_log("b");
    std::fs::File::create(&log).unwrap().set_len(1 << 30).unwrap();
    e.start_daemon();
    for i in 0..40 {
        e.send("b", &format!("task {i}"));
    }
    wait_for("40 delivered", Duration::from_secs(60), || e.count("b", "spool/new") == 0 && e.count("b", "spool/cur") == 0);
    wait_for("done/ pruned to 10", T, || e.count("b", "spool/done") <= 10);
    let logs = names_in(&e.root.join("log"));
    let sizes: HashMap<String, u64> = logs.iter().map(|n| (n.clone(), std::fs::metadata(e.root.join("log").join(n)).unwrap().len())).collect();
    println!("bounded: done={} logs={sizes:?}", e.count("b", "spool/done"));
    assert!(logs.iter().filter(|n| n.starts_with("delivery.log")).count() <= 3, "{logs:?}");
    assert!(sizes.values().all(|&s| s <= 8000), "{sizes:?}");
    assert!(e.lifecycle().contains("event=housekeeping") || read(&e.root.join("log/lifecycle.log.1")).contains("event=housekeeping"));
}

/// 1,000 registered peers with empty spools: all watched, one task to the
/// last one is delivered; memory figure printed.
#[test]
#[ignore = "heavy: 1,000 peers (run by .ci/run)"]
fn a_thousand_peers() {
    let mut e = Env::new();
    e.add_peer("p0000", &PeerOpts::default());
    let profile = read(&e.peer_dir("p0000").join("peer.json"));
    for i in 1..1000 {
        let d = e.peer_dir(&format!("p{i:04}"));
        std::fs::create_dir(&d).unwrap();
        std::fs::write(d.join("peer.json"), &profile).unwrap();
        e.track_peer(&format!("p{i:04}"));
    }
    let t0 = Instant::now();
    e.start_daemon();
    println!("1000 peers: daemon ready after {:.1} s", t0.elapsed().as_secs_f64());
    let pid = e.daemon.as_ref().map(|c| c.id()).unwrap_or(0);
    wait_for("1000 registered", Duration::from_secs(60), || e.lifecycle().matches("event=registered").count() == 1000);
    e.send("p0000", "to the first of a thousand");
    wait_for("delivered", T, || e.bodies("p0000").len() == 1);
    println!("1000 peers: daemon rss_kb={} watch_failed={}", rss_kb(pid), e.lifecycle().matches("watch-failed").count());
    assert_eq!(e.lifecycle().matches("watch-failed").count(), 0);
}

/// A spool holding 100,000 files: the daemon starts, claims from the head
/// without loading the whole directory, and other peers are not slowed.
#[test]
#[ignore = "heavy: 100,000 queued files (run by .ci/run)"]
fn a_spool_of_100000() {
    let mut e = Env::new();
    e.add_peer("deep", &PeerOpts::default());
    e.add_peer("other", &PeerOpts::default());
    e.ok(&["stop", "deep"]);
    let (tmp, new) = (e.peer_dir("deep").join("spool/tmp"), e.peer_dir("deep").join("spool/new"));
    let n = 100_000;
    for i in 0..n {
        let name = format!("{i:07}.json");
        std::fs::write(tmp.join(&name), format!(r#"{{"text":"deep {i}"}}"#)).unwrap();
        std::fs::rename(tmp.join(&name), new.join(&name)).unwrap();
    }
    e.start_daemon();
    let pid = e.daemon.as_ref().map(|c| c.id()).unwrap_or(0);
    let rss0 = rss_kb(pid);
    e.send("other", "not held up");
    wait_for("other delivered", T, || e.bodies("other").len() == 1);
    e.ok(&["start", "deep"]);
    wait_for("deep delivering", T, || e.bodies("deep").len() >= 50);
    let t0 = Instant::now();
    let c0 = e.bodies("deep").len();
    std::thread::sleep(Duration::from_secs(3));
    let rate = (e.bodies("deep").len() - c0) as f64 / t0.elapsed().as_secs_f64();
    let rss1 = rss_kb(pid);
    let bodies = e.bodies("deep");
    println!("100k spool: rss_kb start={rss0} delivering={rss1} deliveries_per_s={rate:.0} first={:?}", &bodies[0]);
    assert_eq!(bodies[..50], (0..50).map(|i| format!("deep {i}")).collect::<Vec<_>>()[..], "head of the queue first, in order");
    assert!(rss1 < 64 * 1024, "memory stays bounded: {rss1} kB");
    e.ok(&["stop", "deep"]);
}
