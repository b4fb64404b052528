use clap::Args;
use peerspool::registry::profile::{Profile, WakePolicy};
use peerspool::root::Root;
use peerspool::daemon::state::{now_ms, PeerState};
use peerspool::session::tmux::Tmux;
use peerspool::{queue::spool, Error};
use serde_json::json;

#[derive(Args, Debug)]
pub struct StatusArgs {
    /// Machine-readable output
    #[arg(long)]
    pub json: bool,
    /// Refresh until interrupted (Ctrl-C) or the output is closed
    #[arg(long)]
    pub watch: bool,
    /// Seconds between refreshes with --watch
    #[arg(long, value_name = "SECS", default_value_t = 2.0, requires = "watch")]
    pub interval: f64,
}

pub(super) fn peer_status(root: &Root, name: &str) -> anyhow::Result<serde_json::Value> {
    let p = root.peer(name)?;
    let st = PeerState::new(root, name);
    let prof = Profile::load(&p.profile());
    let live = Tmux::new(root.tmux_socket(name)).alive_blocking();
    let now = now_ms();
    let sess = st.session();
    let window = peerspool::config::from_env().0.crashloop_window.as_millis() as u64;
    let recent_deaths = st.deaths().iter().filter(|&&d| now.saturating_sub(d) <= window).count();
    Ok(json!({
        "name": name,
        "runtime": prof.as_ref().map(|p| p.runtime.as_str()).unwrap_or("invalid"),
        "policy": match &prof { Ok(p) if p.wake_policy == WakePolicy::Ephemeral => "ephemeral", Ok(_) => "warm", Err(_) => "-" },
        "profile_error": prof.as_ref().err().map(|e| e.to_string()),
        "session": if live { "live" } else { "asleep" },
        "stopped": st.stopped(),
        "queued": spool::depth(&p.spool_sub("new")),
        "in_flight": spool::depth(&p.spool_sub("cur")),
        "done": spool::depth(&p.spool_sub("done")),
        "failed": spool::depth(&p.spool_sub("failed")),
        "outbox_failed": spool::depth(&p.outbox_sub("failed")),
        "last_activity_age_secs": st.activity_ms().map(|a| now.saturating_sub(a) / 1000),
        "armed": live && sess.as_ref().is_some_and(|s| s.armed_at_ms.is_some()),
        "recent_deaths": recent_deaths,
        "blocked": st.blocked(),
        "held": st.held(),
        "current_task": if live { st.current().map(|c| c.id) } else { None },
        "booting": if live { st.booting().map(|b| b.describe(now)) } else { None },
        "turn": if live { st.turn().map(|t| turn_json(&t, now)) } else { None },
    }))
}

/// Every peer's status, in name order. Peers are read by a few threads at
/// once: a live session's check is a tmux client process (~2 ms), so a
/// thousand live peers took seconds one after another.
fn gather(root: &Root, names: &[String]) -> anyhow::Result<Vec<serde_json::Value>> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).clamp(1, 8) * 2;
    if names.len() < 32 {
        return names.iter().map(|n| peer_status(root, n)).collect();
    }
    // A shared cursor, not fixed chunks: live peers often sit together.
    let next = std::sync::atomic::AtomicUsize::new(0);
    let read = || {
        let mut got = vec![];
        loop {
            let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let Some(n) = names.get(i) else { return Ok::<_, anyhow::Error>(got) };
            got.push((i, peer_status(root, n)?));
        }
    };
    let mut all: Vec<(usize, serde_json::Value)> = std::thread::scope(|s| {
        let parts: Vec<_> = (0..threads).map(|_| s.spawn(read)).collect();
        let mut all = Vec::with_capacity(names.len());
        for h in parts {
            all.extend(h.join().map_err(|_| anyhow::anyhow!("a status reader panicked"))??);
        }
        Ok::<_, anyhow::Error>(all)
    })?;
    all.sort_unstable_by_key(|(i, _)| *i);
    Ok(all.into_iter().map(|(_, v)| v).collect())
}

/// The session's turn and a task held for it, with ages.
fn turn_json(t: &peerspool::daemon::state::TurnView, now: u64) -> serde_json::Value {
    let mut v = json!({"state": t.state, "for_secs": now.saturating_sub(t.since_ms) / 1000});
    if let Some(w) = &t.waiting {
        v["waiting"] = json!({"task": w.task, "why": w.why, "for_secs": now.saturating_sub(w.since_ms) / 1000});
    }
    v
}

pub fn run(root: &Root, a: StatusArgs) -> anyhow::Result<i32> {
    super::check_root(root)?;
    if a.watch {
        return watch(root, &a);
    }
    print!("{}", render(root, a.json)?);
    Ok(0)
}

/// `--watch`: the same text again and again, the screen cleared between
/// refreshes on a terminal. A closed pipe ends it (SIGPIPE, as for every
/// verb); SIGINT and SIGTERM end it with status 0.
fn watch(root: &Root, a: &StatusArgs) -> anyhow::Result<i32> {
    use std::io::{IsTerminal, Write};
    if !(a.interval.is_finite() && a.interval > 0.0) {
        return Err(Error::Usage(format!("--interval {} must be a positive number of seconds", a.interval)).into());
    }
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, stop.clone())?;
    }
    let tty = std::io::stdout().is_terminal();
    let every = std::time::Duration::from_secs_f64(a.interval);
    let mut out = std::io::stdout();
    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
        let text = render(root, a.json)?;
        let frame = if tty { format!("\x1b[H\x1b[2J{text}") } else { format!("{text}\n") };
        if out.write_all(frame.as_bytes()).and_then(|_| out.flush()).is_err() {
            break;
        }
        let until = std::time::Instant::now() + every;
        while std::time::Instant::now() < until && !stop.load(std::sync::atomic::Ordering::Relaxed) {
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }
    Ok(0)
}

/// The status report as printed, for `run` and `--watch`.
fn render(root: &Root, as_json: bool) -> anyhow::Result<String> {
    use std::fmt::Write;
    let pid = peerspool::daemon::lock::running(root);
    let peers = gather(root, &root.peer_names()?)?;
    let mut o = String::new();
    if as_json {
        let bridge = pid.and_then(|_| peerspool::bridge::status::read(root));
        let v = json!({"root": root.path, "daemon": {"running": pid.is_some(), "pid": pid}, "bridge": bridge, "peers": peers});
        writeln!(o, "{}", serde_json::to_string_pretty(&v)?)?;
        return Ok(o);
    }
    match pid {
        Some(p) => writeln!(o, "daemon: running (pid {p}) on {}", root.path.display())?,
        None => writeln!(o, "daemon: not running on {}", root.path.display())?,
    }
    // The bridge to other hosts, while the daemon runs one.
    if let Some(v) = pid.and_then(|_| peerspool::bridge::status::read(root)) {
        writeln!(o, "{}", v.line())?;
    }
    if peers.is_empty() {
        writeln!(o, "no peers (add one with `peerspool peer add`)")?;
        return Ok(o);
    }
    writeln!(o, "{:<20} {:<8} {:<9} {:<7} {:>6} {:>6} {:>6} {:>6} {:>9} {:<5} {:>6}  note",
        "PEER", "RUNTIME", "POLICY", "SESSION", "QUEUED", "FLIGHT", "DONE", "FAILED", "ACTIVITY", "ARMED", "DEATHS")?;
    for p in &peers {
        let age = p["last_activity_age_secs"].as_u64().map(|s| format!("{s}s ago")).unwrap_or_else(|| "-".into());
        let mut note = vec![];
        if p["stopped"].as_bool() == Some(true) {
            note.push("STOPPED".to_string());
        }
        if let Some(b) = p["booting"].as_str() {
            note.push(b.to_string());
        }
        let t = &p["turn"];
        if let Some(state) = t["state"].as_str().filter(|s| *s != "ready") {
            note.push(format!("{state} ({} s)", n(&t["for_secs"])));
        }
        if let Some(task) = t["waiting"]["task"].as_str() {
            note.push(format!("task {task} waits: {} ({} s)", t["waiting"]["why"].as_str().unwrap_or(""), n(&t["waiting"]["for_secs"])));
        }
        if let Some(b) = p["blocked"].as_str() {
            note.push(b.to_string());
        }
        if let Some(h) = p["held"].as_str() {
            note.push(format!("outbox held: {h}"));
        }
        if let Some(e) = p["profile_error"].as_str() {
            note.push(e.to_string());
        }
        writeln!(o, "{:<20} {:<8} {:<9} {:<7} {:>6} {:>6} {:>6} {:>6} {:>9} {:<5} {:>6}  {}",
            p["name"].as_str().unwrap_or(""), p["runtime"].as_str().unwrap_or(""), p["policy"].as_str().unwrap_or(""),
            p["session"].as_str().unwrap_or(""), n(&p["queued"]), n(&p["in_flight"]), n(&p["done"]), n(&p["failed"]), age,
            if p["armed"].as_bool() == Some(true) { "yes" } else { "no" }, n(&p["recent_deaths"]), note.join("; "))?;
    }
    Ok(o)
}

fn n(v: &serde_json::Value) -> u64 {
    v.as_u64().unwrap_or(0)
}

pub fn set_stopped(root: &Root, peer: &str, stop: bool) -> anyhow::Result<i32> {
    apply_stop(root, peer, stop)?;
    println!("{peer}: {}", if stop { "stopped (tasks wait in the spool)" } else { "started" });
    Ok(0)
}

/// `stop` / `start` without the message (also `top`'s `s` key).
pub(super) fn apply_stop(root: &Root, peer: &str, stop: bool) -> anyhow::Result<()> {
    root.peer(peer)?;
    if !root.is_peer(peer) {
        return Err(Error::UnknownPeer(peer.into()).into());
    }
    let st = PeerState::new(root, peer);
    st.set_stopped(stop)?;
    if !stop {
        st.clear_deaths();
        st.set_setup_block(None);
        st.set_blocked(None);
    }
    Ok(())
}
