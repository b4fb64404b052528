//! Sections that measure what waiting costs: an idle daemon with many
//! peers, `send --wait` on an empty inbox, and per-task cost as the queue
//! grows. Part of the `sysbench` driver (see bench/sysbench.rs).

use super::*;

// ------------------------------------------------------------------- idle

#[derive(Clone, Copy, Default)]
pub(crate) struct Cpu {
    pub(crate) own_ticks: u64,
    pub(crate) child_ticks: u64,
}

pub(crate) fn proc_cpu(pid: u32) -> Option<Cpu> {
    let s = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the parenthesised comm: state is field 3; utime is 14.
    let rest = &s[s.rfind(')')? + 2..];
    let f: Vec<u64> = rest.split(' ').map(|x| x.parse().unwrap_or(0)).collect();
    Some(Cpu { own_ticks: f.get(11)? + f.get(12)?, child_ticks: f.get(13)? + f.get(14)? })
}

pub(crate) fn proc_rss_kb(pid: u32) -> (u64, u64) {
    let s = fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let get = |k: &str| s.lines().find(|l| l.starts_with(k)).and_then(|l| l.split_whitespace().nth(1)).and_then(|v| v.parse().ok()).unwrap_or(0);
    (get("VmRSS:"), get("VmHWM:"))
}

pub(crate) fn clk_tck() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 { t as f64 } else { 100.0 }
}

/// CPU seconds of the tmux servers (they are not the daemon's children).
pub(crate) fn servers_cpu(socks: &[PathBuf]) -> f64 {
    let mut ticks = 0;
    for s in socks {
        let pid = tmux(s).args(["display-message", "-p", "#{pid}"]).output().ok().and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse::<u32>().ok());
        if let Some(c) = pid.and_then(proc_cpu) {
            ticks += c.own_ticks;
        }
    }
    ticks as f64 / clk_tck()
}

pub(crate) fn measure_idle(pid: u32, secs: u64, socks: &[PathBuf]) -> Res<IdleReport> {
    std::thread::sleep(Duration::from_secs(3));
    let a = proc_cpu(pid).ok_or("daemon gone")?;
    let sa = servers_cpu(socks);
    let t = Instant::now();
    let end = t + Duration::from_secs(secs);
    while Instant::now() < end {
        check_stop()?;
        std::thread::sleep(Duration::from_millis(200));
    }
    let wall = t.elapsed().as_secs_f64();
    let b = proc_cpu(pid).ok_or("daemon gone")?;
    let sb = servers_cpu(socks);
    let (rss, hwm) = proc_rss_kb(pid);
    let own = (b.own_ticks - a.own_ticks) as f64 / clk_tck();
    let child = (b.child_ticks - a.child_ticks) as f64 / clk_tck();
    Ok(IdleReport {
        secs: wall,
        rss_mb: rss as f64 / 1024.0,
        hwm_mb: hwm as f64 / 1024.0,
        cpu_s: own,
        cpu_pct: own / wall * 100.0,
        children_cpu_s: child,
        servers_cpu_s: sb - sa,
        total_pct: (own + child + (sb - sa)) / wall * 100.0,
        peers: 0,
        live: 0,
    })
}

pub(crate) fn section_idle(o: &Opts, r: &mut Report) -> Res<()> {
    let mut e = Env::new(o, "idle")?;
    e.add_peer("i0", &[])?;
    e.clone_peers("i0", "j", o.idle_peers - 1)?;
    let pid = e.start_daemon(&[], o.idle_peers)?;
    let mut rep = measure_idle(pid, o.idle_secs, &[])?;
    rep.peers = o.idle_peers;
    r.idle = Some(rep);
    drop(e);

    let mut e = Env::new(o, "live")?;
    e.add_peer("l0", &[])?;
    let mut names = vec!["l0".to_string()];
    names.extend(e.clone_peers("l0", "m", o.live_peers - 1)?);
    let pid = e.start_daemon(&[], o.live_peers)?;
    for n in &names {
        e.put(n, "spool", "000000000001-wake.json", &task("wake up"))?;
    }
    let logs: Vec<PathBuf> = names.iter().map(|n| e.log(n)).collect();
    wait_until("all live sessions delivered", Duration::from_secs(60 + o.live_peers as u64 * 2), || {
        logs.iter().all(|l| fs::read_to_string(l).map(|s| s.contains("\"text\"")).unwrap_or(false))
    })?;
    let socks: Vec<PathBuf> = names.iter().map(|n| e.socket(n)).collect();
    let mut rep = measure_idle(pid, o.idle_secs, &socks)?;
    rep.peers = o.live_peers;
    rep.live = o.live_peers;
    r.idle_live = Some(rep);
    Ok(())
}

// ------------------------------------------------------------------ wait

#[derive(serde::Serialize)]
pub(crate) struct WaitReport {
    pub(crate) secs: f64,
    pub(crate) cpu_s: f64,
    pub(crate) exit: Option<i32>,
}

/// CPU of `send --wait` sitting out its timeout on an empty inbox (no
/// daemon, so no reply can come): the waiter's own rusage from wait4.
pub(crate) fn section_wait(o: &Opts, r: &mut Report) -> Res<()> {
    let mut e = Env::new(o, "wait")?;
    e.add_peer("w0", &[])?;
    let secs = o.idle_secs.to_string();
    let t = Instant::now();
    let child = e.cmd(&["send", "w0", "--wait", "--timeout", &secs, "nobody answers"]).stdout(Stdio::null()).stderr(Stdio::null()).spawn().map_err(|e| format!("spawn send --wait: {e}"))?;
    note_cleanup(o, "pid", &child.id().to_string());
    let (mut status, pid) = (0, child.id() as i32);
    // SAFETY: an all-zero rusage is valid; wait4 fills it for our child.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: waits for the child just spawned, by its pid.
    if unsafe { libc::wait4(pid, &mut status, 0, &mut ru) } != pid {
        return Err("wait4 failed".into());
    }
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    let exit = libc::WIFEXITED(status).then(|| libc::WEXITSTATUS(status));
    r.wait = Some(WaitReport { secs: t.elapsed().as_secs_f64(), cpu_s: tv(ru.ru_utime) + tv(ru.ru_stime), exit });
    Ok(())
}

// ---------------------------------------------------------------- scaling

pub(crate) fn section_scale(o: &Opts, r: &mut Report) -> Res<()> {
    for &n in &o.scale {
        check_stop()?;
        let mut e = Env::new(o, &format!("scale{n}"))?;
        e.add_peer("s", &[])?;
        e.ok(&["stop", "s"])?;
        let pid = e.start_daemon(&[], 1)?;
        let k = o.scale_k.min(n - 1);
        let tmp = e.spool_dir("s", "spool", "tmp");
        let new = e.spool_dir("s", "spool", "new");
        let t = Instant::now();
        for i in 0..n {
            let nm = format!("{:012}-q.json", i);
            fs::write(tmp.join(&nm), serde_json::to_vec(&task(&format!("queued {i}"))).map_err(|e| e.to_string())?).map_err(|e| e.to_string())?;
            fs::rename(tmp.join(&nm), new.join(&nm)).map_err(|e| e.to_string())?;
        }
        let stage_s = t.elapsed().as_secs_f64();
        // A queue that built up over time has been written back; one staged
        // just now has not, and its writeback would be billed to the
        // deliveries measured next (the bigger the queue, the longer).
        let t = Instant::now();
        // SAFETY: sync(2) has no preconditions.
        unsafe { libc::sync() };
        let sync_s = t.elapsed().as_secs_f64();
        // The stopped peer still takes one event per staged file; timing
        // starts once the daemon has digested them (its CPU time stood
        // still for 300 ms), or the backlog is billed to the deliveries.
        let t = Instant::now();
        let mut last = proc_cpu(pid).map(|c| c.own_ticks);
        loop {
            std::thread::sleep(Duration::from_millis(300));
            let now = proc_cpu(pid).map(|c| c.own_ticks);
            if now == last || t.elapsed() > Duration::from_secs(120) {
                break;
            }
            last = now;
        }
        let digest_s = t.elapsed().as_secs_f64();
        let mut tail = Tail::new(e.log("s"));
        let mut pending = Default::default();
        e.ok(&["start", "s"])?;
        let mut stamps = vec![];
        for _ in 0..=k {
            let v = tail.next(&mut pending, Duration::from_secs(60))?;
            stamps.push(v["ns"].as_u64().unwrap_or(0));
        }
        // The first delivery includes the wake; the rest are steady state.
        let per = stamps.windows(2).map(|w| ms(w[1].saturating_sub(w[0]))).collect::<Vec<_>>();
        r.scale.push(ScaleReport { queued: n, measured: k, stage_s, sync_s, digest_s, per_task: dist(&per) });
        e.stop_daemon();
    }
    Ok(())
}
