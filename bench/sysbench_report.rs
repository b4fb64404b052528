//! What a run reports: one struct per section (written to results.json)
//! and the Markdown table with each target marked met or missed. Part of
//! the `sysbench` driver (see bench/sysbench.rs).

use super::*;

// ----------------------------------------------------------------- report

#[derive(serde::Serialize)]
pub(crate) struct LatencyReport {
    pub(crate) peerspool: Dist,
    pub(crate) peerspool_paste_visible: Dist,
    pub(crate) daemon_paste_confirm_ms: Dist,
    pub(crate) daemon_confirm_ms: Dist,
    pub(crate) peerspool_mangled: usize,
    pub(crate) baseline: Dist,
    pub(crate) baseline_mangled: usize,
    pub(crate) cases_peerspool: Cases,
    pub(crate) cases_baseline: Cases,
}

#[derive(serde::Serialize)]
pub(crate) struct BurstReport {
    pub(crate) n: usize,
    pub(crate) delivered: usize,
    pub(crate) missing: usize,
    pub(crate) duplicated: usize,
    pub(crate) in_order: bool,
    pub(crate) write_s: f64,
    pub(crate) total_s: f64,
    pub(crate) tasks_per_s: f64,
    pub(crate) drain_tasks_per_s: f64,
}

#[derive(serde::Serialize)]
pub(crate) struct RouteReport {
    pub(crate) n: usize,
    pub(crate) routed: usize,
    pub(crate) total_s: f64,
    pub(crate) files_per_s: f64,
    /// The same filesystem creating bare files, no daemon involved.
    pub(crate) create_per_s: f64,
    pub(crate) dir: String,
    pub(crate) error: Option<String>,
}

#[derive(serde::Serialize)]
pub(crate) struct ColdReport {
    pub(crate) total: Dist,
    pub(crate) standalone_boot: Dist,
    pub(crate) overhead_p50_ms: f64,
    pub(crate) rename_to_program_start: Dist,
    pub(crate) program_start_to_delivered: Dist,
    pub(crate) daemon_boot_ms: Dist,
}

#[derive(serde::Serialize)]
pub(crate) struct IdleReport {
    pub(crate) secs: f64,
    pub(crate) rss_mb: f64,
    pub(crate) hwm_mb: f64,
    pub(crate) cpu_s: f64,
    pub(crate) cpu_pct: f64,
    pub(crate) children_cpu_s: f64,
    pub(crate) servers_cpu_s: f64,
    pub(crate) total_pct: f64,
    pub(crate) peers: usize,
    pub(crate) live: usize,
}

#[derive(serde::Serialize)]
pub(crate) struct ScaleReport {
    pub(crate) queued: usize,
    pub(crate) measured: usize,
    pub(crate) stage_s: f64,
    /// The `sync(2)` after staging, before anything is measured.
    pub(crate) sync_s: f64,
    /// From the end of staging until the daemon was idle again.
    pub(crate) digest_s: f64,
    pub(crate) per_task: Dist,
}

#[derive(serde::Serialize, Default)]
pub(crate) struct Report {
    pub(crate) machine: HashMap<String, String>,
    pub(crate) mode: String,
    pub(crate) latency: Option<LatencyReport>,
    pub(crate) burst: Option<BurstReport>,
    pub(crate) route: Option<RouteReport>,
    pub(crate) route_tmpfs: Option<RouteReport>,
    pub(crate) cold: Option<ColdReport>,
    pub(crate) idle: Option<IdleReport>,
    pub(crate) idle_live: Option<IdleReport>,
    pub(crate) wait: Option<WaitReport>,
    pub(crate) scale: Vec<ScaleReport>,
    pub(crate) roundtrip: Option<load::LoadReport>,
    pub(crate) route_load: Option<load::LoadReport>,
    pub(crate) storm: Option<load::StormReport>,
    /// Routing throughput with the former whole-filesystem sync, same run.
    pub(crate) route_syncfs: Option<RouteReport>,
    pub(crate) route_tmpfs_syncfs: Option<RouteReport>,
    pub(crate) errors: Vec<String>,
}

pub(crate) fn sh(cmd: &str) -> String {
    Command::new("sh").arg("-c").arg(cmd).output().map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string()).unwrap_or_default()
}

pub(crate) fn machine() -> HashMap<String, String> {
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

pub(crate) fn mark(ok: bool) -> &'static str {
    if ok { "met" } else { "MISSED" }
}

pub(crate) fn table(r: &Report) -> String {
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
        t.push_str(&format!("| live delivery, rename → submitted to peer ({} tasks) | p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms | p50 ≤ 2, p99 ≤ 10: {} |\n", p.n, p.p50, p.p99, p.max, mark(p.p50 <= 2.0 && p.p99 <= 10.0)));
        let v = &l.peerspool_paste_visible;
        t.push_str(&format!("| live delivery, rename → paste visible to peer | p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms | |\n", v.p50, v.p99, v.max));
        t.push_str(&format!("| fixed settle delay | none: the paste is confirmed by polling the screen (daemon paste-confirm p50 {:.0} ms, whole delivery p50 {:.0} ms, ms resolution) | |\n", l.daemon_paste_confirm_ms.p50, l.daemon_confirm_ms.p50));
        t.push_str(&format!("| naive baseline (inotifywait + jq + tmux send-keys) | p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms | |\n", b.p50, b.p99, b.max));
        t.push_str(&format!("| ratio baseline / peerspool | p50 {:.2}×, p99 {:.2}× | ≥ 20× faster at p50: {} |\n", b.p50 / p.p50, b.p99 / p.p99, mark(b.p50 / p.p50 >= 20.0)));
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
