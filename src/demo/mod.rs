//! `peerspool demo`: a self-contained run on a temporary root. Two
//! built-in test peers (this binary's hidden `agent` subcommand) show a
//! wake, deliveries, replies routed back to a script's inbox, an ephemeral
//! worker getting one fresh session per task, and an idle reap. The
//! daemon runs as a child process; everything is cleaned up on exit.
//!
//! Owns: the demo and the built-in test agent (`agent`), which models
//! what matters of a real agent (a working turn, a silent tool run, a
//! composer holding a draft) so fast tests exercise the real path.

pub mod agent;

use crate::queue::send::{self, Opts};
use crate::registry::profile::{Profile, RuntimeKind, WakePolicy};
use crate::root::Root;
use crate::session::tmux::Tmux;
use anyhow::{bail, Context};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const PEERS: [&str; 2] = ["alice", "worker"];

/// Stops what the demo started, whatever happens.
struct Guard {
    root: Root,
    base: PathBuf,
    daemon: Option<Child>,
    keep: bool,
}

impl Drop for Guard {
    fn drop(&mut self) {
        if let Some(mut c) = self.daemon.take() {
            // SAFETY: signals the child this process spawned.
            unsafe { libc::kill(c.id() as i32, libc::SIGTERM) };
            let t = Instant::now();
            while t.elapsed() < Duration::from_secs(10) {
                if let Ok(Some(_)) = c.try_wait() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
        for p in PEERS {
            Tmux::new(self.root.tmux_socket(p)).kill_server_blocking();
        }
        if !self.keep {
            let _ = std::fs::remove_dir_all(&self.base);
        }
    }
}

fn add_peer(root: &Root, exe: &str, work: &std::path::Path, name: &str, ephemeral: bool) -> anyhow::Result<()> {
    let p = root.peer(name)?;
    root.ensure_peer_dirs(&p)?;
    let log = work.join(format!("{name}.log"));
    let mut pr = Profile::new(RuntimeKind::Command, work.to_path_buf());
    let mut argv = vec![exe.to_string(), "agent".into(), "--log".into(), log.display().to_string(), "--reply".into(), "--work-ms".into(), "300".into()];
    if ephemeral {
        pr.wake_policy = WakePolicy::Ephemeral;
        argv.push("--turn-end".into());
    } else {
        let mut resume = argv.clone();
        resume.push("--resumed".into());
        pr.resume_command = Some(resume);
    }
    pr.command = Some(argv);
    pr.activity = Some(log.display().to_string());
    pr.ready_pattern = Some("^agent> ".into());
    crate::daemon::state::replace_file(&p.profile(), pr.to_json().as_bytes())?;
    Ok(())
}

fn wait_reply(root: &Root, id: &str) -> anyhow::Result<String> {
    match crate::queue::wait::reply(&root.inbox("demo")?, id, Duration::from_secs(30))? {
        Some(m) => Ok(format!("{} answered: {:?}", m.from, m.text)),
        None => bail!("no reply to {id} within 30 s"),
    }
}

fn step(n: u32, what: &str) {
    println!("\n[{n}] {what}");
}

pub fn run(keep: bool) -> anyhow::Result<i32> {
    if Tmux::version_blocking().is_none() {
        bail!("tmux is not installed: the demo needs it (apt-get install tmux / brew install tmux)");
    }
    let exe = std::env::current_exe().context("locating this binary")?.display().to_string();
    let base = std::env::temp_dir().join(format!("peerspool-demo-{}", std::process::id()));
    let root = Root::new(base.join("root"));
    let work = base.join("work");
    let mut g = Guard { root: root.clone(), base: base.clone(), daemon: None, keep };
    std::fs::create_dir_all(&work)?;
    root.ensure()?;
    println!("peerspool demo — temporary root {}", root.path.display());
    add_peer(&root, &exe, &work, "alice", false)?;
    add_peer(&root, &exe, &work, "worker", true)?;
    println!("    peers: alice (warm), worker (ephemeral) — both run the built-in test agent");

    step(1, "starting the daemon (idle reap after 3 s, quiet window 1 s for the demo)");
    let err = std::fs::File::create(base.join("daemon.err"))?;
    g.daemon = Some(
        Command::new(&exe)
            .arg("daemon")
            .env("PEERSPOOL_HOME", &root.path)
            .env("PEERSPOOL_IDLE_SECS", "3")
            .env("PEERSPOOL_QUIET_SECS", "1")
            .env_remove("PEERSPOOL_PEER")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(err)
            .spawn()
            .context("starting the daemon")?,
    );
    let t = Instant::now();
    while crate::daemon::lock::running(&root).is_none() {
        if t.elapsed() > Duration::from_secs(10) {
            bail!("daemon did not start: {}", std::fs::read_to_string(base.join("daemon.err")).unwrap_or_default());
        }
        std::thread::sleep(Duration::from_millis(20));
    }

    step(2, "a script sends alice a task; alice is asleep, so the daemon wakes her");
    let opts = Opts { from: Some("demo".into()), ..Default::default() };
    let t = Instant::now();
    let id = send::task(&root, "alice", "Summarise the plan in one line.", &opts)?;
    println!("    task {id} queued; {}", wait_reply(&root, &id)?);
    println!("    round trip incl. wake: {} ms", t.elapsed().as_millis());
    let t = Instant::now();
    let id = send::task(&root, "alice", "multi-line\n-dash leading, \"quotes\", $(not run) and \x1b[201~ made inert", &opts)?;
    println!("    second task to the live session: {} ({} ms)", wait_reply(&root, &id)?, t.elapsed().as_millis());

    step(3, "three tasks for the ephemeral worker: one fresh session each, reaped after its reply");
    let ids: Vec<String> = (1..=3).map(|i| send::task(&root, "worker", &format!("job {i}"), &opts)).collect::<Result<_, _>>()?;
    for id in &ids {
        println!("    {}", wait_reply(&root, id)?);
    }

    step(4, "waiting for alice's idle reap (3 s without activity)");
    let t = Instant::now();
    while Tmux::new(root.tmux_socket("alice")).alive_blocking() {
        if t.elapsed() > Duration::from_secs(30) {
            bail!("alice was not reaped");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    println!("    alice reaped after 3 s idle; parked, so her next task resumes the session");

    step(5, "what the logs say");
    let life = std::fs::read_to_string(root.log_dir().join("lifecycle.log")).unwrap_or_default();
    for l in life.lines().filter(|l| l.contains("event=wake ") || l.contains("event=reap") || l.contains("event=armed")) {
        println!("    {l}");
    }
    let wakes = life.matches("event=wake ").count();
    let deliv = std::fs::read_to_string(root.log_dir().join("delivery.log")).unwrap_or_default();
    let delivered = deliv.lines().filter(|l| l.contains("event=deliver ") && l.contains("outcome=delivered")).count();
    println!("\n    {wakes} wakes, {delivered} deliveries, {} replies routed", deliv.matches("outcome=routed").count());
    if wakes != 4 || delivered != 5 {
        bail!("unexpected demo outcome: {wakes} wakes, {delivered} deliveries");
    }
    drop(g);
    println!("\ndemo finished: daemon stopped, tmux servers killed, {} {}", base.display(), if keep { "kept" } else { "removed" });
    Ok(0)
}
