use peerspool::root::Root;
use peerspool::tmux::Tmux;

fn read_num(p: &str) -> Option<u64> {
    std::fs::read_to_string(p).ok()?.trim().parse().ok()
}

fn which(bin: &str) -> Option<std::path::PathBuf> {
    if bin.contains('/') {
        return std::path::Path::new(bin).is_file().then(|| bin.into());
    }
    std::env::var_os("PATH").and_then(|p| std::env::split_paths(&p).map(|d| d.join(bin)).find(|c| c.is_file()))
}

/// Prints one line per check; exit 1 when something blocks the daemon.
pub fn run(root: &Root) -> anyhow::Result<i32> {
    let mut bad = 0;
    let mut line = |ok: Option<bool>, what: &str, detail: String| {
        let tag = match ok {
            Some(true) => "ok  ",
            Some(false) => {
                bad += 1;
                "FAIL"
            }
            None => "warn",
        };
        println!("{tag} {what:<16} {detail}");
    };
    match Tmux::version_blocking() {
        Some(v) => line(Some(true), "tmux", v),
        None => line(Some(false), "tmux", "not found on PATH: install tmux (apt-get install tmux / brew install tmux)".into()),
    }
    let peers = root.peer_names().unwrap_or_default();
    if cfg!(target_os = "linux") {
        // The per-user-namespace limit is the one that applies when set.
        let watches = read_num("/proc/sys/user/max_inotify_watches").or_else(|| read_num("/proc/sys/fs/inotify/max_user_watches"));
        let need = (peers.len() as u64 + 1) * 4;
        match watches {
            Some(w) if w >= need => line(Some(true), "inotify watches", format!("max_user_watches={w} (need about {need})")),
            Some(w) => line(None, "inotify watches", format!("max_user_watches={w} but about {need} are needed: sysctl fs.inotify.max_user_watches={}", need * 2)),
            None => line(None, "inotify watches", "cannot read /proc/sys/fs/inotify/max_user_watches".into()),
        }
        for k in ["max_user_instances", "max_queued_events"] {
            if let Some(v) = read_num(&format!("/proc/sys/fs/inotify/{k}")) {
                line(Some(true), "inotify", format!("{k}={v}"));
            }
        }
    }
    if root.path.exists() {
        match root.check() {
            Ok(()) => line(Some(true), "root", format!("{} is private", root.path.display())),
            Err(e) => line(Some(false), "root", e.to_string()),
        }
        for p in &peers {
            if let Ok(pp) = root.peer(p) {
                if let Err(e) = peerspool::root::check_private(&pp.dir) {
                    line(Some(false), "peer dir", e.to_string());
                }
                if let Err(e) = peerspool::profile::Profile::load(&pp.profile()) {
                    line(Some(false), "peer.json", e.to_string());
                }
            }
        }
        line(Some(true), "peers", format!("{} registered", peers.len()));
    } else {
        line(None, "root", format!("{} does not exist yet (created by `peer add` or the daemon)", root.path.display()));
    }
    match peerspool::lock::running(root) {
        Some(pid) => {
            line(Some(true), "daemon", format!("running (pid {pid})"));
            let polled = std::fs::read_to_string(root.state_dir().join(peerspool::daemon::WATCH_FALLBACK)).unwrap_or_default();
            let polled: Vec<&str> = polled.lines().collect();
            if !polled.is_empty() {
                line(Some(false), "watches", format!("out of inotify watches: {} polled every second instead ({}); raise fs.inotify.max_user_watches", polled.len(), polled.join(", ")));
            }
        }
        None => line(None, "daemon", "not running (start it: peerspool daemon, or as a service)".into()),
    }
    for (rt, env) in [("claude", "PEERSPOOL_CLAUDE_BIN"), ("codex", "PEERSPOOL_CODEX_BIN")] {
        let bin = std::env::var(env).unwrap_or_else(|_| rt.into());
        match which(&bin) {
            Some(p) => line(Some(true), rt, format!("{}", p.display())),
            None => line(None, rt, format!("{bin} not found on PATH (only needed for {rt} peers)")),
        }
    }
    Ok(if bad > 0 { 1 } else { 0 })
}
