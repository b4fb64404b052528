//! Sections that measure what a user's busy machine feels (issue 17): the
//! `send --wait` round trip and per-message routing, each quiet and beside
//! a concurrent 4 GB sequential writer on the same filesystem, with the
//! former whole-filesystem `syncfs` (`PEERSPOOL_SYNC=syncfs`) measured in
//! the same run, samples alternating between the two daemons; and a wake
//! storm. Part of the `sysbench` driver (see bench/sysbench.rs).

use super::*;

/// How the daemon makes routed copies durable.
pub const MODES: [(&str, &[(&str, &str)]); 2] = [("per-file fsync", &[]), ("syncfs (before)", &[("PEERSPOOL_SYNC", "syncfs")])];

/// A concurrent sequential writer: `dd if=/dev/zero of=<dir>/big bs=1M
/// count=4096 conv=fdatasync`, started again whenever it finishes while a
/// measurement is still running. Stopped by pid and its file removed on
/// drop.
pub struct Writer {
    o: Opts,
    path: PathBuf,
    child: Option<Child>,
    pub runs: usize,
}

impl Writer {
    pub fn start(o: &Opts, dir: &Path) -> Res<Writer> {
        let mut w = Writer { o: o.clone(), path: dir.join("big"), child: None, runs: 0 };
        w.keep_running()?;
        // Let it fill the page cache and reach the disk first.
        std::thread::sleep(Duration::from_millis(1500));
        Ok(w)
    }

    /// Starts dd again if it finished (call between samples).
    pub fn keep_running(&mut self) -> Res<()> {
        if let Some(c) = self.child.as_mut() {
            if !matches!(c.try_wait(), Ok(Some(_))) {
                return Ok(());
            }
        }
        let of = format!("of={}", self.path.display());
        let c = Command::new("dd")
            .args(["if=/dev/zero", &of, "bs=1M", "count=4096", "conv=fdatasync"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("dd: {e}"))?;
        note_cleanup(&self.o, "pid", &c.id().to_string());
        self.child = Some(c);
        self.runs += 1;
        Ok(())
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = fs::remove_file(&self.path);
    }
}

#[derive(serde::Serialize, Default)]
pub struct LoadReport {
    /// Per durability mode: quiet, then with the writer.
    pub modes: Vec<(String, Dist, Dist)>,
    pub writer_runs: usize,
    /// The round trip's durable writes alone, no daemon, no agent: quiet,
    /// then with the writer (see `durable_floor`).
    pub floor: Option<(Dist, Dist)>,
}

/// What a round trip cannot go below on this filesystem: its three
/// durable hand-overs (the task by `send`, the answer by `reply`, the
/// routed copy by the daemon), each a small file created in `tmp/`,
/// fsynced, renamed into `new/` and the directory fsynced. In ms.
fn durable_floor(dir: &Path, i: usize) -> Res<f64> {
    let (tmp, new) = (dir.join("floor-tmp"), dir.join("floor-new"));
    for d in [&tmp, &new] {
        fs::create_dir_all(d).map_err(|e| e.to_string())?;
    }
    let body = [b'x'; 120];
    let t = Instant::now();
    for k in 0..3 {
        let name = format!("{i:08}-{k}.json");
        let mut f = fs::File::create(tmp.join(&name)).map_err(|e| e.to_string())?;
        f.write_all(&body).and_then(|_| f.sync_all()).map_err(|e| e.to_string())?;
        fs::rename(tmp.join(&name), new.join(&name)).map_err(|e| e.to_string())?;
        fs::File::open(&new).and_then(|d| d.sync_all()).map_err(|e| e.to_string())?;
    }
    Ok(t.elapsed().as_secs_f64() * 1e3)
}

/// A peer running the stamping agent that answers every task at once
/// (`agent --reply`: straight into its outbox).
fn add_replier(e: &mut Env, name: &str) -> Res<()> {
    let log = e.log(name).display().to_string();
    let work = e.work.display().to_string();
    let mut args: Vec<String> = ["peer", "add", name, "--runtime", "command", "--cwd", &work, "--activity", &log, "--ready-pattern", "^agent> ", "--"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    args.extend(e.agent_argv(name));
    args.push("--reply".into());
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    e.ok(&refs)?;
    e.track_peer(name);
    Ok(())
}

/// One `send --wait` as a script runs it: spawn to exit, in ms.
fn round_trip(e: &Env, peer: &str, i: usize) -> Res<f64> {
    let t = Instant::now();
    let out = e.cmd(&["send", peer, "--wait", "--timeout", "20", &format!("round trip {i}")]).output().map_err(|e| e.to_string())?;
    let dt = t.elapsed().as_secs_f64() * 1e3;
    if !out.status.success() {
        return Err(format!("send --wait: exit {:?}: {}", out.status.code(), String::from_utf8_lossy(&out.stderr).trim()));
    }
    Ok(dt)
}

/// Samples alternate between the two daemons (one per mode) so both meet
/// the same disk state; `sample(env, i)` takes one.
fn alternate(o: &Opts, envs: &[Env], n: usize, mut writer: Option<&mut Writer>, sample: &dyn Fn(&Env, usize) -> Res<f64>) -> Res<Vec<Vec<f64>>> {
    let mut out = vec![vec![]; envs.len()];
    for i in 0..n * envs.len() {
        check_stop()?;
        if let Some(w) = writer.as_deref_mut() {
            w.keep_running()?;
        }
        let k = i % envs.len();
        out[k].push(sample(&envs[k], i)?);
    }
    let _ = o;
    Ok(out)
}

fn two_daemons(o: &Opts, tag: &str, setup: &dyn Fn(&mut Env) -> Res<()>) -> Res<Vec<Env>> {
    let mut envs = vec![];
    for (i, (_, env)) in MODES.iter().enumerate() {
        let mut e = Env::new(o, &format!("{tag}{i}"))?;
        setup(&mut e)?;
        e.start_daemon(env, 1)?;
        envs.push(e);
    }
    Ok(envs)
}

fn report(quiet: Vec<Vec<f64>>, loaded: Vec<Vec<f64>>, w: &Writer) -> LoadReport {
    let modes = MODES.iter().zip(quiet.iter().zip(&loaded)).map(|((m, _), (q, l))| (m.to_string(), dist(q), dist(l))).collect();
    LoadReport { modes, writer_runs: w.runs, floor: None }
}

/// `send --wait` to a warm agent that answers at once.
pub fn section_roundtrip(o: &Opts, r: &mut Report) -> Res<()> {
    let envs = two_daemons(o, "rt", &|e| add_replier(e, "p"))?;
    let n = if o.quick { 40 } else { 200 };
    // Warm: the first task wakes the session.
    for e in &envs {
        for i in 0..5 {
            round_trip(e, "p", i)?;
        }
    }
    let quiet = alternate(o, &envs, n, None, &|e, i| round_trip(e, "p", i))?;
    let floor_quiet = (0..n).map(|i| durable_floor(&envs[0].dir, i)).collect::<Res<Vec<f64>>>()?;
    let mut w = Writer::start(o, &envs[0].dir)?;
    let loaded = alternate(o, &envs, n, Some(&mut w), &|e, i| round_trip(e, "p", i))?;
    let mut floor_loaded = vec![];
    for i in 0..n {
        w.keep_running()?;
        floor_loaded.push(durable_floor(&envs[0].dir, n + i)?);
    }
    let mut rep = report(quiet, loaded, &w);
    rep.floor = Some((dist(&floor_quiet), dist(&floor_loaded)));
    r.roundtrip = Some(rep);
    Ok(())
}

/// One outbox file renamed into `outbox/new/` until its copy is in the
/// inbox (polled every 100 µs), in ms.
fn route_one(e: &Env, i: usize) -> Res<f64> {
    let nm = format!("{:012}-one.json", i);
    let tmp = e.spool_dir("r", "outbox", "tmp").join(&nm);
    fs::write(&tmp, serde_json::to_vec(&json!({"to": "sink", "text": format!("reply {i}")})).map_err(|e| e.to_string())?).map_err(|e| e.to_string())?;
    let dest = e.root.join("inbox/sink/new").join(&nm);
    let t = Instant::now();
    fs::rename(&tmp, e.spool_dir("r", "outbox", "new").join(&nm)).map_err(|e| e.to_string())?;
    while !dest.exists() {
        check_stop()?;
        if t.elapsed() > Duration::from_secs(30) {
            return Err(format!("{nm} not routed in 30 s"));
        }
        std::thread::sleep(Duration::from_micros(100));
    }
    Ok(t.elapsed().as_secs_f64() * 1e3)
}

/// Per-message routing latency, one message at a time.
pub fn section_route_load(o: &Opts, r: &mut Report) -> Res<()> {
    let envs = two_daemons(o, "rl", &|e| {
        e.add_peer("r", &[])?;
        e.ok(&["stop", "r"]).map(drop)
    })?;
    let n = if o.quick { 50 } else { 300 };
    for e in &envs {
        route_one(e, 999_999)?;
    }
    let quiet = alternate(o, &envs, n, None, &route_one)?;
    let mut w = Writer::start(o, &envs[0].dir)?;
    let loaded = alternate(o, &envs, n, Some(&mut w), &|e, i| route_one(e, n * 2 + i))?;
    r.route_load = Some(report(quiet, loaded, &w));
    Ok(())
}

#[derive(serde::Serialize, Default)]
pub struct StormReport {
    pub peers: usize,
    pub delivered: usize,
    pub all_s: f64,
    pub p50_ms: f64,
    pub peak_fds: usize,
    pub peak_servers: usize,
    pub failures: usize,
    pub error: Option<String>,
}

fn fd_count(pid: u32) -> usize {
    fs::read_dir(format!("/proc/{pid}/fd")).map(|d| d.count()).unwrap_or(0)
}

/// Live tmux servers on this run's sockets: processes named `tmux: server`
/// whose command line names a socket under `sock_dir`.
fn servers_under(sock_dir: &str) -> usize {
    let Ok(rd) = fs::read_dir("/proc") else { return 0 };
    rd.filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_str().is_some_and(|n| n.bytes().all(|b| b.is_ascii_digit())))
        .filter(|e| fs::read_to_string(e.path().join("comm")).is_ok_and(|c| c.starts_with("tmux: server")))
        .filter(|e| fs::read(e.path().join("cmdline")).is_ok_and(|c| String::from_utf8_lossy(&c).contains(sock_dir)))
        .count()
}

/// N peers get one task each at once.
pub fn section_storm(o: &Opts, r: &mut Report) -> Res<()> {
    let n = if o.quick { 100 } else { 500 };
    let mut e = Env::new(o, "storm")?;
    e.add_peer("w0", &[])?;
    let mut names = vec!["w0".to_string()];
    names.extend(e.clone_peers("w0", "x", n - 1)?);
    let pid = e.start_daemon(&[], n)?;
    let sock_dir = e.socket("w0").parent().map(|p| p.display().to_string()).unwrap_or_default();
    let stop = Arc::new(AtomicBool::new(false));
    let peaks = {
        let (stop, sock_dir) = (stop.clone(), sock_dir.clone());
        std::thread::spawn(move || {
            let (mut fds, mut servers) = (0, 0);
            while !stop.load(Ordering::Relaxed) {
                fds = fds.max(fd_count(pid));
                servers = servers.max(servers_under(&sock_dir));
                std::thread::sleep(Duration::from_millis(50));
            }
            (fds, servers)
        })
    };
    let mut t0 = 0;
    for (i, p) in names.iter().enumerate() {
        let t = e.put(p, "spool", "000000000001-storm.json", &task("storm"))?;
        if i == 0 {
            t0 = t;
        }
    }
    let logs: Vec<PathBuf> = names.iter().map(|p| e.log(p)).collect();
    let delivered = |l: &PathBuf| fs::read_to_string(l).ok().and_then(|s| s.lines().filter_map(|x| serde_json::from_str::<Value>(x).ok()).find(|v| v.get("text").is_some()));
    let res = wait_until("all storm tasks delivered", Duration::from_secs(120 + n as u64 / 2), || {
        std::thread::sleep(Duration::from_millis(200));
        e.delivery_log().lines().filter(|l| l.contains("event=deliver ") && l.contains("outcome=delivered")).count() >= n
    });
    stop.store(true, Ordering::Relaxed);
    let (peak_fds, peak_servers) = peaks.join().unwrap_or((0, 0));
    let stamps: Vec<u64> = logs.iter().filter_map(delivered).filter_map(|v| v["ns"].as_u64()).collect();
    let lat: Vec<f64> = stamps.iter().map(|s| ms(s.saturating_sub(t0))).collect();
    let d = dist(&lat);
    let bad = ["outcome=wake-failed", "outcome=unconfirmed", "outcome=failed", "event=wake-failed", "event=death"];
    let failures = bad.iter().map(|b| e.delivery_log().matches(b).count() + e.lifecycle().matches(b).count()).sum();
    r.storm = Some(StormReport { peers: n, delivered: stamps.len(), all_s: d.max / 1e3, p50_ms: d.p50, peak_fds, peak_servers, failures, error: res.err() });
    Ok(())
}

/// The table rows of these sections.
pub fn rows(r: &Report, t: &mut String) {
    let side = |what: &str, x: &LoadReport, target: &dyn Fn(&Dist, &Dist) -> String, t: &mut String| {
        for (m, q, l) in &x.modes {
            t.push_str(&format!(
                "| {what}, {m} | quiet p50 {:.2} ms, p99 {:.2} ms; with a 4 GB writer p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms ({} samples each) | {} |\n",
                q.p50, q.p99, l.p50, l.p99, l.max, q.n, target(q, l)
            ));
        }
    };
    if let Some(x) = &r.roundtrip {
        side("round trip `send --wait` to a warm agent that answers at once", x, &|q, l| format!("p50 ≤ 10 quiet: {}; p99 ≤ 60 with writer: {}", mark(q.p50 <= 10.0), mark(l.p99 <= 60.0)), t);
        if let Some((q, l)) = &x.floor {
            t.push_str(&format!(
                "| the round trip's 3 durable hand-overs alone (create, fsync, rename, fsync dir; no daemon, no agent) | quiet p50 {:.2} ms, p99 {:.2} ms; with the writer p50 {:.2} ms, p99 {:.2} ms | the floor |\n",
                q.p50, q.p99, l.p50, l.p99
            ));
        }
    }
    if let Some(x) = &r.route_load {
        side("routing one message (outbox/new → inbox)", x, &|_, l| format!("p99 ≤ 50 with writer: {}", mark(l.p99 <= 50.0)), t);
    }
    if let Some(s) = &r.storm {
        t.push_str(&format!(
            "| wake storm: {} peers, one task each at once | {} delivered, all in {:.2} s (p50 {:.0} ms); peak daemon fds {}; peak tmux servers {}; failures {}{} | failures 0: {} |\n",
            s.peers, s.delivered, s.all_s, s.p50_ms, s.peak_fds, s.peak_servers, s.failures,
            s.error.as_ref().map(|e| format!(" ({e})")).unwrap_or_default(),
            mark(s.failures == 0 && s.delivered == s.peers)
        ));
    }
}
