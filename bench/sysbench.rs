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
#[path = "sysbench_env.rs"]
mod env;
#[path = "sysbench_idle.rs"]
mod idle;
#[path = "sysbench_report.rs"]
mod report;
use env::*;
use idle::*;
use report::*;

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
