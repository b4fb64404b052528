//! Whole-system benchmark driver (run it through `bench/run.sh`). It drives
//! the release binary against real tmux servers on private sockets, with
//! the built-in agent (`peerspool agent --stamp`) as the fake peer: the
//! agent stamps CLOCK_REALTIME nanoseconds when a message arrives, which
//! compares directly with the writer's clock taken just before rename(2).
//!
//! Everything it starts (daemons, tmux servers, the baseline's process
//! group) is listed in the cleanup file as it is started and stopped by id
//! on exit, on SIGINT/SIGTERM, or by run.sh's trap if this process dies.

use peerspool::demo::agent::{now_ns, parse_header};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::DirBuilderExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[path = "sysbench_load.rs"]
mod load;

type Res<T> = Result<T, String>;
/// Per case: label, deliveries, mangled.
type Cases = Vec<(String, usize, usize)>;

static STOP: std::sync::OnceLock<Arc<AtomicBool>> = std::sync::OnceLock::new();

fn stopping() -> bool {
    STOP.get().is_some_and(|s| s.load(Ordering::Relaxed))
}

fn check_stop() -> Res<()> {
    if stopping() {
        Err("interrupted".into())
    } else {
        Ok(())
    }
}

#[derive(Debug, Clone)]
struct Opts {
    bin: PathBuf,
    out: PathBuf,
    cleanup: PathBuf,
    baseline_script: PathBuf,
    quick: bool,
    only: Vec<String>,
    latency_n: usize,
    burst_n: usize,
    route_n: usize,
    cold_n: usize,
    idle_secs: u64,
    idle_peers: usize,
    live_peers: usize,
    scale: Vec<usize>,
    scale_k: usize,
}

impl Opts {
    fn parse() -> Res<Opts> {
        let mut o = Opts {
            bin: "target/release/peerspool".into(),
            out: "bench/results".into(),
            cleanup: std::env::temp_dir().join(format!("sysbench-{}.cleanup", std::process::id())),
            baseline_script: "bench/baseline.sh".into(),
            quick: false,
            only: vec![],
            latency_n: 1000,
            burst_n: 10_000,
            route_n: 10_000,
            cold_n: 10,
            idle_secs: 60,
            idle_peers: 500,
            live_peers: 50,
            scale: vec![10, 1000, 20_000, 100_000],
            scale_k: 200,
        };
        let mut it = std::env::args().skip(1);
        while let Some(a) = it.next() {
            let mut val = || it.next().ok_or(format!("{a} needs a value"));
            match a.as_str() {
                "--bin" => o.bin = val()?.into(),
                "--out" => o.out = val()?.into(),
                "--cleanup-list" => o.cleanup = val()?.into(),
                "--baseline" => o.baseline_script = val()?.into(),
                "--only" => o.only = val()?.split(',').map(str::to_string).collect(),
                "--quick" => {
                    o.quick = true;
                    o.latency_n = 200;
                    o.burst_n = 1000;
                    o.route_n = 2000;
                    o.cold_n = 3;
                    o.idle_secs = 10;
                    o.live_peers = 20;
                    o.scale = vec![10, 1000, 20_000, 100_000];
                    o.scale_k = 50;
                }
                "--latency-n" => o.latency_n = val()?.parse().map_err(|e| format!("{a}: {e}"))?,
                "--burst-n" => o.burst_n = val()?.parse().map_err(|e| format!("{a}: {e}"))?,
                "--idle-secs" => o.idle_secs = val()?.parse().map_err(|e| format!("{a}: {e}"))?,
                "--scale" => o.scale = val()?.split(',').map(|v| v.parse().map_err(|e| format!("{a}: {e}"))).collect::<Res<_>>()?,
                other => return Err(format!("unknown argument {other}")),
            }
        }
        o.bin = fs::canonicalize(&o.bin).map_err(|e| format!("{}: {e}", o.bin.display()))?;
        o.baseline_script = fs::canonicalize(&o.baseline_script).map_err(|e| format!("{}: {e}", o.baseline_script.display()))?;
        Ok(o)
    }

    fn wants(&self, section: &str) -> bool {
        self.only.is_empty() || self.only.iter().any(|s| s == section)
    }
}

/// Records what must be stopped if this process dies without cleaning up.
fn note_cleanup(o: &Opts, kind: &str, val: &str) {
    if let Ok(mut f) = OpenOptions::new().create(true).append(true).open(&o.cleanup) {
        let _ = writeln!(f, "{kind} {val}");
    }
}

fn tmux(sock: &Path) -> Command {
    let mut c = Command::new("tmux");
    c.arg("-S").arg(sock).env_remove("TMUX").stdin(Stdio::null());
    c
}

fn kill_server(sock: &Path) {
    let _ = tmux(sock).arg("kill-server").stdout(Stdio::null()).stderr(Stdio::null()).status();
}

fn capture(sock: &Path, target: &str) -> String {
    tmux(sock)
        .args(["capture-pane", "-p", "-t", target])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default()
}

fn wait_until(what: &str, limit: Duration, mut cond: impl FnMut() -> bool) -> Res<()> {
    let start = Instant::now();
    while !cond() {
        check_stop()?;
        if start.elapsed() > limit {
            return Err(format!("timed out after {limit:?} waiting for {what}"));
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    Ok(())
}

/// Follows a JSON-lines file, returning complete new records.
struct Tail {
    path: PathBuf,
    pos: u64,
    partial: Vec<u8>,
}

impl Tail {
    fn new(path: PathBuf) -> Tail {
        let pos = fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        Tail { path, pos, partial: vec![] }
    }

    fn poll(&mut self) -> Vec<Value> {
        let Ok(mut f) = File::open(&self.path) else { return vec![] };
        if f.seek(SeekFrom::Start(self.pos)).is_err() {
            return vec![];
        }
        let mut buf = vec![];
        let _ = f.read_to_end(&mut buf);
        self.pos += buf.len() as u64;
        self.partial.extend_from_slice(&buf);
        let mut out = vec![];
        while let Some(i) = self.partial.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.partial.drain(..=i).collect();
            if let Ok(v) = serde_json::from_slice::<Value>(&line) {
                out.push(v);
            }
        }
        out
    }

    /// Waits for the next message record (start records are skipped).
    fn next(&mut self, pending: &mut std::collections::VecDeque<Value>, limit: Duration) -> Res<Value> {
        let start = Instant::now();
        loop {
            while let Some(v) = pending.pop_front() {
                if v.get("text").is_some() {
                    return Ok(v);
                }
            }
            pending.extend(self.poll());
            if pending.is_empty() {
                check_stop()?;
                if start.elapsed() > limit {
                    return Err(format!("no message in {} after {limit:?}", self.path.display()));
                }
                std::thread::sleep(Duration::from_micros(500));
            }
        }
    }
}

struct Env {
    o: Opts,
    dir: PathBuf,
    root: PathBuf,
    work: PathBuf,
    daemon: Option<Child>,
    sockets: Vec<PathBuf>,
    groups: Vec<Child>,
}

impl Env {
    fn new(o: &Opts, tag: &str) -> Res<Env> {
        Env::new_in(o, tag, std::env::temp_dir())
    }

    fn new_in(o: &Opts, tag: &str, base: PathBuf) -> Res<Env> {
        let dir = base.join(format!("psb-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let root = dir.join("root");
        let work = dir.join("work");
        fs::DirBuilder::new().recursive(true).mode(0o700).create(&work).map_err(|e| e.to_string())?;
        note_cleanup(o, "dir", &dir.display().to_string());
        Ok(Env { o: o.clone(), dir, root, work, daemon: None, sockets: vec![], groups: vec![] })
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(&self.o.bin);
        c.args(args).env("PEERSPOOL_HOME", &self.root).env_remove("PEERSPOOL_PEER").env_remove("TMUX").stdin(Stdio::null());
        c
    }

    fn ok(&self, args: &[&str]) -> Res<String> {
        let out = self.cmd(args).output().map_err(|e| e.to_string())?;
        if !out.status.success() {
            return Err(format!("peerspool {args:?}: {}", String::from_utf8_lossy(&out.stderr).trim()));
        }
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    }

    fn log(&self, peer: &str) -> PathBuf {
        self.work.join(format!("{peer}.log"))
    }

    fn socket(&self, peer: &str) -> PathBuf {
        peerspool::root::Root::new(&self.root).tmux_socket(peer)
    }

    fn agent_argv(&self, peer: &str) -> Vec<String> {
        vec![self.o.bin.display().to_string(), "agent".into(), "--stamp".into(), "--log".into(), self.log(peer).display().to_string()]
    }

    fn add_peer(&mut self, name: &str, extra: &[&str]) -> Res<()> {
        let log = self.log(name).display().to_string();
        let work = self.work.display().to_string();
        let mut args: Vec<String> = ["peer", "add", name, "--runtime", "command", "--cwd", &work, "--activity", &log, "--ready-pattern", "^agent> "]
            .iter()
            .map(|s| s.to_string())
            .collect();
        args.extend(extra.iter().map(|s| s.to_string()));
        args.push("--".into());
        args.extend(self.agent_argv(name));
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        self.ok(&refs)?;
        self.track_peer(name);
        Ok(())
    }

    fn track_peer(&mut self, name: &str) {
        let s = self.socket(name);
        note_cleanup(&self.o, "sock", &s.display().to_string());
        self.sockets.push(s);
    }

    /// Registers `n` more peers by copying a CLI-made profile (fast).
    fn clone_peers(&mut self, from: &str, prefix: &str, n: usize) -> Res<Vec<String>> {
        let profile = fs::read_to_string(self.root.join("peers").join(from).join("peer.json")).map_err(|e| e.to_string())?;
        let mut names = vec![];
        for i in 0..n {
            let name = format!("{prefix}{i:04}");
            let dir = self.root.join("peers").join(&name);
            fs::DirBuilder::new().mode(0o700).create(&dir).map_err(|e| e.to_string())?;
            let p = profile.replace(&format!("{from}.log"), &format!("{name}.log"));
            fs::write(dir.join("peer.json.tmp"), p).map_err(|e| e.to_string())?;
            fs::rename(dir.join("peer.json.tmp"), dir.join("peer.json")).map_err(|e| e.to_string())?;
            self.track_peer(&name);
            names.push(name);
        }
        Ok(names)
    }

    fn lifecycle(&self) -> String {
        fs::read_to_string(self.root.join("log/lifecycle.log")).unwrap_or_default()
    }

    fn delivery_log(&self) -> String {
        fs::read_to_string(self.root.join("log/delivery.log")).unwrap_or_default()
    }

    fn start_daemon(&mut self, env: &[(&str, &str)], peers: usize) -> Res<u32> {
        let err = File::create(self.dir.join("daemon.err")).map_err(|e| e.to_string())?;
        let mut c = self.cmd(&["daemon"]);
        c.stdout(Stdio::null()).stderr(err);
        for (k, v) in env {
            c.env(k, v);
        }
        let child = c.spawn().map_err(|e| e.to_string())?;
        let pid = child.id();
        note_cleanup(&self.o, "pid", &pid.to_string());
        self.daemon = Some(child);
        // Ready: watches set and the first pass done. A task dropped before
        // that is found by listing and held for the settle window (it may
        // be a writer still writing), which would be timed as a slow wake.
        wait_until("daemon start", Duration::from_secs(60), || {
            let l = self.lifecycle();
            l.contains("event=daemon-start")
                && l.matches("event=registered").count() >= peers
                && fs::read_to_string(self.dir.join("daemon.err")).is_ok_and(|e| e.contains("daemon ready"))
        })?;
        Ok(pid)
    }

    fn stop_daemon(&mut self) {
        if let Some(mut c) = self.daemon.take() {
            // SAFETY: signals the daemon this driver spawned.
            unsafe { libc::kill(c.id() as i32, libc::SIGTERM) };
            let t = Instant::now();
            while t.elapsed() < Duration::from_secs(15) {
                if let Ok(Some(_)) = c.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    fn spool_dir(&self, peer: &str, q: &str, sub: &str) -> PathBuf {
        self.root.join("peers").join(peer).join(q).join(sub)
    }

    /// Writes a task into tmp/, then renames it into new/; returns the
    /// CLOCK_REALTIME ns taken just before the rename.
    fn put(&self, peer: &str, q: &str, name: &str, body: &Value) -> Res<u64> {
        let tmp = self.spool_dir(peer, q, "tmp").join(name);
        fs::write(&tmp, serde_json::to_vec(body).map_err(|e| e.to_string())?).map_err(|e| format!("{}: {e}", tmp.display()))?;
        let t0 = now_ns();
        fs::rename(&tmp, self.spool_dir(peer, q, "new").join(name)).map_err(|e| e.to_string())?;
        Ok(t0)
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        self.stop_daemon();
        for g in &mut self.groups {
            // SAFETY: signals the process group this driver created.
            unsafe { libc::kill(-(g.id() as i32), libc::SIGTERM) };
            let _ = g.wait();
        }
        for s in &self.sockets {
            if s.exists() {
                kill_server(s);
                let _ = fs::remove_file(s);
            }
        }
        // Removed at the end of the run: ext4 makes file creation slow for
        // a while after mass deletion near it, which would bill one
        // section's cleanup to the next section's figures.
        LEFT_DIRS.lock().unwrap_or_else(|p| p.into_inner()).push(self.dir.clone());
    }
}

static LEFT_DIRS: std::sync::Mutex<Vec<PathBuf>> = std::sync::Mutex::new(Vec::new());

/// Files/s this directory's filesystem creates, write and close included:
/// the floor under any per-file routing rate measured beside it.
fn create_rate(dir: &Path, n: usize) -> Res<f64> {
    fs::create_dir_all(dir).map_err(|e| e.to_string())?;
    let t = Instant::now();
    for i in 0..n {
        let mut f = OpenOptions::new().write(true).create_new(true).open(dir.join(format!("{i:08}"))).map_err(|e| e.to_string())?;
        f.write_all(&[b'x'; 100]).map_err(|e| e.to_string())?;
    }
    Ok(n as f64 / t.elapsed().as_secs_f64().max(1e-9))
}

fn task(text: &str) -> Value {
    json!({"v": 1, "from": "bench", "text": text})
}

fn pct(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i]
}

#[derive(Default, Clone, serde::Serialize)]
struct Dist {
    n: usize,
    p50: f64,
    p99: f64,
    max: f64,
    mean: f64,
}

fn dist(v: &[f64]) -> Dist {
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
    let mean = if s.is_empty() { f64::NAN } else { s.iter().sum::<f64>() / s.len() as f64 };
    Dist { n: s.len(), p50: pct(&s, 0.5), p99: pct(&s, 0.99), max: s.last().copied().unwrap_or(f64::NAN), mean }
}

fn ms(ns: u64) -> f64 {
    ns as f64 / 1e6
}

fn stem(name: &str) -> &str {
    name.trim_end_matches(".json")
}

/// The correctness cases, each the kind of text a naive `send-keys` loop mangles.
fn cases() -> Vec<(&'static str, String)> {
    let mut big = String::new();
    let mut i = 0;
    while big.len() < 65536 {
        big.push_str(&format!("word{i} "));
        i += 1;
    }
    big.truncate(65535);
    big.push('Z');
    vec![
        ("dash-leading", "-n looks like a flag; --help too".to_string()),
        ("multi-line", "first line\nsecond line\n  indented third".to_string()),
        ("quotes", r#"He said "hi" and 'bye'; $(echo pwned) `id` $HOME \ end"#.to_string()),
        ("trailing-semicolon", "run this then stop;".to_string()),
        ("64KiB", big),
    ]
}

// ---------------------------------------------------------------- latency

struct Live {
    lat_ms: Vec<f64>,
    paste_ms: Vec<f64>,
    mangled: usize,
}

/// Sequential single tasks to a warm peer; each is sent once the previous
/// one was seen by the agent.
fn peerspool_latency(e: &mut Env, peer: &str, n: usize, warm: usize) -> Res<Live> {
    let mut tail = Tail::new(e.log(peer));
    let mut pending = Default::default();
    let mut out = Live { lat_ms: vec![], paste_ms: vec![], mangled: 0 };
    for i in 0..warm + n {
        check_stop()?;
        let name = format!("{:012}-lat.json", i);
        let text = format!("latency probe {i}: the quick brown fox");
        let t0 = e.put(peer, "spool", &name, &task(&text))?;
        let limit = if i == 0 { Duration::from_secs(60) } else { Duration::from_secs(15) };
        let v = tail.next(&mut pending, limit)?;
        let got = v["text"].as_str().unwrap_or("");
        let ok = parse_header(got).is_some_and(|(h, b)| h.id == stem(&name) && b == text);
        if i >= warm {
            out.lat_ms.push(ms(v["ns"].as_u64().unwrap_or(0).saturating_sub(t0)));
            out.paste_ms.push(ms(v["paste_end_ns"].as_u64().unwrap_or(0).saturating_sub(t0)));
            if !ok {
                out.mangled += 1;
            }
        }
    }
    Ok(out)
}

/// Runs each case `reps` times, each followed by a sentinel; counts
/// mangled deliveries (anything but exactly one intact message).
fn correctness(mut send: impl FnMut(&str, &str) -> Res<()>, tail: &mut Tail, body_of: &dyn Fn(&str) -> String, reps: usize) -> Res<Cases> {
    let mut pending = Default::default();
    let mut res = vec![];
    let mut k = 0;
    for (label, text) in cases() {
        let mut mangled = 0;
        for r in 0..reps {
            check_stop()?;
            send(&format!("{:012}-case-{label}-{r}.json", k), &text)?;
            k += 1;
            let sentinel = format!("sentinel {k}");
            send(&format!("{:012}-sentinel.json", k), &sentinel)?;
            k += 1;
            let mut got = vec![];
            loop {
                match tail.next(&mut pending, Duration::from_secs(10)) {
                    Ok(v) => {
                        let b = body_of(v["text"].as_str().unwrap_or(""));
                        if b == sentinel {
                            break;
                        }
                        if let Some(prefix) = b.strip_suffix(&sentinel) {
                            got.push(prefix.to_string());
                            break;
                        }
                        got.push(b);
                    }
                    Err(_) => {
                        got.push("<sentinel lost>".into());
                        break;
                    }
                }
            }
            if !(got.len() == 1 && got[0] == text) {
                mangled += 1;
            }
        }
        res.push((label.to_string(), reps, mangled));
    }
    Ok(res)
}

fn section_latency(o: &Opts, r: &mut Report) -> Res<()> {
    let mut e = Env::new(o, "lat")?;
    e.add_peer("p", &[])?;
    e.start_daemon(&[], 1)?;
    let live = peerspool_latency(&mut e, "p", o.latency_n, 20)?;
    let mut tail = Tail::new(e.log("p"));
    let reps = if o.quick { 1 } else { 3 };
    let corr = correctness(
        |name, text| e.put("p", "spool", name, &task(text)).map(|_| ()),
        &mut tail,
        &|t: &str| parse_header(t).map(|(_, b)| b).unwrap_or_else(|| format!("<no header>{t}")),
        reps,
    )?;
    // The daemon's own view of each delivery (paste confirm / total).
    let mut paste_ms = vec![];
    let mut confirm_ms = vec![];
    for l in e.delivery_log().lines().filter(|l| l.contains("outcome=delivered")) {
        for f in l.split(' ') {
            if let Some(v) = f.strip_prefix("paste_ms=").and_then(|v| v.parse::<f64>().ok()) {
                paste_ms.push(v);
            }
            if let Some(v) = f.strip_prefix("confirm_ms=").and_then(|v| v.parse::<f64>().ok()) {
                confirm_ms.push(v);
            }
        }
    }
    drop(e);
    let (base, base_corr) = baseline(o, reps)?;
    write_samples(&o.out.join("latency-peerspool.txt"), &live.lat_ms)?;
    write_samples(&o.out.join("latency-baseline.txt"), &base.lat_ms)?;
    r.latency = Some(LatencyReport {
        peerspool: dist(&live.lat_ms),
        peerspool_paste_visible: dist(&live.paste_ms),
        daemon_paste_confirm_ms: dist(&paste_ms),
        daemon_confirm_ms: dist(&confirm_ms),
        peerspool_mangled: live.mangled,
        baseline: dist(&base.lat_ms),
        baseline_mangled: base.mangled,
        cases_peerspool: corr,
        cases_baseline: base_corr,
    });
    Ok(())
}

fn write_samples(p: &Path, v: &[f64]) -> Res<()> {
    let s: String = v.iter().map(|x| format!("{x:.4}\n")).collect();
    fs::write(p, s).map_err(|e| e.to_string())
}

/// The naive loop (bench/baseline.sh: inotifywait + jq + tmux send-keys)
/// typing into the same agent on its own tmux server.
fn baseline(o: &Opts, reps: usize) -> Res<(Live, Cases)> {
    let mut e = Env::new(o, "base")?;
    let sock = e.dir.join("base.sock");
    note_cleanup(o, "sock", &sock.display().to_string());
    e.sockets.push(sock.clone());
    let spool = e.work.join("spool");
    for d in ["tmp", "new", "done"] {
        fs::create_dir_all(spool.join(d)).map_err(|e| e.to_string())?;
    }
    let mut argv = vec!["-f".to_string(), "/dev/null".into(), "new-session".into(), "-d".into(), "-s".into(), "base".into(), "-x".into(), "220".into(), "-y".into(), "50".into(), "--".into()];
    argv.extend(e.agent_argv("base"));
    let st = tmux(&sock).args(&argv).status().map_err(|e| e.to_string())?;
    if !st.success() {
        return Err("baseline: tmux new-session failed".into());
    }
    wait_until("baseline agent prompt", Duration::from_secs(10), || capture(&sock, "base:0.0").contains("\nagent>"))
        .map_err(|e| format!("{e}: screen {:?}", capture(&sock, "base:0.0")))?;
    let mut c = Command::new("bash");
    c.arg(&o.baseline_script).arg(spool.join("new")).arg(&sock).arg("base:0.0");
    c.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::piped()).process_group(0);
    let mut child = c.spawn().map_err(|e| format!("baseline: {e}"))?;
    note_cleanup(o, "pgid", &child.id().to_string());
    // inotifywait says when its watch is in place.
    let stderr = child.stderr.take().ok_or("baseline: no stderr")?;
    e.groups.push(child);
    let mut lines = BufReader::new(stderr).lines();
    loop {
        match lines.next() {
            Some(Ok(l)) if l.contains("Watches established") => break,
            Some(Ok(_)) => continue,
            _ => return Err("baseline: inotifywait did not start (is inotify-tools installed?)".into()),
        }
    }
    std::thread::spawn(move || for _ in lines {});
    let put = |name: &str, text: &str| -> Res<u64> {
        let tmp = spool.join("tmp").join(name);
        fs::write(&tmp, serde_json::to_vec(&task(text)).map_err(|e| e.to_string())?).map_err(|e| e.to_string())?;
        let t0 = now_ns();
        fs::rename(&tmp, spool.join("new").join(name)).map_err(|e| e.to_string())?;
        Ok(t0)
    };
    let mut tail = Tail::new(e.log("base"));
    let mut pending = Default::default();
    let mut live = Live { lat_ms: vec![], paste_ms: vec![], mangled: 0 };
    let warm = 20;
    for i in 0..warm + o.latency_n {
        check_stop()?;
        let text = format!("latency probe {i}: the quick brown fox");
        let t0 = put(&format!("{:012}-lat.json", i), &text)?;
        let v = tail.next(&mut pending, Duration::from_secs(15))?;
        if i >= warm {
            live.lat_ms.push(ms(v["ns"].as_u64().unwrap_or(0).saturating_sub(t0)));
            if v["text"].as_str() != Some(text.as_str()) {
                live.mangled += 1;
            }
        }
    }
    let corr = correctness(|n, t| put(n, t).map(|_| ()), &mut tail, &|t: &str| t.to_string(), reps)?;
    Ok((live, corr))
}

// ------------------------------------------------------------------ burst

fn section_burst(o: &Opts, r: &mut Report) -> Res<()> {
    let mut e = Env::new(o, "burst")?;
    e.add_peer("b", &[])?;
    e.start_daemon(&[], 1)?;
    let mut tail = Tail::new(e.log("b"));
    let mut pending = Default::default();
    e.put("b", "spool", "000000000000-warm.json", &task("warm up"))?;
    tail.next(&mut pending, Duration::from_secs(60))?;
    let n = o.burst_n;
    let names: Vec<String> = (0..n).map(|i| format!("{:012}-burst.json", i + 1)).collect();
    for nm in &names {
        let tmp = e.spool_dir("b", "spool", "tmp").join(nm);
        fs::write(&tmp, serde_json::to_vec(&task(&format!("burst {nm}"))).map_err(|e| e.to_string())?).map_err(|e| e.to_string())?;
    }
    let t0 = now_ns();
    for nm in &names {
        fs::rename(e.spool_dir("b", "spool", "tmp").join(nm), e.spool_dir("b", "spool", "new").join(nm)).map_err(|e| e.to_string())?;
    }
    let t_written = now_ns();
    let mut got: Vec<(String, u64)> = vec![];
    let limit = Duration::from_secs(60 + n as u64 / 10);
    let start = Instant::now();
    while got.len() < n {
        check_stop()?;
        if start.elapsed() > limit {
            break;
        }
        match tail.next(&mut pending, Duration::from_secs(20)) {
            Ok(v) => {
                let id = v["text"].as_str().and_then(parse_header).map(|(h, _)| h.id).unwrap_or_default();
                got.push((id, v["ns"].as_u64().unwrap_or(0)));
            }
            Err(_) => {
                check_stop()?;
                break;
            }
        }
    }
    let want: Vec<&str> = names.iter().map(|s| stem(s)).collect();
    let mut counts: HashMap<&str, usize> = HashMap::new();
    for (id, _) in &got {
        *counts.entry(id.as_str()).or_default() += 1;
    }
    let missing = want.iter().filter(|w| !counts.contains_key(*w)).count();
    let dup = counts.values().filter(|c| **c > 1).count();
    let in_order = got.iter().map(|(i, _)| i.as_str()).eq(want.iter().copied());
    let last = got.last().map(|g| g.1).unwrap_or(t0);
    let first = got.first().map(|g| g.1).unwrap_or(t0);
    let total_s = (last.saturating_sub(t0)) as f64 / 1e9;
    let drain_s = (last.saturating_sub(first)) as f64 / 1e9;
    r.burst = Some(BurstReport {
        n,
        delivered: got.len(),
        missing,
        duplicated: dup,
        in_order,
        write_s: (t_written - t0) as f64 / 1e9,
        total_s,
        tasks_per_s: got.len() as f64 / total_s.max(1e-9),
        drain_tasks_per_s: (got.len().saturating_sub(1)) as f64 / drain_s.max(1e-9),
    });
    drop(e);

    let syncfs = load::MODES[1].1;
    r.route = Some(route_run(o, std::env::temp_dir(), "route", &[])?);
    r.route_syncfs = Some(route_run(o, std::env::temp_dir(), "route-sfs", syncfs)?);
    // The daemon's own ceiling: the same on tmpfs, where creating a file
    // costs next to nothing.
    let shm = Path::new("/dev/shm");
    if shm.is_dir() && std::env::temp_dir() != shm {
        r.route_tmpfs = Some(route_run(o, shm.to_path_buf(), "route-shm", &[])?);
        r.route_tmpfs_syncfs = Some(route_run(o, shm.to_path_buf(), "route-shm-sfs", syncfs)?);
    }
    Ok(())
}

/// Outbox routing: N files renamed into one peer's outbox/new, all
/// addressed to a script inbox, with the temporary root under `base`.
fn route_run(o: &Opts, base: PathBuf, tag: &str, env: &[(&str, &str)]) -> Res<RouteReport> {
    let mut e = Env::new_in(o, tag, base.clone())?;
    e.add_peer("r", &[])?;
    e.start_daemon(env, 1)?;
    let n = o.route_n;
    let names: Vec<String> = (0..n).map(|i| format!("{:012}-out.json", i)).collect();
    for nm in &names {
        let tmp = e.spool_dir("r", "outbox", "tmp").join(nm);
        fs::write(&tmp, serde_json::to_vec(&json!({"to": "sink", "text": format!("reply {nm}")})).map_err(|e| e.to_string())?).map_err(|e| e.to_string())?;
    }
    let inbox = e.root.join("inbox/sink/new");
    // Beside the daemon's own staging directory: ext4 places a directory's
    // new files near it, so this is the allocator state the daemon meets.
    let create_per_s = create_rate(&e.root.join("inbox/sink/probe"), n)?;
    let t0 = Instant::now();
    for nm in &names {
        fs::rename(e.spool_dir("r", "outbox", "tmp").join(nm), e.spool_dir("r", "outbox", "new").join(nm)).map_err(|e| e.to_string())?;
    }
    let count = || fs::read_dir(&inbox).map(|d| d.count()).unwrap_or(0);
    let res = wait_until("outbox routed", Duration::from_secs(60 + n as u64 / 50), || count() >= n);
    let secs = t0.elapsed().as_secs_f64();
    let routed = count();
    Ok(RouteReport { n, routed, total_s: secs, files_per_s: routed as f64 / secs, create_per_s, dir: base.display().to_string(), error: res.err() })
}

// -------------------------------------------------------------- cold wake

fn section_cold(o: &Opts, r: &mut Report) -> Res<()> {
    // The program's own start: tmux new-session until its prompt shows,
    // measured without the daemon.
    let mut standalone = vec![];
    {
        let e = Env::new(o, "boot")?;
        for i in 0..o.cold_n.max(3) {
            check_stop()?;
            let sock = e.dir.join(format!("b{i}.sock"));
            note_cleanup(o, "sock", &sock.display().to_string());
            let mut argv = vec!["-f".to_string(), "/dev/null".into(), "new-session".into(), "-d".into(), "-s".into(), "s".into(), "-x".into(), "220".into(), "-y".into(), "50".into(), "--".into()];
            argv.extend(e.agent_argv(&format!("b{i}")));
            let t0 = Instant::now();
            let ok = tmux(&sock).args(&argv).status().map(|s| s.success()).unwrap_or(false);
            let res = wait_until("prompt", Duration::from_secs(10), || capture(&sock, "s:0.0").contains("\nagent>"));
            let dt = t0.elapsed().as_secs_f64() * 1e3;
            kill_server(&sock);
            if ok && res.is_ok() {
                standalone.push(dt);
            }
        }
    }
    let mut e = Env::new(o, "cold")?;
    e.add_peer("c", &["--idle-secs", "0.3"])?;
    e.start_daemon(&[], 1)?;
    let sock = e.socket("c");
    let alive = |s: &Path| {
        s.exists()
            && tmux(s).args(["has-session"]).stdout(Stdio::null()).stderr(Stdio::null()).status().map(|s| s.success()).unwrap_or(false)
    };
    let mut tail = Tail::new(e.log("c"));
    let mut total = vec![];
    let mut to_start = vec![];
    let mut start_to_delivered = vec![];
    for i in 0..o.cold_n {
        check_stop()?;
        wait_until("session reaped", Duration::from_secs(20), || !alive(&sock))?;
        let name = format!("{:012}-cold.json", i);
        let t0 = e.put("c", "spool", &name, &task(&format!("cold {i}")))?;
        let mut start_ns = None;
        let limit = Instant::now() + Duration::from_secs(30);
        let v = loop {
            check_stop()?;
            if Instant::now() > limit {
                return Err("cold wake: no delivery in 30 s".into());
            }
            let mut found = None;
            for v in tail.poll() {
                if v["event"] == "start" {
                    start_ns = v["ns"].as_u64();
                } else if v.get("text").is_some() {
                    found = Some(v);
                }
            }
            if let Some(v) = found {
                break v;
            }
            std::thread::sleep(Duration::from_millis(1));
        };
        let done = v["ns"].as_u64().unwrap_or(0);
        total.push(ms(done.saturating_sub(t0)));
        if let Some(s) = start_ns {
            to_start.push(ms(s.saturating_sub(t0)));
            start_to_delivered.push(ms(done.saturating_sub(s)));
        }
    }
    let boot_ms: Vec<f64> = e.lifecycle().lines().filter(|l| l.contains("event=wake")).filter_map(|l| l.split(' ').find_map(|f| f.strip_prefix("boot_ms=")).and_then(|v| v.parse().ok())).collect();
    let t = dist(&total);
    let s = dist(&standalone);
    r.cold = Some(ColdReport {
        overhead_p50_ms: t.p50 - s.p50,
        total: t,
        standalone_boot: s,
        rename_to_program_start: dist(&to_start),
        program_start_to_delivered: dist(&start_to_delivered),
        daemon_boot_ms: dist(&boot_ms),
    });
    Ok(())
}

// ------------------------------------------------------------------- idle

#[derive(Clone, Copy, Default)]
struct Cpu {
    own_ticks: u64,
    child_ticks: u64,
}

fn proc_cpu(pid: u32) -> Option<Cpu> {
    let s = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the parenthesised comm: state is field 3; utime is 14.
    let rest = &s[s.rfind(')')? + 2..];
    let f: Vec<u64> = rest.split(' ').map(|x| x.parse().unwrap_or(0)).collect();
    Some(Cpu { own_ticks: f.get(11)? + f.get(12)?, child_ticks: f.get(13)? + f.get(14)? })
}

fn proc_rss_kb(pid: u32) -> (u64, u64) {
    let s = fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let get = |k: &str| s.lines().find(|l| l.starts_with(k)).and_then(|l| l.split_whitespace().nth(1)).and_then(|v| v.parse().ok()).unwrap_or(0);
    (get("VmRSS:"), get("VmHWM:"))
}

fn clk_tck() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 { t as f64 } else { 100.0 }
}

/// CPU seconds of the tmux servers (they are not the daemon's children).
fn servers_cpu(socks: &[PathBuf]) -> f64 {
    let mut ticks = 0;
    for s in socks {
        let pid = tmux(s).args(["display-message", "-p", "#{pid}"]).output().ok().and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse::<u32>().ok());
        if let Some(c) = pid.and_then(proc_cpu) {
            ticks += c.own_ticks;
        }
    }
    ticks as f64 / clk_tck()
}

fn measure_idle(pid: u32, secs: u64, socks: &[PathBuf]) -> Res<IdleReport> {
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

fn section_idle(o: &Opts, r: &mut Report) -> Res<()> {
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
struct WaitReport {
    secs: f64,
    cpu_s: f64,
    exit: Option<i32>,
}

/// CPU of `send --wait` sitting out its timeout on an empty inbox (no
/// daemon, so no reply can come): the waiter's own rusage from wait4.
fn section_wait(o: &Opts, r: &mut Report) -> Res<()> {
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

fn section_scale(o: &Opts, r: &mut Report) -> Res<()> {
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

// ----------------------------------------------------------------- report

#[derive(serde::Serialize)]
struct LatencyReport {
    peerspool: Dist,
    peerspool_paste_visible: Dist,
    daemon_paste_confirm_ms: Dist,
    daemon_confirm_ms: Dist,
    peerspool_mangled: usize,
    baseline: Dist,
    baseline_mangled: usize,
    cases_peerspool: Cases,
    cases_baseline: Cases,
}

#[derive(serde::Serialize)]
struct BurstReport {
    n: usize,
    delivered: usize,
    missing: usize,
    duplicated: usize,
    in_order: bool,
    write_s: f64,
    total_s: f64,
    tasks_per_s: f64,
    drain_tasks_per_s: f64,
}

#[derive(serde::Serialize)]
struct RouteReport {
    n: usize,
    routed: usize,
    total_s: f64,
    files_per_s: f64,
    /// The same filesystem creating bare files, no daemon involved.
    create_per_s: f64,
    dir: String,
    error: Option<String>,
}

#[derive(serde::Serialize)]
struct ColdReport {
    total: Dist,
    standalone_boot: Dist,
    overhead_p50_ms: f64,
    rename_to_program_start: Dist,
    program_start_to_delivered: Dist,
    daemon_boot_ms: Dist,
}

#[derive(serde::Serialize)]
struct IdleReport {
    secs: f64,
    rss_mb: f64,
    hwm_mb: f64,
    cpu_s: f64,
    cpu_pct: f64,
    children_cpu_s: f64,
    servers_cpu_s: f64,
    total_pct: f64,
    peers: usize,
    live: usize,
}

#[derive(serde::Serialize)]
struct ScaleReport {
    queued: usize,
    measured: usize,
    stage_s: f64,
    /// The `sync(2)` after staging, before anything is measured.
    sync_s: f64,
    /// From the end of staging until the daemon was idle again.
    digest_s: f64,
    per_task: Dist,
}

#[derive(serde::Serialize, Default)]
struct Report {
    machine: HashMap<String, String>,
    mode: String,
    latency: Option<LatencyReport>,
    burst: Option<BurstReport>,
    route: Option<RouteReport>,
    route_tmpfs: Option<RouteReport>,
    cold: Option<ColdReport>,
    idle: Option<IdleReport>,
    idle_live: Option<IdleReport>,
    wait: Option<WaitReport>,
    scale: Vec<ScaleReport>,
    roundtrip: Option<load::LoadReport>,
    route_load: Option<load::LoadReport>,
    storm: Option<load::StormReport>,
    /// Routing throughput with the former whole-filesystem sync, same run.
    route_syncfs: Option<RouteReport>,
    route_tmpfs_syncfs: Option<RouteReport>,
    errors: Vec<String>,
}

fn sh(cmd: &str) -> String {
    Command::new("sh").arg("-c").arg(cmd).output().map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string()).unwrap_or_default()
}

fn machine() -> HashMap<String, String> {
    let mut m = HashMap::new();
    m.insert("nproc".into(), sh("nproc"));
    m.insert("cpu".into(), sh("grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'"));
    m.insert("kernel".into(), sh("uname -r"));
    m.insert("tmux".into(), sh("tmux -V"));
    m.insert("loadavg".into(), sh("cut -d' ' -f1-3 /proc/loadavg"));
    m.insert("date".into(), sh("date -u +%Y-%m-%dT%H:%MZ"));
    m.insert("commit".into(), sh("git rev-parse --short HEAD 2>/dev/null"));
    m
}

fn mark(ok: bool) -> &'static str {
    if ok { "met" } else { "MISSED" }
}

fn table(r: &Report) -> String {
    let mut t = String::new();
    let m = &r.machine;
    t.push_str(&format!(
        "Machine: {} cores, {}, kernel {}, {}; load at start {}; {} UTC; commit {}; mode {}\n\n",
        m["nproc"], m["cpu"], m["kernel"], m["tmux"], m["loadavg"], m["date"], m["commit"], r.mode
    ));
    t.push_str("| measure | result | target |\n|---|---|---|\n");
    if let Some(l) = &r.latency {
        let p = &l.peerspool;
        let b = &l.baseline;
        t.push_str(&format!("| live delivery, rename → submitted to peer ({} tasks) | p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms | p50 ≤ 10, p99 ≤ 50: {} |\n", p.n, p.p50, p.p99, p.max, mark(p.p50 <= 10.0 && p.p99 <= 50.0)));
        let v = &l.peerspool_paste_visible;
        t.push_str(&format!("| live delivery, rename → paste visible to peer | p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms | |\n", v.p50, v.p99, v.max));
        t.push_str(&format!("| fixed settle delay | none: the paste is confirmed by polling the screen (daemon paste-confirm p50 {:.0} ms, whole delivery p50 {:.0} ms, ms resolution) | |\n", l.daemon_paste_confirm_ms.p50, l.daemon_confirm_ms.p50));
        t.push_str(&format!("| naive baseline (inotifywait + jq + tmux send-keys) | p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms | |\n", b.p50, b.p99, b.max));
        t.push_str(&format!("| ratio baseline / peerspool | p50 {:.2}×, p99 {:.2}× | ≥ 10× faster: {} |\n", b.p50 / p.p50, b.p99 / p.p99, mark(b.p50 / p.p50 >= 10.0)));
        let cs = |v: &[(String, usize, usize)]| v.iter().map(|(l, n, m)| format!("{l} {m}/{n}")).collect::<Vec<_>>().join(", ");
        let tot = |v: &[(String, usize, usize)]| v.iter().map(|c| c.2).sum::<usize>();
        let n_cases: usize = l.cases_peerspool.iter().map(|c| c.1).sum();
        t.push_str(&format!("| mangled deliveries, peerspool | {} of {} plain + {} of {} hard cases ({}) | 0: {} |\n", l.peerspool_mangled, p.n, tot(&l.cases_peerspool), n_cases, cs(&l.cases_peerspool), mark(l.peerspool_mangled + tot(&l.cases_peerspool) == 0)));
        t.push_str(&format!("| mangled deliveries, baseline | {} of {} plain + {} of {} hard cases ({}) | |\n", l.baseline_mangled, b.n, tot(&l.cases_baseline), n_cases, cs(&l.cases_baseline)));
    }
    if let Some(b) = &r.burst {
        t.push_str(&format!(
            "| burst: {} tasks to one warm peer | {} delivered in {:.2} s = {:.0} tasks/s (drain {:.0}/s); missing {}, duplicated {}, in order: {} | exactly once, in order: {} |\n",
            b.n, b.delivered, b.total_s, b.tasks_per_s, b.drain_tasks_per_s, b.missing, b.duplicated, b.in_order, mark(b.missing == 0 && b.duplicated == 0 && b.in_order)
        ));
    }
    if let Some(x) = &r.route {
        t.push_str(&format!("| outbox routing: {} files to an inbox | {} routed in {:.2} s = {:.0} files/s{} | ≥ 5,000 files/s: {} |\n", x.n, x.routed, x.total_s, x.files_per_s, x.error.as_ref().map(|e| format!(" ({e})")).unwrap_or_default(), mark(x.files_per_s >= 5000.0)));
        t.push_str(&format!("| the same directory creating {} bare files, no daemon (each routed file is one new file) | {:.0} files/s | |\n", x.n, x.create_per_s));
    }
    if let Some(x) = &r.route_syncfs {
        t.push_str(&format!("| the same with the former whole-filesystem `syncfs` (before) | {} routed in {:.2} s = {:.0} files/s (bare creates {:.0}/s){} | |\n", x.routed, x.total_s, x.files_per_s, x.create_per_s, x.error.as_ref().map(|e| format!(" ({e})")).unwrap_or_default()));
    }
    for (x, what) in [(&r.route_tmpfs, "per-file fsync"), (&r.route_tmpfs_syncfs, "syncfs (before)")] {
        if let Some(x) = x {
            t.push_str(&format!("| outbox routing on tmpfs ({}), {what}: the daemon's own ceiling | {} routed in {:.2} s = {:.0} files/s (bare creates {:.0}/s){} | |\n", x.dir, x.routed, x.total_s, x.files_per_s, x.create_per_s, x.error.as_ref().map(|e| format!(" ({e})")).unwrap_or_default()));
        }
    }
    load::rows(r, &mut t);
    if let Some(c) = &r.cold {
        t.push_str(&format!(
            "| cold wake, rename → delivered ({} wakes) | p50 {:.1} ms, max {:.1} ms; program's own start (tmux new-session → prompt, no daemon) p50 {:.1} ms; daemon overhead p50 {:.1} ms | |\n",
            c.total.n, c.total.p50, c.total.max, c.standalone_boot.p50, c.overhead_p50_ms
        ));
        t.push_str(&format!(
            "| cold wake split | rename → program started p50 {:.1} ms; program started → delivered p50 {:.1} ms; daemon-logged boot p50 {:.0} ms | |\n",
            c.rename_to_program_start.p50, c.program_start_to_delivered.p50, c.daemon_boot_ms.p50
        ));
    }
    for i in [&r.idle, &r.idle_live].into_iter().flatten() {
        let what = if i.live > 0 { format!("idle, {} live sessions", i.live) } else { format!("idle, {} peers, no sessions", i.peers) };
        let target = if i.live > 0 { String::new() } else { format!("RSS ≤ 20 MB, CPU ≤ 0.1 %: {}", mark(i.rss_mb <= 20.0 && i.cpu_pct <= 0.1)) };
        t.push_str(&format!(
            "| {what}, {:.0} s | RSS {:.1} MB (peak {:.1}); daemon CPU {:.2} s = {:.3} %; its tmux clients {:.2} s; tmux servers {:.2} s; all {:.3} % | {target} |\n",
            i.secs, i.rss_mb, i.hwm_mb, i.cpu_s, i.cpu_pct, i.children_cpu_s, i.servers_cpu_s, i.total_pct
        ));
    }
    if let Some(w) = &r.wait {
        t.push_str(&format!(
            "| `send --wait` on an empty inbox, {:.0} s (exit {}) | CPU {:.3} s (user + system, wait4 rusage) | < 0.1 s: {} |\n",
            w.secs, w.exit.map(|c| c.to_string()).unwrap_or_else(|| "by signal".into()), w.cpu_s, mark(w.cpu_s < 0.1)
        ));
    }
    for s in &r.scale {
        t.push_str(&format!(
            "| scaling: {} files queued, per-task claim+deliver (next {}) | p50 {:.2} ms, p99 {:.2} ms, mean {:.2} ms (staging took {:.1} s, its sync {:.1} s, the daemon's events after it {:.1} s) | flat |\n",
            s.queued, s.measured, s.per_task.p50, s.per_task.p99, s.per_task.mean, s.stage_s, s.sync_s, s.digest_s
        ));
    }
    for e in &r.errors {
        t.push_str(&format!("| error | {} | |\n", e.replace('|', "/")));
    }
    t
}

fn main() {
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        let _ = signal_hook::flag::register(sig, stop.clone());
    }
    let _ = STOP.set(stop);
    let o = match Opts::parse() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("sysbench: {e}");
            std::process::exit(2);
        }
    };
    if let Err(e) = fs::create_dir_all(&o.out) {
        eprintln!("sysbench: {}: {e}", o.out.display());
        std::process::exit(1);
    }
    let mut r = Report { machine: machine(), mode: if o.quick { "quick".into() } else { "full".into() }, ..Default::default() };
    type Section = fn(&Opts, &mut Report) -> Res<()>;
    let sections: [(&str, Section); 9] = [
        ("latency", section_latency), ("burst", section_burst), ("roundtrip", load::section_roundtrip), ("routeload", load::section_route_load),
        ("cold", section_cold), ("storm", load::section_storm), ("idle", section_idle), ("wait", section_wait), ("scale", section_scale),
    ];
    for (name, f) in sections {
        if !o.wants(name) || stopping() {
            continue;
        }
        let t = Instant::now();
        eprintln!("sysbench: {name} ...");
        if let Err(e) = f(&o, &mut r) {
            eprintln!("sysbench: {name} failed: {e}");
            r.errors.push(format!("{name}: {e}"));
        }
        eprintln!("sysbench: {name} took {:.1} s", t.elapsed().as_secs_f64());
    }
    let t = table(&r);
    println!("{t}");
    let _ = fs::write(o.out.join("table.md"), &t);
    let _ = fs::write(o.out.join("results.json"), serde_json::to_string_pretty(&r).unwrap_or_default());
    if std::env::var_os("SYSBENCH_KEEP").is_none() {
        for d in LEFT_DIRS.lock().unwrap_or_else(|p| p.into_inner()).drain(..) {
            let _ = fs::remove_dir_all(d);
        }
    }
    // Everything was stopped by the Env drops: the list is spent.
    let _ = fs::remove_file(&o.cleanup);
    std::process::exit(if stopping() { 130 } else { 0 });
}
