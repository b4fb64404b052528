//! Service integration: sd_notify readiness on a socket standing in for
//! systemd, SIGHUP reload, and `peerspool service` writing its unit files.

mod common;
use common::*;
use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, SystemTime};

const T: Duration = Duration::from_secs(30);

/// Makes a file look written a minute ago (while the daemon was down), so
/// the daemon's settle window does not postpone judging it.
fn backdate(p: &Path) {
    let f = std::fs::File::options().write(true).open(p).unwrap();
    f.set_modified(SystemTime::now() - Duration::from_secs(60)).unwrap();
}

fn spawn_daemon(e: &mut Env) {
    let err = std::fs::File::create(e.dir.path().join("daemon.err")).unwrap();
    let child = e.cmd(&["daemon"]).env("PEERSPOOL_LOG", "debug").stdin(Stdio::null()).stdout(Stdio::null()).stderr(err).spawn().expect("spawn daemon");
    e.daemon = Some(child);
}

/// Receives notifications until one contains `want`; returns all received.
fn recv_until(sock: &UnixDatagram, want: &str) -> Vec<String> {
    let mut got = vec![];
    let mut buf = [0u8; 4096];
    loop {
        match sock.recv(&mut buf) {
            Ok(n) => {
                let m = String::from_utf8_lossy(&buf[..n]).into_owned();
                let done = m.lines().any(|l| l == want);
                got.push(m);
                if done {
                    return got;
                }
            }
            Err(e) => panic!("no {want} on the notify socket (got {got:?}): {e}"),
        }
    }
}

#[test]
fn ready_only_after_initial_reconcile_then_stopping_on_sigterm() {
    let mut e = Env::new();
    e.add_peer("alice", &PeerOpts::default());
    e.add_peer("halted", &PeerOpts::default());
    e.ok(&["stop", "halted"]);
    // Enough garbage that routing it takes measurable time: a READY sent
    // before the first pass finished would find some of it still in new/.
    const N: usize = 200;
    for i in 0..N {
        let name = format!("{i:04}-garbage.json");
        e.drop_outbox("alice", &name, b"this is not json");
        backdate(&e.peer_dir("alice").join("outbox/new").join(&name));
    }
    e.drop_raw("halted", "task1.json", br#"{"text":"wait for me"}"#);
    backdate(&e.peer_dir("halted").join("spool/new/task1.json"));

    let sock_path = e.dir.path().join("notify.sock");
    let sock = UnixDatagram::bind(&sock_path).unwrap();
    sock.set_read_timeout(Some(T)).unwrap();
    e.var("NOTIFY_SOCKET", sock_path.to_str().unwrap());
    spawn_daemon(&mut e);

    let first = recv_until(&sock, "READY=1");
    // Checked the moment READY=1 arrives: the start-up reconcile is visible.
    let failed = e.count("alice", "outbox/failed");
    let pending = e.count("alice", "outbox/new");
    assert_eq!((failed, pending), (N, 0), "READY=1 came before the outbox was routed");
    assert!(e.peer_dir("alice").join("outbox/failed/0000-garbage.json.error").exists());
    assert_eq!(first.len(), 1, "READY=1 is the first message: {first:?}");
    assert!(first[0].contains("STATUS=serving 2 peers"), "{first:?}");
    // A stopped peer's task waits in new/, untouched.
    assert!(e.peer_dir("halted").join("spool/new/task1.json").exists());
    assert_eq!(e.count("halted", "spool/cur") + e.count("halted", "spool/failed") + e.count("halted", "spool/done"), 0);
    assert!(e.lifecycle().contains("event=daemon-start"));

    assert_eq!(e.stop_daemon(), Some(0));
    let rest = recv_until(&sock, "STOPPING=1");
    assert!(!rest.iter().any(|m| m.contains("READY=1")), "READY=1 sent twice: {rest:?}");
    assert!(e.lifecycle().contains("event=daemon-stop"));
}

#[cfg(target_os = "linux")]
#[test]
fn abstract_socket_and_sessions_do_not_inherit_notify_socket() {
    let mut e = Env::new();
    let envfile = e.work.join("session.env");
    let log = e.agent_log("envy");
    let script = format!("env > '{}'; exec '{}' agent --log '{}'", envfile.display(), BIN, log.display());
    e.add_peer("envy", &PeerOpts { argv: Some(vec!["sh".into(), "-c".into(), script]), ..Default::default() });
    let profile = e.peer_dir("envy").join("peer.json");
    let mut p: serde_json::Value = serde_json::from_str(&read(&profile)).unwrap();
    p["ready_pattern"] = "^agent> ".into();
    std::fs::write(&profile, serde_json::to_vec_pretty(&p).unwrap()).unwrap();

    use std::os::linux::net::SocketAddrExt;
    let name = format!("peerspool-test-{}-{}", std::process::id(), e.dir.path().file_name().unwrap().to_string_lossy());
    let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
    let sock = UnixDatagram::bind_addr(&addr).unwrap();
    sock.set_read_timeout(Some(T)).unwrap();
    e.var("NOTIFY_SOCKET", &format!("@{name}"));
    e.var("WATCHDOG_USEC", "2000000");
    spawn_daemon(&mut e);
    let got = recv_until(&sock, "READY=1");
    assert!(got[0].starts_with("READY=1"), "{got:?}");
    // WATCHDOG_USEC=2 s: pings every second from the dispatcher loop.
    recv_until(&sock, "WATCHDOG=1");

    e.send("envy", "hello from the test");
    wait_for("task delivered", T, || e.bodies("envy").len() == 1);
    let env = read(&envfile);
    assert!(env.contains("PEERSPOOL_PEER=envy"), "session env was captured: {env}");
    for var in ["NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"] {
        assert!(!env.lines().any(|l| l.starts_with(&format!("{var}="))), "session inherited {var}");
    }
    assert_eq!(e.stop_daemon(), Some(0));
    recv_until(&sock, "STOPPING=1");
}

#[test]
fn watchdog_pid_of_another_process_is_ignored() {
    let mut e = Env::new();
    let sock_path = e.dir.path().join("notify.sock");
    let sock = UnixDatagram::bind(&sock_path).unwrap();
    sock.set_read_timeout(Some(T)).unwrap();
    e.var("NOTIFY_SOCKET", sock_path.to_str().unwrap());
    e.var("WATCHDOG_USEC", "200000");
    e.var("WATCHDOG_PID", "1");
    spawn_daemon(&mut e);
    recv_until(&sock, "READY=1");
    assert_eq!(e.stop_daemon(), Some(0));
    let rest = recv_until(&sock, "STOPPING=1");
    assert!(!rest.iter().any(|m| m.contains("WATCHDOG=1")), "pinged for another pid's watchdog: {rest:?}");
}

#[test]
fn sighup_reloads_rescans_and_keeps_running() {
    let mut e = Env::new();
    e.add_peer("bob", &PeerOpts::default());
    e.start_daemon();
    let pid = e.daemon.as_ref().unwrap().id();
    signal(pid, libc::SIGHUP);
    wait_for("reload logged", T, || e.lifecycle().contains("event=reload signal=SIGHUP peers=1"));
    assert!(e.daemon.as_mut().unwrap().try_wait().unwrap().is_none(), "SIGHUP ended the daemon");
    assert!(e.daemon_running());
    assert!(e.daemon_stderr().contains("reason=\"SIGHUP\"") || e.daemon_stderr().contains("reason=SIGHUP"), "rescan ran: {}", e.daemon_stderr());
    // Still serving: a task after the reload is delivered.
    e.send("bob", "after reload");
    wait_for("delivered after SIGHUP", T, || e.bodies("bob") == ["after reload"]);
    assert_eq!(e.lifecycle().matches("event=reload ").count(), 1);
    assert_eq!(e.stop_daemon(), Some(0));
}

/// `service` commands with HOME and XDG_CONFIG_HOME inside the test dir,
/// and no way to reach a user manager (as under CI, and so that a test can
/// never enable a real unit on a developer's machine).
fn svc(e: &Env, args: &[&str]) -> std::process::Output {
    let mut full = vec!["service"];
    full.extend_from_slice(args);
    e.cmd(&full)
        .env("HOME", e.dir.path().join("home"))
        .env("XDG_CONFIG_HOME", e.dir.path().join("cfg"))
        .env("XDG_RUNTIME_DIR", e.dir.path().join("no-runtime"))
        .env("DBUS_SESSION_BUS_ADDRESS", format!("unix:path={}", e.dir.path().join("no-bus").display()))
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn out(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn service_install_writes_unit_for_this_binary_and_is_idempotent() {
    let e = Env::new();
    let unit = e.dir.path().join("cfg/systemd/user/peerspool.service");
    let o = svc(&e, &["install", "--no-enable", "--manager", "systemd"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(out(&o).contains("written"));
    let text = read(&unit);
    // The test root is not the default one, so the unit names it.
    assert!(text.contains(&format!("\nExecStart={BIN} --root {} daemon\n", e.root.display())), "{text}");
    assert!(text.contains("\nType=notify\n") && text.contains("\nRestart=on-failure\n"));
    assert!(text.contains("\nExecReload=/bin/kill -HUP $MAINPID\n") && text.contains("\nWantedBy=default.target\n"));
    let mtime = std::fs::metadata(&unit).unwrap().modified().unwrap();

    let o = svc(&e, &["install", "--no-enable", "--manager", "systemd"]);
    assert!(o.status.success());
    assert!(out(&o).contains("unchanged"), "{}", out(&o));
    assert_eq!(read(&unit), text);
    assert_eq!(std::fs::metadata(&unit).unwrap().modified().unwrap(), mtime, "second install rewrote the file");
    assert_eq!(std::fs::read_dir(unit.parent().unwrap()).unwrap().count(), 1, "no stray files");

    // --dry-run prints the same unit and touches nothing.
    std::fs::remove_file(&unit).unwrap();
    let o = svc(&e, &["install", "--dry-run", "--manager", "systemd"]);
    assert!(o.status.success());
    assert_eq!(out(&o), text, "stdout is exactly the file");
    assert!(String::from_utf8_lossy(&o.stderr).contains(&unit.display().to_string()));
    assert!(!unit.exists());
}

#[test]
fn service_status_and_uninstall() {
    let e = Env::new();
    let unit = e.dir.path().join("cfg/systemd/user/peerspool.service");
    let o = svc(&e, &["status", "--manager", "systemd"]);
    assert!(o.status.success());
    assert!(out(&o).starts_with("installed: no"), "{}", out(&o));
    assert!(svc(&e, &["install", "--no-enable", "--manager", "systemd"]).status.success());
    let o = svc(&e, &["status", "--manager", "systemd"]);
    let s = out(&o);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(s.starts_with(&format!("installed: yes, {}\n", unit.display())), "{s}");
    let unavailable: Vec<&str> = s.lines().filter(|l| l.contains("systemctl --user is unavailable")).collect();
    assert_eq!(unavailable.len(), 1, "one line says why enabled/active are unknown: {s}");
    assert!(!s.contains("enabled:") && !s.contains("active:"), "{s}");
    assert!(s.contains("daemon: not running"), "{s}");

    let o = svc(&e, &["uninstall", "--no-disable", "--manager", "systemd"]);
    assert!(o.status.success() && out(&o).contains("removed"));
    assert!(!unit.exists());
    let o = svc(&e, &["uninstall", "--no-disable", "--manager", "systemd"]);
    assert!(o.status.success() && out(&o).contains("not installed"), "{}", out(&o));
}

#[test]
fn service_install_without_user_manager_writes_unit_and_fails_in_one_line() {
    let e = Env::new();
    let unit = e.dir.path().join("cfg/systemd/user/peerspool.service");
    let o = svc(&e, &["install", "--manager", "systemd"]);
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("systemctl --user is unavailable") && err.contains(&unit.display().to_string()) && err.contains("enable --now"), "{err}");
    assert!(unit.exists(), "the unit is written even when it cannot be enabled");
}

#[test]
fn service_install_launchagent_is_a_valid_plist() {
    let e = Env::new();
    let o = svc(&e, &["install", "--no-enable", "--manager", "launchd"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let plist = read(&e.dir.path().join("home/Library/LaunchAgents/dev.peerspool.daemon.plist"));
    assert!(!plist.contains('@'), "placeholders left: {plist}");
    assert!(plist.contains(&format!("<string>{BIN}</string>\n    <string>--root</string>\n    <string>{}</string>\n    <string>daemon</string>", e.root.display())), "{plist}");
    assert!(plist.contains(&format!("<string>{}/log/daemon.log</string>", e.root.display())));
    assert!(e.root.join("log").is_dir(), "launchd needs the log directory to exist");
    assert!(plist.contains("<key>KeepAlive</key>\n  <dict>\n    <key>SuccessfulExit</key>\n    <false/>"));
    assert!(svc(&e, &["install", "--no-enable", "--manager", "launchd"]).stdout.ends_with(b"unchanged\n"));
}

#[test]
fn generated_man_page_and_completions_cover_the_cli() {
    let e = Env::new();
    let man = e.ok(&["generate", "man"]);
    assert!(man.contains(".TH peerspool 1"));
    for verb in ["daemon", "send", "service", "status"] {
        assert!(man.contains(verb), "man page lacks {verb}");
    }
    let dir = e.dir.path().join("gen");
    e.ok(&["generate", "man", "--out", dir.to_str().unwrap()]);
    assert_eq!(read(&dir.join("peerspool.1")), man + "\n", "--out writes what stdout shows");
    assert!(read(&dir.join("peerspool-send.1")).contains(".TH peerspool-send 1"));
    assert!(!dir.join("peerspool-agent.1").exists(), "hidden verbs get no page");
    for (shell, file, needle) in [("bash", "peerspool.bash", "complete -F"), ("zsh", "_peerspool", "#compdef peerspool"), ("fish", "peerspool.fish", "complete -c peerspool")] {
        e.ok(&["generate", "completions", shell, "--out", dir.to_str().unwrap()]);
        let text = read(&dir.join(file));
        assert!(text.contains(needle) && text.contains("service"), "{shell} completions: {}", &text[..text.len().min(300)]);
    }
}
