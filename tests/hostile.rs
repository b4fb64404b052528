//! Issue 14 against the real daemon: hostile entries where the daemon
//! compares, names it cannot store, directories that fail under it, and
//! symlinked queues. Each test fails without its fix: the daemon blocks,
//! loops, pastes again or loses a file.

mod common;
use common::*;
use std::path::Path;
use std::time::{Duration, Instant};

const T: Duration = Duration::from_secs(30);

fn mkfifo(p: &Path) {
    let c = std::ffi::CString::new(p.to_str().unwrap()).unwrap();
    // SAFETY: mkfifo on a path this test owns.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
}

/// Swaps two directory entries in one step (`renameat2(RENAME_EXCHANGE)`).
fn exchange(a: &Path, b: &Path) {
    let c = |p: &Path| std::ffi::CString::new(p.to_str().unwrap()).unwrap();
    let (a, b) = (c(a), c(b));
    // SAFETY: both are valid NUL-terminated paths that outlive the call.
    let r = unsafe { libc::renameat2(libc::AT_FDCWD, a.as_ptr(), libc::AT_FDCWD, b.as_ptr(), libc::RENAME_EXCHANGE) };
    assert_eq!(r, 0, "renameat2: {}", std::io::Error::last_os_error());
}

fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .map(|rd| rd.filter_map(|e| e.ok()).map(|e| e.file_name().to_string_lossy().into_owned()).collect())
        .unwrap_or_default();
    v.sort();
    v
}

fn mkdirs(dirs: &[&Path]) {
    for d in dirs {
        std::fs::create_dir_all(d).unwrap();
    }
}

/// Item 1: FIFOs holding the names of two routed messages (in an inbox's
/// `new/` and another's `cur/`, where routing compares same-named files)
/// block neither sender, nor a peer added afterwards, nor SIGTERM.
#[test]
fn fifos_in_recipient_queues_block_nothing() {
    let mut e = Env::new();
    for p in ["p1", "p2", "p3"] {
        e.add_peer(p, &PeerOpts::default());
    }
    let inbox = e.root.join("inbox");
    mkdirs(&[&inbox.join("s1/new"), &inbox.join("s2/new"), &inbox.join("s2/cur")]);
    mkfifo(&inbox.join("s1/new/a.json"));
    mkfifo(&inbox.join("s2/cur/b.json"));
    e.start_daemon();
    e.drop_outbox("p1", "a.json", br#"{"to":"s1","text":"to s1"}"#);
    e.drop_outbox("p2", "b.json", br#"{"to":"s2","text":"to s2"}"#);
    std::thread::sleep(Duration::from_millis(300));
    e.add_peer("p4", &PeerOpts::default());
    wait_for("p4 registered", T, || e.lifecycle().contains("peer=p4 event=registered"));
    e.drop_outbox("p4", "c.json", br#"{"to":"s3","text":"to s3"}"#);
    wait_for("all three routed", T, || {
        names(&inbox.join("s3/new")) == ["c.json"]
            && names(&inbox.join("s1/new")).iter().any(|n| n.starts_with("a~p1~"))
            && names(&inbox.join("s2/new")).iter().any(|n| n.starts_with("b~p2~"))
    });
    let t = Instant::now();
    assert_eq!(e.stop_daemon(), Some(0));
    assert!(t.elapsed() < Duration::from_secs(10), "SIGTERM took {:?}", t.elapsed());
}

/// Item 6: a rejected task whose name is too long for `failed/<name>.error`
/// reaches `failed/` (under a shortened name) once, and the peer goes on.
#[test]
fn a_rejected_task_with_a_long_name_is_failed_once() {
    let mut e = Env::new();
    e.var("PEERSPOOL_SETTLE_SECS", "0.2");
    e.add_peer("w", &PeerOpts::default());
    e.start_daemon();
    for len in [240, 250] {
        e.drop_raw("w", &format!("{}.json", "x".repeat(len - 5)), b"garbage");
    }
    e.send("w", "behind the long names");
    wait_for("delivered", T, || e.bodies("w") == ["behind the long names"]);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(e.delivery().matches("outcome=rejected").count(), 2, "each rejected once");
    let failed = names(&e.peer_dir("w").join("spool/failed"));
    assert_eq!(failed.len(), 4, "{failed:?}");
    assert!(failed.iter().all(|n| n.len() <= 210), "{failed:?}");
    assert_eq!(names(&e.peer_dir("w").join("spool/cur")), Vec::<String>::new());
    for n in failed.iter().filter(|n| n.ends_with(".error")) {
        assert!(read(&e.peer_dir("w").join("spool/failed").join(n)).starts_with("invalid-json: "));
    }
}

/// Item 7 end to end: an outbox name that cannot be routed goes to
/// `outbox/failed/` once with its reason instead of being retried forever.
#[test]
fn an_unroutable_outbox_name_is_failed_once() {
    let mut e = Env::new();
    e.add_peer("a", &PeerOpts::default());
    e.start_daemon();
    let long = format!("{}.json", "y".repeat(245));
    e.drop_outbox("a", &long, br#"{"to":"script","text":"hi"}"#);
    wait_for("failed", T, || names(&e.peer_dir("a").join("outbox/failed")).len() == 2);
    std::thread::sleep(Duration::from_millis(1500));
    let log = e.delivery();
    assert_eq!(log.matches("event=route").count(), 1, "{log}");
    assert!(log.contains("outcome=rejected") && log.contains("bad-file-name"), "{log}");
    assert_eq!(names(&e.peer_dir("a").join("outbox/new")), Vec::<String>::new());
}

/// Item 9: `done/` refuses the move after a delivery: the task is pasted
/// once, the queue stops with the reason in status and the log, and goes
/// on (no second paste) once `done/` is usable again.
#[test]
fn a_task_that_cannot_reach_done_is_pasted_once() {
    let mut e = Env::new();
    e.add_peer("w", &PeerOpts::default());
    e.start_daemon();
    e.send("w", "first");
    wait_for("first done", T, || e.count("w", "spool/done") == 1);
    let done = e.peer_dir("w").join("spool/done");
    let frozen = Frozen::new(&done);
    e.send("w", "second");
    wait_for("second pasted", T, || e.bodies("w").len() == 2);
    e.send("w", "third");
    wait_for("queue stopped", T, || e.lifecycle().contains("event=queue-stopped"));
    std::thread::sleep(Duration::from_secs(4));
    assert_eq!(e.bodies("w"), ["first", "second"], "pasted once, queue held");
    let status = e.ok(&["status", "--json"]);
    assert!(status.contains("queue stopped") && status.contains("done/"), "{status}");
    assert_eq!(e.lifecycle().matches("event=queue-stopped").count(), 1);
    // A restarted daemon does not paste it again either (the mark is kept).
    e.kill_daemon();
    e.start_daemon();
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(e.bodies("w"), ["first", "second"], "pasted again after a restart");
    drop(frozen);
    wait_for("resumed", T, || e.bodies("w").len() == 3 && e.count("w", "spool/done") == 3);
    assert_eq!(e.bodies("w"), ["first", "second", "third"]);
    assert!(e.lifecycle().contains("event=queue-resumed"));
}

/// Item 10: a wake fails while a writer puts a new task of the same name
/// into `new/`: putting the claimed task back must not destroy it.
#[test]
fn a_requeue_never_replaces_a_same_named_task() {
    let mut e = Env::new();
    e.var("PEERSPOOL_SETTLE_SECS", "0.2");
    let work = e.work.display().to_string();
    e.ok(&["peer", "add", "w", "--runtime", "command", "--cwd", &work, "--ready-pattern", "^never-ready$", "--", "sh", "-c", "sleep 2; exit 3"]);
    e.track_peer("w");
    e.start_daemon();
    e.drop_raw("w", "t.json", br#"{"text":"claimed one"}"#);
    wait_for("claimed", T, || e.peer_dir("w").join("spool/cur/t.json").exists());
    e.drop_raw("w", "t.json", br#"{"text":"newer one"}"#);
    wait_for("wake failed", T, || e.delivery().contains("outcome=wake-failed"));
    std::thread::sleep(Duration::from_millis(300));
    let mut texts = vec![];
    for sub in ["spool/new", "spool/cur", "spool/failed"] {
        for n in names(&e.peer_dir("w").join(sub)).iter().filter(|n| n.ends_with(".json")) {
            texts.push(read(&e.peer_dir("w").join(sub).join(n)));
        }
    }
    assert!(texts.iter().any(|t| t.contains("claimed one")), "{texts:?}");
    assert!(texts.iter().any(|t| t.contains("newer one")), "{texts:?}");
}

/// Items 4 and 5: a peer whose `spool/new` is a symlink to a directory
/// elsewhere is refused with the reason in status and the log (once), and
/// nothing outside the root is consumed; a peer directory that is a
/// symlink likewise. Fixed, the peer is served.
#[test]
fn symlinked_queue_and_peer_directories_are_refused() {
    let mut e = Env::new();
    e.var("PEERSPOOL_RESCAN_SECS", "0.5");
    e.add_peer("q", &PeerOpts::default());
    e.add_peer("r", &PeerOpts::default());
    let outside = e.dir.path().join("outside");
    std::fs::create_dir(&outside).unwrap();
    std::fs::write(outside.join("victim.json"), r#"{"text":"not yours"}"#).unwrap();
    let new = e.peer_dir("q").join("spool/new");
    std::fs::remove_dir(&new).unwrap();
    std::os::unix::fs::symlink(&outside, &new).unwrap();
    let rdir = e.peer_dir("r");
    let moved = e.dir.path().join("r-real");
    std::fs::rename(&rdir, &moved).unwrap();
    std::os::unix::fs::symlink(&moved, &rdir).unwrap();
    e.start_daemon();
    wait_for("refused", T, || e.lifecycle().matches("event=peer-refused").count() >= 2);
    std::thread::sleep(Duration::from_secs(1));
    assert!(outside.join("victim.json").exists(), "a file outside the root was consumed");
    let status = e.ok(&["status", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&status).unwrap();
    for p in ["q", "r"] {
        let peer = v["peers"].as_array().unwrap().iter().find(|x| x["name"] == p).unwrap_or_else(|| panic!("{p} missing: {status}"));
        assert!(peer["blocked"].as_str().is_some_and(|b| b.contains("peer refused") && b.contains("symlink")), "{p}: {status}");
    }
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(e.lifecycle().matches("event=peer-refused").count(), 2, "logged once each");
    // A writer refuses the same links, naming them, and writes nothing.
    for (p, link) in [("q", &new), ("r", &rdir)] {
        let out = e.run(&["send", p, "through a link"]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{p}: send through a link succeeded");
        assert!(err.trim().lines().count() == 1 && err.contains(&link.display().to_string()) && err.contains("symbolic link"), "{p}: {err}");
    }
    assert_eq!(names(&outside), ["victim.json"], "nothing written through the link");
    assert!(names(&moved.join("spool/new")).is_empty(), "nothing written through the link");
    std::fs::remove_file(&new).unwrap();
    std::fs::create_dir(&new).unwrap();
    std::fs::set_permissions(&new, std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap();
    e.ok(&["send", "q", "fixed"]);
    wait_for("served once fixed", T, || e.bodies("q") == ["fixed"]);
}

/// Item 12: unlinking `state/daemon.lock` does not let a second daemon
/// start on the same root.
#[test]
fn an_unlinked_lock_file_does_not_admit_a_second_daemon() {
    let mut e = Env::new();
    e.start_daemon();
    std::fs::remove_file(e.root.join("state/daemon.lock")).unwrap();
    let out = e.run(&["daemon"]);
    assert_eq!(out.status.code(), Some(1), "second daemon ran");
    assert!(String::from_utf8_lossy(&out.stderr).contains("already running"));
    assert!(e.daemon_running(), "status still sees the first");
}

/// Processes whose command line names one of this test's tmux sockets
/// (pid and command line, for the failure message). The caller kills them
/// all, by these pids.
fn servers_on(prefix: &str) -> Vec<(u32, String)> {
    let mut v = vec![];
    for d in std::fs::read_dir("/proc").unwrap().filter_map(|d| d.ok()) {
        let Ok(pid) = d.file_name().to_string_lossy().parse::<u32>() else { continue };
        let cmd = String::from_utf8_lossy(&std::fs::read(d.path().join("cmdline")).unwrap_or_default()).replace('\0', " ");
        if cmd.contains(prefix) {
            v.push((pid, cmd.chars().take(160).collect()));
        }
    }
    v
}

/// Of those, the tmux servers whose socket is gone: nothing can reach or
/// reap them any more (what removing a socket after a failed kill-server
/// leaves behind).
fn orphaned(procs: &[(u32, String)]) -> Vec<(u32, String)> {
    procs
        .iter()
        .filter(|(_, cmd)| cmd.contains("start-server"))
        .filter(|(_, cmd)| cmd.split_whitespace().skip_while(|w| *w != "-S").nth(1).is_some_and(|s| !Path::new(s).exists()))
        .cloned()
        .collect()
}

/// Ends the peers' tmux servers (`passes` rounds of kill-server), then
/// SIGKILLs any server process still on the test's sockets. Returns those
/// left without a socket: servers kill-server could no longer reach.
fn end_servers(e: &Env, n: usize, name: &dyn Fn(usize) -> String, prefix: &str, passes: usize) -> Vec<(u32, String)> {
    for pass in 0..passes {
        if pass > 0 {
            std::thread::sleep(Duration::from_millis(500));
        }
        for i in 0..n {
            peerspool::session::tmux::Tmux::new(e.socket(&name(i))).kill_server_blocking();
        }
    }
    std::thread::sleep(Duration::from_millis(500));
    let left = servers_on(prefix);
    let orphans = orphaned(&left);
    println!("tmux processes surviving kill-server: {}, without a socket: {}", left.len(), orphans.len());
    for (pid, _) in &left {
        signal(*pid, libc::SIGKILL);
    }
    orphans
}

/// `n` test-agent peers named by `name`, one queued task each (`<word> i`):
/// the first added through the CLI, the rest by copying its profile.
fn peers_with_one_task(e: &mut Env, n: usize, name: &dyn Fn(usize) -> String, word: &str) {
    e.var("PEERSPOOL_SETTLE_SECS", "0.2");
    e.add_peer(&name(0), &PeerOpts::default());
    let profile = read(&e.peer_dir(&name(0)).join("peer.json"));
    for i in 1..n {
        let d = e.peer_dir(&name(i));
        std::fs::create_dir(&d).unwrap();
        std::fs::write(d.join("peer.json"), profile.replace(&name(0), &name(i))).unwrap();
        e.track_peer(&name(i));
    }
    for i in 0..n {
        let s = e.peer_dir(&name(i)).join("spool");
        mkdirs(&[&s.join("tmp"), &s.join("new")]);
        e.drop_raw(&name(i), "t.json", format!(r#"{{"text":"{word} {i}"}}"#).as_bytes());
    }
}

/// Item 11: 500 peers woken at once by a daemon started at a soft limit of
/// 1024 descriptors: all served, no wake counted as a death, and no tmux
/// server left behind without its socket.
#[test]
#[ignore = "heavy: 500 sessions woken at once (run by .ci/run)"]
fn a_wake_storm_of_500_at_a_soft_fd_limit_of_1024() {
    let n = 500;
    let mut e = Env::new();
    let name = |i: usize| format!("s{i:03}");
    peers_with_one_task(&mut e, n, &name, "storm");
    let socket = e.socket("s000").display().to_string();
    let prefix = socket.strip_suffix("s000").unwrap().to_string();
    let err = std::fs::File::create(e.dir.path().join("daemon.err")).unwrap();
    let mut c = std::process::Command::new("sh");
    c.args(["-c", "ulimit -Sn 1024 && exec \"$0\" daemon", BIN])
        .env("PEERSPOOL_HOME", &e.root)
        .env("PEERSPOOL_LOG", "info")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(err);
    for (k, v) in &e.vars {
        c.env(k, v);
    }
    let t0 = Instant::now();
    e.daemon = Some(c.spawn().unwrap());
    let served = |e: &Env| (0..n).filter(|&i| e.count(&name(i), "spool/done") == 1).count();
    let res = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        wait_for("500 served", Duration::from_secs(150), || served(&e) == n);
    }));
    let secs = t0.elapsed().as_secs_f64();
    let life = e.lifecycle();
    println!(
        "wake storm: peers={n} served={} secs={secs:.1} deaths={} deferred={} raised={}",
        served(&e),
        life.matches("event=death").count(),
        life.matches("event=wake-deferred").count(),
        e.daemon_stderr().contains("raised the soft open-files limit"),
    );
    e.stop_daemon();
    let orphans = end_servers(&e, n, &name, &prefix, 1);
    res.unwrap();
    assert_eq!(orphans, vec![], "tmux servers left running after their sockets were removed");
    assert_eq!(life.matches("event=death").count(), 0, "a wake storm is no peer's death");
}

/// Item 13: a writer that writes straight into `new/` and pauses longer
/// than the settle window with the file still open is not judged
/// half-written: the daemon waits for the close.
#[test]
fn a_direct_writer_pausing_past_the_settle_window_is_waited_for() {
    use std::io::Write;
    let mut e = Env::new();
    e.var("PEERSPOOL_SETTLE_SECS", "0.2");
    e.add_peer("w", &PeerOpts::default());
    e.start_daemon();
    let mut f = std::fs::File::create(e.peer_dir("w").join("spool/new/direct.json")).unwrap();
    f.write_all(br#"{"text":"half"#).unwrap();
    f.flush().unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    f.write_all(br#"way there"}"#).unwrap();
    drop(f);
    wait_for("delivered", T, || !e.bodies("w").is_empty() || e.delivery().contains("outcome=rejected"));
    assert_eq!(e.bodies("w"), ["halfway there"], "{}", e.delivery());
}

/// CPU seconds (user + system) a process has used so far.
fn cpu_secs(pid: u32) -> f64 {
    let stat = read(Path::new(&format!("/proc/{pid}/stat")));
    let after = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<u64> = after.split_whitespace().filter_map(|x| x.parse().ok()).collect();
    // Fields 14 and 15 of stat; after the name, 12 and 13 counting from 1
    // (the state field is not numeric and was dropped).
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    (f.get(10).copied().unwrap_or(0) + f.get(11).copied().unwrap_or(0)) as f64 / hz
}

/// Item 2: a profile whose activity glob is `/usr/**/*` neither eats the
/// CPU while its session is live nor holds up SIGTERM.
#[test]
fn a_broad_activity_glob_is_cheap_and_does_not_delay_shutdown() {
    let mut e = Env::new();
    let work = e.work.display().to_string();
    let log = e.agent_log("g").display().to_string();
    e.ok(&["peer", "add", "g", "--runtime", "command", "--cwd", &work, "--activity", "/usr/**/*", "--ready-pattern", "^agent> ", "--", BIN, "agent", "--log", &log]);
    e.track_peer("g");
    e.start_daemon();
    e.send("g", "look busy");
    wait_for("delivered", T, || e.bodies("g").len() == 1);
    let pid = e.daemon.as_ref().map(|c| c.id()).unwrap();
    let (c0, t0) = (cpu_secs(pid), Instant::now());
    std::thread::sleep(Duration::from_secs(3));
    let share = (cpu_secs(pid) - c0) / t0.elapsed().as_secs_f64();
    let t = Instant::now();
    assert_eq!(e.stop_daemon(), Some(0));
    let stop = t.elapsed();
    println!("broad activity glob: daemon cpu={:.0}% sigterm_ms={}", share * 100.0, stop.as_millis());
    assert!(share < 0.15, "daemon used {:.0}% CPU with a live session", share * 100.0);
    assert!(stop < Duration::from_secs(5), "SIGTERM took {stop:?}");
}

/// Item 11, the hard case: a daemon whose hard descriptor limit is too low
/// for its peers runs out of descriptors while waking them. That is its
/// own fault: no peer is recorded dead or blocked as a crash loop, and no
/// tmux server is left running without its socket.
#[test]
fn running_out_of_descriptors_is_no_peers_death() {
    let n = 24;
    let mut e = Env::new();
    let name = |i: usize| format!("f{i:02}");
    peers_with_one_task(&mut e, n, &name, "tight");
    let prefix = e.socket("f00").display().to_string().strip_suffix("f00").unwrap().to_string();
    let err = std::fs::File::create(e.dir.path().join("daemon.err")).unwrap();
    let mut c = std::process::Command::new("sh");
    c.args(["-c", "ulimit -n 80 && exec \"$0\" daemon", BIN])
        .env("PEERSPOOL_HOME", &e.root)
        .env("PEERSPOOL_LOG", "info")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(err);
    for (k, v) in &e.vars {
        c.env(k, v);
    }
    e.daemon = Some(c.spawn().unwrap());
    let served = |e: &Env| (0..n).filter(|&i| e.count(&name(i), "spool/done") == 1).count();
    let res = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        wait_for("some served", T, || served(&e) > 0);
        std::thread::sleep(Duration::from_secs(5));
    }));
    let life = e.lifecycle();
    let served = served(&e);
    println!("tight fd limit: peers={n} served={served} deferred={} deaths={}", life.matches("event=wake-deferred").count(), life.matches("event=death").count());
    e.kill_daemon();
    // Twice: a tmux client the killed daemon had just spawned may still
    // start its server after the first pass.
    let orphans = end_servers(&e, n, &name, &prefix, 2);
    res.unwrap();
    assert_eq!(life.matches("event=death").count(), 0, "{life}");
    assert!(!life.contains("crash-loop"), "{life}");
    assert_eq!(orphans, vec![], "tmux servers left without their sockets");
}

/// Item 5 while running: `spool/new` swapped for a symlink to a directory
/// elsewhere after the peer was registered. Nothing there is consumed; the
/// peer is refused with the reason in status until the directory is real
/// again, and then served.
#[test]
fn a_queue_directory_swapped_for_a_symlink_while_running_is_refused() {
    let mut e = Env::new();
    e.var("PEERSPOOL_SETTLE_SECS", "0.2").var("PEERSPOOL_RESCAN_SECS", "0.5");
    e.add_peer("q", &PeerOpts::default());
    e.start_daemon();
    e.send("q", "before");
    wait_for("first delivered", T, || e.count("q", "spool/done") == 1);
    let outside = e.dir.path().join("outside");
    std::fs::create_dir(&outside).unwrap();
    std::fs::write(outside.join("victim.json"), r#"{"text":"not yours"}"#).unwrap();
    let new = e.peer_dir("q").join("spool/new");
    let link = e.peer_dir("q").join("spool/new.link");
    std::os::unix::fs::symlink(&outside, &link).unwrap();
    // Swapped atomically: the daemon re-creates a deleted new/ at once.
    exchange(&link, &new);
    wait_for("refused", T, || e.lifecycle().contains("peer=q event=peer-refused"));
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(e.bodies("q"), ["before"], "nothing consumed through the symlink");
    assert!(outside.join("victim.json").exists());
    let status = e.ok(&["status", "--json"]);
    assert!(status.contains("peer refused") && status.contains("symlink"), "{status}");
    exchange(&link, &new);
    e.send("q", "after");
    wait_for("served again", T, || e.bodies("q").last().is_some_and(|b| b == "after"));
    assert!(!e.ok(&["status", "--json"]).contains("peer refused"));
    std::fs::remove_file(outside.join("victim.json")).unwrap();
}

/// Makes a directory refuse new entries for as long as it lives: mode
/// 0500 for a normal user, the immutable attribute for root (whom modes do
/// not stop). Dropped, even by a failing test, it undoes that.
struct Unwritable(std::path::PathBuf);

impl Unwritable {
    fn new(dir: &Path) -> Unwritable {
        let ok = if unsafe { libc::geteuid() } == 0 {
            std::process::Command::new("chattr").arg("+i").arg(dir).status().is_ok_and(|s| s.success())
        } else {
            std::fs::set_permissions(dir, std::os::unix::fs::PermissionsExt::from_mode(0o500)).is_ok()
        };
        assert!(ok, "cannot make {} unwritable", dir.display());
        Unwritable(dir.into())
    }
}

impl Drop for Unwritable {
    fn drop(&mut self) {
        let _ = std::process::Command::new("chattr").arg("-i").arg(&self.0).stderr(std::process::Stdio::null()).status();
        let _ = std::fs::set_permissions(&self.0, std::os::unix::fs::PermissionsExt::from_mode(0o700));
    }
}

/// A routing step that keeps failing (the recipient's `inbox/ops/new`
/// refuses new files) is logged once, retried with backoff, said in
/// `status`, and goes through exactly once when the directory is writable.
#[test]
fn a_routing_failure_is_logged_once_shown_and_retried_until_it_goes_through() {
    let mut e = Env::new();
    e.var("PEERSPOOL_SETTLE_SECS", "0.2");
    e.add_peer("a", &PeerOpts::default());
    e.start_daemon();
    let inbox = e.root.join("inbox/ops");
    for d in ["tmp", "new"] {
        std::fs::create_dir_all(inbox.join(d)).unwrap();
        std::fs::set_permissions(inbox.join(d), std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap();
    }
    let new = inbox.join("new");
    let lock = Unwritable::new(&new);
    e.drop_outbox("a", "answer.json", br#"{"to":"ops","text":"the answer"}"#);
    let errors = |e: &Env| e.delivery().lines().filter(|l| l.contains("event=route") && l.contains("outcome=error")).count();
    wait_for("the failure logged", T, || errors(&e) >= 1);
    // 1 s, 2 s: at least two retries in the next 3.5 s.
    std::thread::sleep(Duration::from_millis(3500));
    assert_eq!(errors(&e), 1, "the same failure logged again: {}", e.delivery());
    let status = e.ok(&["status"]);
    assert!(status.contains("outbox held: routing failed, retrying") && status.contains("inbox/ops"), "{status}");
    drop(lock);
    wait_for("routed once the directory is writable", Duration::from_secs(20), || e.count("a", "outbox/sent") == 1);
    assert_eq!(names(&new).len(), 1, "delivered exactly once");
    wait_for("status clear", T, || !e.ok(&["status"]).contains("outbox held"));
}
