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

/// `bin --version`, first line, given at most 10 s.
fn version(bin: &std::path::Path) -> Option<String> {
    let mut c = std::process::Command::new(bin)
        .arg("--version")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .ok()?;
    let start = std::time::Instant::now();
    loop {
        match c.try_wait() {
            Ok(Some(st)) if st.success() => break,
            Ok(None) if start.elapsed() < std::time::Duration::from_secs(10) => std::thread::sleep(std::time::Duration::from_millis(20)),
            _ => {
                let _ = c.kill();
                let _ = c.wait();
                return None;
            }
        }
    }
    let mut out = String::new();
    std::io::Read::read_to_string(&mut c.stdout.take()?, &mut out).ok()?;
    out.lines().next().map(|l| l.trim().to_string()).filter(|l| !l.is_empty())
}

fn env_set(k: &str) -> bool {
    std::env::var_os(k).is_some_and(|v| !v.is_empty())
}

fn home_dir(var: &str, fallback: &str) -> std::path::PathBuf {
    std::env::var_os(var)
        .filter(|v| !v.is_empty())
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::path::PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(fallback))
}

/// Claude Code keeps OAuth credentials in `<config>/.credentials.json`
/// (the macOS keychain on a Mac); an API key in the environment works
/// after claude asked once whether to use it.
fn claude_login() -> (bool, String) {
    let creds = home_dir("CLAUDE_CONFIG_DIR", ".claude").join(".credentials.json");
    if creds.is_file() {
        return (true, format!("credentials in {}", creds.display()));
    }
    if let Some(k) = ["ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN", "CLAUDE_CODE_OAUTH_TOKEN"].into_iter().find(|k| env_set(k)) {
        return (true, format!("{k} is set (claude asks once, interactively, whether to use an API key)"));
    }
    if cfg!(target_os = "macos") {
        return (false, format!("no {}; on macOS the login may be in the keychain: if a peer fails with not-logged-in, run claude and /login", creds.display()));
    }
    (false, format!("not logged in: no {} and no ANTHROPIC_API_KEY (run claude, then /login)", creds.display()))
}

/// Codex keeps its login in `$CODEX_HOME/auth.json`; an OPENAI_API_KEY in
/// the environment alone still shows the sign-in screen (0.171).
fn codex_login() -> (bool, String) {
    let auth = home_dir("CODEX_HOME", ".codex").join("auth.json");
    if auth.is_file() {
        return (true, format!("credentials in {}", auth.display()));
    }
    let hint = if env_set("OPENAI_API_KEY") { "OPENAI_API_KEY alone is not enough: run `codex login --with-api-key`" } else { "run `codex login`" };
    (false, format!("not logged in: no {} ({hint}; a keyring credential store is not checked)", auth.display()))
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
    let used: Vec<String> = peers
        .iter()
        .filter_map(|p| root.peer(p).ok())
        .filter_map(|pp| peerspool::profile::Profile::load(&pp.profile()).ok())
        .map(|p| p.runtime.as_str().to_string())
        .collect();
    for (rt, env) in [("claude", peerspool::runtime::claude::BIN_ENV), ("codex", peerspool::runtime::codex::BIN_ENV)] {
        let needed = used.iter().any(|u| u == rt);
        let bin = std::env::var(env).ok().filter(|b| !b.is_empty()).unwrap_or_else(|| rt.into());
        let Some(path) = which(&bin) else {
            let why = if needed { "a registered peer needs it" } else { "only needed for such peers" };
            line(if needed { Some(false) } else { None }, rt, format!("{bin} not found on PATH ({why}; ${env} overrides)"));
            continue;
        };
        let version = version(&path).unwrap_or_else(|| "version unknown (--version failed)".into());
        line(Some(true), rt, format!("{} ({version})", path.display()));
        let (ok, how) = if rt == "claude" { claude_login() } else { codex_login() };
        line(if ok { Some(true) } else { None }, &format!("{rt} login"), how);
    }
    Ok(if bad > 0 { 1 } else { 0 })
}
