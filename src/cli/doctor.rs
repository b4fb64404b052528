use peerspool::registry::profile::Profile;
use peerspool::root::Root;
use peerspool::session::tmux::Tmux;

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

/// A variable as the session will see it: the profile's env first, then
/// the environment `doctor` runs in (the daemon's, when run alike).
fn var(p: Option<&Profile>, k: &str) -> Option<String> {
    p.and_then(|p| p.env.get(k).cloned()).or_else(|| std::env::var(k).ok()).filter(|v| !v.is_empty())
}

/// The profile for a peer-less check: nothing but the environment.
fn dirs(p: Option<&Profile>, var: &str, fallback: &str) -> std::path::PathBuf {
    match p {
        Some(p) => peerspool::session::runtime::session_dir(p, var, fallback),
        None => std::env::var_os(var)
            .filter(|v| !v.is_empty())
            .map(std::path::PathBuf::from)
            .unwrap_or_else(|| std::path::PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(fallback)),
    }
}

/// Claude Code keeps OAuth credentials in `<config>/.credentials.json`
/// (the macOS keychain on a Mac); an API key in the environment works
/// once it is approved in `~/.claude.json` (claude asks once).
fn claude_login(p: Option<&Profile>) -> (bool, String) {
    let creds = dirs(p, "CLAUDE_CONFIG_DIR", ".claude").join(".credentials.json");
    if creds.is_file() {
        return (true, format!("credentials in {}", creds.display()));
    }
    let base = var(p, "ANTHROPIC_BASE_URL").map(|u| format!(", endpoint {u}")).unwrap_or_default();
    if let Some(k) = ["ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN", "CLAUDE_CODE_OAUTH_TOKEN"].into_iter().find(|k| var(p, k).is_some()) {
        let key = var(p, k).unwrap_or_default();
        let home = p.map(peerspool::session::runtime::session_home).unwrap_or_else(|| std::env::var_os("HOME").unwrap_or_default().into());
        let state = home.join(".claude.json");
        let approved = std::fs::read_to_string(&state)
            .ok()
            .and_then(|s| serde_json::from_str::<serde_json::Value>(&s).ok())
            .is_some_and(|v| v["customApiKeyResponses"]["approved"].as_array().is_some_and(|a| a.iter().any(|x| x.as_str().is_some_and(|x| !x.is_empty() && key.ends_with(x)))));
        if k != "ANTHROPIC_API_KEY" || approved {
            return (true, format!("{k} is set{base}"));
        }
        return (false, format!("{k} is set{base} but not approved in {}: claude asks once whether to use it (run claude there and answer Yes)", state.display()));
    }
    if cfg!(target_os = "macos") {
        return (false, format!("no {}; on macOS the login may be in the keychain: if a peer fails with not-logged-in, run claude and /login", creds.display()));
    }
    (false, format!("not logged in: no {} and no ANTHROPIC_API_KEY (run claude, then /login)", creds.display()))
}

/// Codex keeps its login in `$CODEX_HOME/auth.json`; a custom model
/// provider needs the variable its `env_key` names; an OPENAI_API_KEY in
/// the environment alone still shows the sign-in screen (0.171).
fn codex_login(p: Option<&Profile>) -> (bool, String) {
    let home = dirs(p, "CODEX_HOME", ".codex");
    let auth = home.join("auth.json");
    if auth.is_file() {
        return (true, format!("credentials in {}", auth.display()));
    }
    let cfg = std::fs::read_to_string(home.join("config.toml")).ok().and_then(|s| s.parse::<toml_edit::DocumentMut>().ok());
    if let Some(cfg) = cfg {
        if let Some(name) = cfg.get("model_provider").and_then(|v| v.as_str()) {
            let key = cfg.get("model_providers").and_then(|t| t.get(name)).and_then(|t| t.get("env_key")).and_then(|v| v.as_str());
            return match key {
                Some(k) if var(p, k).is_none() => (false, format!("model provider {name:?} needs {k}, which is not set")),
                Some(k) => (true, format!("model provider {name:?} ({k} is set)")),
                None => (true, format!("model provider {name:?}")),
            };
        }
    }
    let hint = if var(p, "OPENAI_API_KEY").is_some() { "OPENAI_API_KEY alone is not enough: run `codex login --with-api-key`" } else { "run `codex login`" };
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
                if let Err(e) = peerspool::registry::profile::Profile::load(&pp.profile()) {
                    line(Some(false), "peer.json", e.to_string());
                }
            }
        }
        line(Some(true), "peers", format!("{} registered", peers.len()));
    } else {
        line(None, "root", format!("{} does not exist yet (created by `peer add` or the daemon)", root.path.display()));
    }
    match peerspool::daemon::lock::running(root) {
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
    for ch in peerspool::bridge::doctor(root) {
        line(ch.ok, ch.what, ch.detail);
    }
    let profiles: Vec<(String, Profile)> = peers
        .iter()
        .filter_map(|name| Some((name.clone(), Profile::load(&root.peer(name).ok()?.profile()).ok()?)))
        .collect();
    for (rt, env) in [("claude", peerspool::session::runtime::claude::BIN_ENV), ("codex", peerspool::session::runtime::codex::BIN_ENV)] {
        let users: Vec<&(String, Profile)> = profiles.iter().filter(|(_, p)| p.runtime.as_str() == rt).collect();
        let needed = !users.is_empty();
        let bin = std::env::var(env).ok().filter(|b| !b.is_empty()).unwrap_or_else(|| rt.into());
        let Some(path) = which(&bin) else {
            let why = if needed { "a registered peer needs it" } else { "only needed for such peers" };
            line(if needed { Some(false) } else { None }, rt, format!("{bin} not found on PATH ({why}; ${env} overrides)"));
            continue;
        };
        let version = version(&path).unwrap_or_else(|| "version unknown (--version failed)".into());
        line(Some(true), rt, format!("{} ({version})", path.display()));
        let login = |p: Option<&Profile>| if rt == "claude" { claude_login(p) } else { codex_login(p) };
        if users.is_empty() {
            let (ok, how) = login(None);
            line(if ok { Some(true) } else { None }, &format!("{rt} login"), how);
        }
        // Each peer as its session will see it: its HOME, its env.
        for (name, p) in users {
            let (ok, how) = login(Some(p));
            line(if ok { Some(true) } else { None }, &format!("{rt} login"), format!("peer {name}: {how}"));
        }
    }
    Ok(if bad > 0 { 1 } else { 0 })
}
