//! The driver's harness: tmux on private sockets, tailing the stamping
//! agent's log, one private root per section (`Env`) with its daemon, and
//! the distribution helpers every section reports with. Part of the
//! `sysbench` driver (see bench/sysbench.rs).

use super::*;

pub(crate) fn tmux(sock: &Path) -> Command {
    let mut c = Command::new("tmux");
    c.arg("-S").arg(sock).env_remove("TMUX").stdin(Stdio::null());
    c
}

pub(crate) fn kill_server(sock: &Path) {
    let _ = tmux(sock).arg("kill-server").stdout(Stdio::null()).stderr(Stdio::null()).status();
}

pub(crate) fn capture(sock: &Path, target: &str) -> String {
    tmux(sock)
        .args(["capture-pane", "-p", "-t", target])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default()
}

pub(crate) fn wait_until(what: &str, limit: Duration, mut cond: impl FnMut() -> bool) -> Res<()> {
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
pub(crate) struct Tail {
    pub(crate) path: PathBuf,
    pub(crate) pos: u64,
    pub(crate) partial: Vec<u8>,
}

impl Tail {
    pub(crate) fn new(path: PathBuf) -> Tail {
        let pos = fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        Tail { path, pos, partial: vec![] }
    }

    pub(crate) fn poll(&mut self) -> Vec<Value> {
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
    pub(crate) fn next(&mut self, pending: &mut std::collections::VecDeque<Value>, limit: Duration) -> Res<Value> {
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

pub(crate) struct Env {
    pub(crate) o: Opts,
    pub(crate) dir: PathBuf,
    pub(crate) root: PathBuf,
    pub(crate) work: PathBuf,
    pub(crate) daemon: Option<Child>,
    pub(crate) sockets: Vec<PathBuf>,
    pub(crate) groups: Vec<Child>,
}

impl Env {
    pub(crate) fn new(o: &Opts, tag: &str) -> Res<Env> {
        Env::new_in(o, tag, std::env::temp_dir())
    }

    pub(crate) fn new_in(o: &Opts, tag: &str, base: PathBuf) -> Res<Env> {
        let dir = base.join(format!("psb-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let root = dir.join("root");
        let work = dir.join("work");
        fs::DirBuilder::new().recursive(true).mode(0o700).create(&work).map_err(|e| e.to_string())?;
        note_cleanup(o, "dir", &dir.display().to_string());
        Ok(Env { o: o.clone(), dir, root, work, daemon: None, sockets: vec![], groups: vec![] })
    }

    pub(crate) fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(&self.o.bin);
        c.args(args).env("PEERSPOOL_HOME", &self.root).env_remove("PEERSPOOL_PEER").env_remove("TMUX").stdin(Stdio::null());
        c
    }

    pub(crate) fn ok(&self, args: &[&str]) -> Res<String> {
        let out = self.cmd(args).output().map_err(|e| e.to_string())?;
        if !out.status.success() {
            return Err(format!("peerspool {args:?}: {}", String::from_utf8_lossy(&out.stderr).trim()));
        }
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    }

    pub(crate) fn log(&self, peer: &str) -> PathBuf {
        self.work.join(format!("{peer}.log"))
    }

    pub(crate) fn socket(&self, peer: &str) -> PathBuf {
        peerspool::root::Root::new(&self.root).tmux_socket(peer)
    }

    pub(crate) fn agent_argv(&self, peer: &str) -> Vec<String> {
        vec![self.o.bin.display().to_string(), "agent".into(), "--stamp".into(), "--log".into(), self.log(peer).display().to_string()]
    }

    pub(crate) fn add_peer(&mut self, name: &str, extra: &[&str]) -> Res<()> {
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

    pub(crate) fn track_peer(&mut self, name: &str) {
        let s = self.socket(name);
        note_cleanup(&self.o, "sock", &s.display().to_string());
        self.sockets.push(s);
    }

    /// Registers `n` more peers by copying a CLI-made profile (fast).
    pub(crate) fn clone_peers(&mut self, from: &str, prefix: &str, n: usize) -> Res<Vec<String>> {
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

    pub(crate) fn lifecycle(&self) -> String {
        fs::read_to_string(self.root.join("log/lifecycle.log")).unwrap_or_default()
    }

    pub(crate) fn delivery_log(&self) -> String {
        fs::read_to_string(self.root.join("log/delivery.log")).unwrap_or_default()
    }

    pub(crate) fn start_daemon(&mut self, env: &[(&str, &str)], peers: usize) -> Res<u32> {
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

    pub(crate) fn stop_daemon(&mut self) {
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

    pub(crate) fn spool_dir(&self, peer: &str, q: &str, sub: &str) -> PathBuf {
        self.root.join("peers").join(peer).join(q).join(sub)
    }

    /// Writes a task into tmp/, then renames it into new/; returns the
    /// CLOCK_REALTIME ns taken just before the rename.
    pub(crate) fn put(&self, peer: &str, q: &str, name: &str, body: &Value) -> Res<u64> {
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

pub(crate) static LEFT_DIRS: std::sync::Mutex<Vec<PathBuf>> = std::sync::Mutex::new(Vec::new());

/// Files/s this directory's filesystem creates, write and close included:
/// the floor under any per-file routing rate measured beside it.
pub(crate) fn create_rate(dir: &Path, n: usize) -> Res<f64> {
    fs::create_dir_all(dir).map_err(|e| e.to_string())?;
    let t = Instant::now();
    for i in 0..n {
        let mut f = OpenOptions::new().write(true).create_new(true).open(dir.join(format!("{i:08}"))).map_err(|e| e.to_string())?;
        f.write_all(&[b'x'; 100]).map_err(|e| e.to_string())?;
    }
    Ok(n as f64 / t.elapsed().as_secs_f64().max(1e-9))
}

pub(crate) fn task(text: &str) -> Value {
    json!({"v": 1, "from": "bench", "text": text})
}

pub(crate) fn pct(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i]
}

#[derive(Default, Clone, serde::Serialize)]
pub(crate) struct Dist {
    pub(crate) n: usize,
    pub(crate) p50: f64,
    pub(crate) p99: f64,
    pub(crate) max: f64,
    pub(crate) mean: f64,
}

pub(crate) fn dist(v: &[f64]) -> Dist {
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
    let mean = if s.is_empty() { f64::NAN } else { s.iter().sum::<f64>() / s.len() as f64 };
    Dist { n: s.len(), p50: pct(&s, 0.5), p99: pct(&s, 0.99), max: s.last().copied().unwrap_or(f64::NAN), mean }
}

pub(crate) fn ms(ns: u64) -> f64 {
    ns as f64 / 1e6
}

pub(crate) fn stem(name: &str) -> &str {
    name.trim_end_matches(".json")
}

/// The correctness cases, each the kind of text a naive `send-keys` loop mangles.
pub(crate) fn cases() -> Vec<(&'static str, String)> {
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
